"""When a run has diverged: the rule a run's record (and lockstep, member by member) follows.

A run diverged when, at an evaluation,

- ``non_finite_loss``: a step's loss or the evaluated training loss is NaN or infinite;
- ``non_finite_parameters``: a weight is NaN or infinite;
- ``loss_above_bound``: the evaluated training loss has stayed above ``trainer.divergence.loss_factor``
  × the reference loss for ``trainer.divergence.patience`` evaluations in a row, or is above it at the
  run's last evaluation.  The reference is the larger of the loss at initialisation (the epoch-0
  evaluation) and the chance-level loss (the loss of a uniform prediction: ln C for C-class
  cross-entropy, ½(1 − 1/C) for the squared loss on one-hot targets, ln(2)/2 for the one-output
  BCE/2); regression has no chance level and uses the
  initial loss alone.

The rule needs nothing but the history rows (plain floats) and one reduction over the weights per
evaluation, so it adds no device sync to the training step, and a resumed run applies it as if it
had never stopped.
"""
import math

import torch

NON_FINITE_LOSS = "non_finite_loss"
NON_FINITE_PARAMETERS = "non_finite_parameters"
LOSS_ABOVE_BOUND = "loss_above_bound"
RULES = (NON_FINITE_LOSS, NON_FINITE_PARAMETERS, LOSS_ABOVE_BOUND)


def chance_loss(objective_kind: str, num_classes: int) -> float | None:
    """The loss of a prediction that ignores its input (uniform over the classes), or None (regression)."""
    if objective_kind == "cross_entropy":
        return math.log(num_classes)
    if objective_kind == "squared":  # ½‖(1/C)·1 − e_y‖² = ½((1 − 1/C)² + (C − 1)/C²)
        return 0.5 * (1 - 1 / num_classes)
    if objective_kind == "binary":
        return 0.5 * math.log(2)
    return None


def bound(history: list[dict], chance: float | None, factor: float) -> float:
    initial = history[0]["train_loss"]
    return factor * max(initial, chance if chance is not None else initial)


def check(history: list[dict], model: torch.nn.Module, chance: float | None, factor: float, patience: int,
          last: bool = False) -> dict | None:
    """The divergence the latest evaluation (``history[-1]``) shows, or None; ``last``: no evaluation follows."""
    row = history[-1]
    if not _finite(row["train_loss"]):
        return verdict(NON_FINITE_LOSS, row)
    if not parameters_finite(model):
        return verdict(NON_FINITE_PARAMETERS, row)
    limit = bound(history, chance, factor)
    above = 0
    for past in reversed(history):
        if not past["train_loss"] > limit:
            break
        above += 1
    if above >= patience or (last and above):
        return verdict(LOSS_ABOVE_BOUND, row, bound=limit, evaluations_above=above)
    return None


def verdict(rule: str, row: dict, **detail) -> dict:
    """What metrics.json records under ``divergence``."""
    return {"rule": rule, "epoch": row["epoch"], "step": row["step"], "train_loss": row["train_loss"], **detail}


def parameters_finite(model: torch.nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return not flags or bool(torch.stack(flags).all())


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)
