"""Schemas of the ``model`` group, one per architecture (see conf/model/*.yaml)."""
from dataclasses import dataclass

from gen.config.base import register, spec

# Bounds on what is built layer by layer (a loop, not an allocation, so gen.training.memory cannot see it coming).
MAX_DEPTH = 10_000
MAX_PADDING = 16  # zeros around a 3×3 conv's input: more only adds blank border


@dataclass
class ModelCommon:
    _target_: str
    name: str


@register("model", "fc")
@dataclass
class FCConfig(ModelCommon):
    hidden_units: int = spec(ge=1)


@register("model", "mlp")
@register("model", "mlp1")
@register("model", "mlp3")
@dataclass
class MLPConfig(ModelCommon):
    depth: int = spec(ge=1, le=MAX_DEPTH, help="hidden layers")
    width: int = spec(ge=1, help="units per hidden layer")


@register("model", "alexnet_small")
@register("model", "alexnet_small_narrow")  # the same net, S2-narrowed widths (zhang_regularization_small)
@dataclass
class AlexNetSmallConfig(ModelCommon):
    channels: list[int]
    hidden: list[int]


@register("model", "inception_small")
@register("model", "inception_small_nobn")
@dataclass
class InceptionSmallConfig(ModelCommon):
    batch_norm: bool


@register("model", "vgg")
@register("model", "vgg11")
@register("model", "vgg16")
@dataclass
class VGGConfig(ModelCommon):
    layers: list[int] = spec(items={"ge": 1, "also": ["M"]},
                             help='channel counts and "M" (2×2 max-pool)')
    batch_norm: bool
    head_width: int = spec(ge=1)
    head_batch_norm: bool
    dropout: float = spec(ge=0, lt=1)


@register("model", "nin")
@dataclass
class NiNConfig(ModelCommon):
    depth: int = spec(ge=1, le=MAX_DEPTH, help="NiN blocks")
    width: int = spec(ge=1, help="channel multiplier: 25 × width channels")
    batch_norm: bool
    dropout: float = spec(ge=0, lt=1)


@register("model", "simple_batch")
@register("model", "middle_batch")
@register("model", "complex_batch")
@dataclass
class BatchNetConfig(ModelCommon):
    layers: list[int] = spec(items={"ge": 1, "also": ["M"]},
                             help='channel counts and "M" (2×2 max-pool)')
    padding: int = spec(ge=0, le=MAX_PADDING)
    hidden: int = spec(ge=1)


@register("model", "steady_mlp")
@dataclass
class SteadyMLPConfig(ModelCommon):
    hidden: list[int]


@register("model", "steady_cnn")
@dataclass
class SteadyCNNConfig(ModelCommon):
    channels: list[int]
    hidden: int = spec(ge=1)


@register("model", "resnet18")
@dataclass
class ResNet18Config(ModelCommon):
    batch_norm: bool
    small_input_stem: bool


@register("model", "zhang_expressivity")
@dataclass
class ZhangExpressivityConfig(ModelCommon):
    # the hidden width is the training set's size (gen.models.build_model), not a key
    directions: int = spec(ge=1, le=4096, help="random projection directions drawn; the best separated is used")
