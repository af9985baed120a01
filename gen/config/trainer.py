"""Schema of the ``trainer`` group: batches, stopping rule, cadence, device."""
from dataclasses import dataclass

from gen.config.base import register, spec


@dataclass
class StopConfig:
    # train_error: stop when train error < threshold; train_loss: when train loss < threshold;
    # interpolation: S2's rule, Zhang et al. 2017 (train CE < 0.01 or train accuracy > 99.7%); none: max epochs.
    rule: str = spec(choices=["none", "train_error", "train_loss", "interpolation"])
    threshold: float = spec(ge=0)


@dataclass
class DivergenceConfig:
    # the rule these two parametrise: gen/training/divergence.py's docstring
    loss_factor: float = spec(gt=1)
    patience: int = spec(ge=1)


@register("trainer", "*")  # every preset shares one schema
@dataclass
class TrainerConfig:
    name: str
    # the classification loss (gen.training.objective): cross_entropy, or squared (½‖f(x) − e_y‖², Belkin et al.)
    loss: str = spec(choices=["cross_entropy", "squared"])
    batch_size: int = spec(ge=1)
    max_epochs: int = spec(ge=0)          # 0: evaluate the network as built (model=zhang_expressivity)
    max_steps: int | None = spec(ge=1)
    stop: StopConfig
    divergence: DivergenceConfig
    eval_every: int = spec(ge=1)            # epochs between full train/test evaluations
    eval_batch_size: int = spec(ge=1)    # no-grad batches for evaluation
    checkpoint_every: int = spec(ge=0)      # epochs between checkpoints; 0: only on preemption
    device: str = spec(choices=["auto", "cpu", "cuda"])
    precision: str = spec(choices=["32", "bf16"])  # bf16: autocast mixed precision
    save_weights: bool
    # keep the weights after these epochs too (model_epoch_E.pt; not in the run id: the same training),
    # measured like the final weights (metrics.json at_epochs)
    save_epochs: list[int] = spec(min_length=0, items={"ge": 1})
    progress: bool                      # tqdm bar per epoch
    # K > 1: a multirun trains up to K runs that differ only in seed, corruption and optimizer.lr
    # in lockstep (gen.sweeps.ensemble, gen.training.lockstep: one stacked step for all); each recorded as if alone.
    ensemble: int = spec(ge=1)
