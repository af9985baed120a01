"""Schema of the ``trainer`` group: batches, stopping rule, cadence, device."""
from dataclasses import dataclass, field

from gen.schema.base import register, spec


@dataclass
class StopConfig:
    # train_error: stop when train error < threshold; train_loss: when train loss < threshold;
    # interpolation: REFERENCE.md's rule (train CE < 0.01 or train accuracy > 99.7%); none: max epochs.
    rule: str = spec("none", choices=["none", "train_error", "train_loss", "interpolation"])
    threshold: float = spec(0.01, ge=0)


@dataclass
class DivergenceConfig:
    # gen.divergence: diverged when the loss or a weight is non-finite, or when the train loss is above
    # loss_factor × max(initial loss, chance-level loss) for `patience` evaluations in a row (or at the last).
    loss_factor: float = spec(10.0, gt=1)
    patience: int = spec(3, ge=1)


@register("trainer", "*")  # every preset shares one schema
@dataclass
class TrainerConfig:
    name: str = "default"
    batch_size: int = spec(64, ge=1)
    max_epochs: int = spec(100, ge=0)          # 0: evaluate the network as built (model=zhang_expressivity)
    max_steps: int | None = spec(None, ge=1)
    stop: StopConfig = field(default_factory=StopConfig)
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    eval_every: int = spec(1, ge=1)            # epochs between full train/test evaluations
    eval_batch_size: int = spec(4096, ge=1)    # no-grad batches for evaluation
    checkpoint_every: int = spec(0, ge=0)      # epochs between checkpoints; 0: only on preemption
    device: str = spec("auto", choices=["auto", "cpu", "cuda"])
    precision: str = spec("32", choices=["32", "bf16"])  # bf16: autocast mixed precision
    save_weights: bool = True
    progress: bool = True                      # tqdm bar per epoch
    # K > 1: a multirun trains up to K runs that differ only in seed, corruption and optimizer.lr
    # in lockstep (gen.ensemble, gen.lockstep: one vmapped step for all); each recorded as if alone.
    ensemble: int = spec(1, ge=1)
