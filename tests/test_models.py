"""The model zoo: parameter counts against hand-worked totals, every model forward and backward on
every image shape, and one-line errors for data a model cannot take."""

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from gen.data.bundle import DataBundle
from gen.models import build_model
from gen.models.steady import InputBias
from gen.config import GROUPS, ConfigError, validate
from tests.helpers import CONF, compose_config, shape_of

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32), (3, 28, 28), (1, 8, 8)]  # MNIST, CIFAR, CIFAR cropped (S2), digits
# Architectures whose convolutions and poolings shrink an 8×8 image to nothing.
TOO_SMALL = {("simple_batch", (1, 8, 8)), ("steady_cnn", (1, 8, 8))}
FLAT_ONLY_OK = {"fc", "mlp", "mlp1", "mlp3", "steady_mlp", "zhang_expressivity"}


def model_cfg(name: str, **overrides):
    cfg = OmegaConf.load(CONF / "model" / f"{name}.yaml")  # model yamls have no defaults list
    return OmegaConf.merge(cfg, overrides)


def bundle(input_shape, num_classes: int = 10, n: int = 2) -> DataBundle:
    """A tiny data set of the given shape (num_classes 0: regression)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *input_shape, generator=g)
    y = torch.randn(n, 1, generator=g) if num_classes == 0 else torch.arange(n) % num_classes
    return DataBundle("tiny", "regression" if num_classes == 0 else "classification", x, y, x, y,
                      num_classes, torch.zeros(n, dtype=torch.bool))


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def classes_for(name: str) -> int:
    return 2 if name.startswith("steady") else 10  # S5's nets end in a single unit


# ---- parameter counts ------------------------------------------------------------------------

def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_mlp_counts_match_zhang_table_1():
    cifar_crop = bundle((3, 28, 28))
    assert num_params(build_model(model_cfg("mlp1"), *shape_of(cifar_crop))) == 1_209_866
    assert num_params(build_model(model_cfg("mlp3"), *shape_of(cifar_crop))) == 1_735_178
    assert num_params(build_model(model_cfg("mlp", depth=2, width=7), *shape_of(bundle((5,), 3)))) == \
        linear(5, 7) + linear(7, 7) + linear(7, 3)


def test_fc_count():
    assert num_params(build_model(model_cfg("fc", hidden_units=16), *shape_of(bundle((1, 32, 32))))) == \
        linear(1024, 16) + linear(16, 10)


def test_alexnet_small_count_is_zhang_table_1():
    # conv5×5 3→64, conv5×5 64→64, "SAME" padding: 28 → pool → 14 → pool → 7, so 64·7·7 features.
    by_hand = conv(3, 64, 5) + conv(64, 64, 5) + linear(64 * 7 * 7, 384) + linear(384, 192) + linear(192, 10)
    assert by_hand == 1_387_786
    assert num_params(build_model(model_cfg("alexnet_small"), *shape_of(bundle((3, 28, 28))))) == by_hand


def test_inception_small_counts_within_one_percent_of_zhang():
    cifar_crop = bundle((3, 28, 28))
    with_bn = num_params(build_model(model_cfg("inception_small"), *shape_of(cifar_crop)))
    without_bn = num_params(build_model(model_cfg("inception_small_nobn"), *shape_of(cifar_crop)))
    assert abs(with_bn - 1_649_402) / 1_649_402 < 0.01
    assert without_bn == 1_649_402  # conv biases in place of BN's shift: Zhang's count exactly
    # BN adds a scale per channel on top: every conv's output channels once more.
    conv_channels = 96 + sum([32 + 32, 32 + 48, 80, 112 + 48, 96 + 64, 80 + 80, 48 + 96, 96, 176 + 160, 176 + 160])
    assert with_bn - without_bn == conv_channels


def test_steady_cnn_count():
    by_hand = (3 * 32 * 32 + conv(3, 96, 5) + conv(96, 384, 5)  # 32 → 28 → 9 → 5 → 1
               + linear(384, 384) + linear(384, 1))
    assert num_params(build_model(model_cfg("steady_cnn"), *shape_of(bundle((3, 32, 32), 2)))) == by_hand


# ---- every model on every image shape ---------------------------------------------------------

@pytest.mark.parametrize("shape", IMAGE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_on_image_shapes(name, shape):
    data = bundle(shape, classes_for(name))
    if (name, shape) in TOO_SMALL:
        with pytest.raises(ConfigError, match=rf"^invalid config: model={name}: .*need images of at least \d+×\d+"):
            build_model(model_cfg(name), *shape_of(data))
        return
    torch.manual_seed(0)
    model = build_model(model_cfg(name), *shape_of(data))
    model.train()
    out = model(data.x_train)
    assert out.shape == (2, 1 if name.startswith("steady") else 10)
    out.square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_smallest_image_is_named():
    # simple_batch without padding: h → h−4 → ⌊/2⌋ → −4 → ⌊/2⌋ ≥ 1 needs h ≥ 16.
    with pytest.raises(ConfigError, match="at least 16×16; the dataset gives 1×15×15"):
        build_model(model_cfg("simple_batch"), *shape_of(bundle((1, 15, 15))))
    build_model(model_cfg("simple_batch"), *shape_of(bundle((1, 16, 16))))


@pytest.mark.parametrize("name", MODELS)
def test_flat_data(name):
    sinusoid_like = bundle((10,), num_classes=0)
    if name in FLAT_ONLY_OK:
        out = build_model(model_cfg(name), *shape_of(sinusoid_like))(sinusoid_like.x_train)
        assert out.shape == (2, 1)
        return
    with pytest.raises(ConfigError) as err:
        build_model(model_cfg(name), *shape_of(sinusoid_like))
    assert str(err.value) == f"invalid config: model={name}: needs image data (C,H,W); dataset tiny gives shape (10,)"


def test_steady_nets_need_one_output():
    with pytest.raises(ConfigError, match="model=steady_cnn: is a binary classifier"):
        build_model(model_cfg("steady_cnn"), *shape_of(bundle((3, 32, 32), 10)))
    with pytest.raises(ConfigError, match="model=steady_mlp: has one output unit"):
        build_model(model_cfg("steady_mlp"), *shape_of(bundle((10,), 10)))


def test_input_bias_is_identity_linear_with_bias():
    layer = InputBias(4)
    linear_layer = nn.Linear(4, 4)
    with torch.no_grad():
        linear_layer.weight.copy_(torch.eye(4))
        linear_layer.bias.copy_(layer.bias)
    x = torch.randn(3, 4)
    torch.testing.assert_close(layer(x), linear_layer(x))
    assert [n for n, _ in layer.named_parameters()] == ["bias"]


def test_vgg_plan_and_dropout():
    model = build_model(model_cfg("vgg", dropout=0.5, batch_norm=True), *shape_of(bundle((3, 32, 32))))
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 8
    assert model.classifier[0].in_features == 512
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.classifier)
    with pytest.raises(ConfigError, match="model=vgg: layers lists channel counts"):
        build_model(model_cfg("vgg", layers=[64, "X"]), *shape_of(bundle((3, 32, 32))))


def test_nin_width_and_depth():
    model = build_model(model_cfg("nin", depth=3, width=2), *shape_of(bundle((3, 32, 32))))
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 * 3 + 1
    assert {c.out_channels for c in convs[:-1]} == {50} and convs[-1].out_channels == 10
    assert sum(c.stride == (2, 2) for c in convs) == 3


def test_resnet18_without_batch_norm():
    model = build_model(model_cfg("resnet18", batch_norm=False), *shape_of(bundle((3, 32, 32))))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.conv1.in_channels == 3 and model.fc.out_features == 10


@pytest.mark.parametrize("name", MODELS)
def test_every_model_yaml_validates(name):
    cfg = compose_config([f"model={name}"])
    validate(cfg)  # raises ConfigError on any key or value its schema refuses
    assert cfg.model.name == name and name in GROUPS["model"]  # checked against its own schema, not as user code


@pytest.mark.parametrize("override, message", [
    (["model=mlp", "model.depth=0"], "invalid config: model.depth=0: must be ≥ 1 and ≤ 10000"),
    (["model=mlp", "model.width=-1"], "invalid config: model.width=-1: must be ≥ 1"),
    (["model=nin", "model.width=-1"], "invalid config: model.width=-1: must be ≥ 1"),
])
def test_bad_sizes_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as err:
        validate(compose_config(override))
    assert str(err.value) == message
