"""J's optimisation-based measures, read from the training record's history.

History rows are evaluated every ``trainer.eval_every`` epochs, so the step counts have that
resolution: the first evaluated row whose train cross-entropy is below the threshold gives the step.
(One-logit classifiers train on BCE/2, so their cross-entropy is twice the recorded loss.)
"""
from gen.measures.registry import NotApplicable, measure


def first_step_below(ctx, threshold: float) -> int:
    kind = ctx.objective.kind
    if kind in ("mse", "squared"):
        raise NotApplicable(f"needs a cross-entropy objective (this run trained on {kind})")
    factor = 2.0 if kind == "binary" else 1.0
    for row in ctx.record.history:
        loss = row.get("train_loss")
        if loss is not None and factor * loss < threshold:
            return row["step"]
    raise NotApplicable(f"the train cross-entropy never fell below {threshold} at an evaluation")


@measure("steps_to_ce_0.1")
def steps_to_ce_01(ctx) -> float:
    return float(first_step_below(ctx, 0.1))


@measure("steps_ce_0.1_to_0.01")
def steps_ce_01_to_001(ctx) -> float:
    return float(first_step_below(ctx, 0.01) - first_step_below(ctx, 0.1))
