"""Shape checks shared by the convolutional models: image inputs, and images large enough."""
import torch
import torch.nn as nn

from gen.config import ConfigError


def require_image(model_name: str, input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        raise ConfigError("model", model_name,
                          f"needs image data (C,H,W); the dataset gives shape {tuple(input_shape)}")


def output_shape(module: nn.Module, input_shape: tuple[int, ...], model_name: str) -> tuple[int, ...]:
    """The shape ``module`` gives one input of ``input_shape`` (a dry run on zeros).

    Raises ConfigError, naming the smallest square image that works, where convolutions and
    poolings would shrink the image to nothing.
    """
    out = _dry_run(module, input_shape)
    if out is not None:
        return out
    channels, height, width = input_shape
    smallest = next((s for s in range(max(height, width) + 1, 257) if _dry_run(module, (channels, s, s))), None)
    need = f"images of at least {smallest}×{smallest}" if smallest else "larger images"
    raise ConfigError("model", model_name, f"its convolutions and poolings need {need}; "
                                           f"the dataset gives {channels}×{height}×{width}")


def _dry_run(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    was_training = module.training
    module.eval()  # BatchNorm on a single sample, and no running statistics touched
    try:
        with torch.no_grad():
            shape = tuple(module(torch.zeros(1, *input_shape)).shape[1:])
        return shape if all(shape) else None
    except RuntimeError:  # torch: "Output size is too small" / "Kernel size can't be greater ..."
        return None
    finally:
        module.train(was_training)


def layer_plan(model_name: str, plan: list) -> list:
    """Check a VGG-style plan: positive channel counts and "M" (a 2×2 max-pool)."""
    for item in plan:
        if item != "M" and not (isinstance(item, int) and not isinstance(item, bool) and item >= 1):
            raise ConfigError("model", model_name, f"layers lists channel counts ≥ 1 and 'M' (max-pool); got {item!r}")
    return list(plan)
