"""Experiment trackers (``logger=[tensorboard,mlflow,wandb,comet,csv]``): views of metrics.json, which stays the
record.  gen.run opens a :class:`~gen.tracking.session.Session` per run once its config is checked; the
training loop hands it each evaluation row (``Trainer.on_evaluation``) and gen.run its final record.
A tracker that fails logs one warning and stops; the run never notices (gen.tracking.session).
(Not gen.measures.trajectory's per-step "tracker", which computes measures inside the loop.)"""
from gen.tracking.session import Session, open_session

__all__ = ["Session", "open_session"]
