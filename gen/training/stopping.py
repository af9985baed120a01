"""When a run stops training: its budget (``trainer.max_epochs``, ``trainer.max_steps``) and its stopping
rule (``trainer.stop``), judged on a fresh evaluation; and when it first interpolated its training set.
(When it exploded is gen.training.divergence's business.)"""

# S2 (Zhang et al. 2017): interpolation is train cross-entropy < 0.01 or train accuracy > 99.7%.
INTERPOLATION_LOSS = 0.01
INTERPOLATION_ACC = 0.997


def out_of_budget(step: int, max_steps: int | None) -> bool:
    return max_steps is not None and step >= max_steps


def rule_fires(stop_cfg, row: dict, interpolated: bool) -> bool:
    """``trainer.stop.rule`` on the evaluation ``row``."""
    rule, threshold = stop_cfg.rule, stop_cfg.threshold
    if rule == "train_error" and row["train_acc"] is not None:
        return 1.0 - row["train_acc"] < threshold
    if rule == "train_loss":
        return row["train_loss"] < threshold
    if rule == "interpolation":
        return interpolated
    return False


def interpolates(row: dict) -> bool:
    """Whether the evaluation ``row`` fits the training set by S2's rule."""
    return row["train_acc"] is not None and (row["train_loss"] < INTERPOLATION_LOSS
                                             or row["train_acc"] > INTERPOLATION_ACC)
