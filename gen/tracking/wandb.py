"""``logger=wandb``: one W&B run per gen run, id and name = the run id (so a resumed run continues it:
``resume="allow"``), project and group = the sweep's folder name unless set, written below the run folder
(RUN_DIR/wandb/).  Offline unless ``logger.wandb.mode`` (WANDB_MODE) says otherwise, so no run waits on a
network; ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads later."""
from gen.tracking.base import Tracker, final_values, scalars
from gen.tracking.session import remove_folder


class Wandb(Tracker):
    name = "wandb"

    def start(self, run_id: str, config: dict, resumed: bool) -> None:
        import wandb

        if not resumed:  # a fresh start (rerun=true, a failure without checkpoint) replaces earlier attempts,
            for attempt in (self.run_dir / "wandb").glob("offline-run-*"):  # which would sync as the same id
                remove_folder(attempt)
        options = self.options
        # console="off": wandb would otherwise wrap stdout/stderr, which the run's own log owns;
        # no system stats: a sampling thread per run for numbers nobody asked for
        settings = wandb.Settings(console="off", x_disable_stats=True, silent=True)
        self.run = wandb.init(dir=str(self.run_dir), id=run_id, name=run_id, resume="allow",
                              project=options["project"] or self.sweep, group=options["group"] or self.sweep,
                              entity=options["entity"], mode=options["mode"], config=config,
                              reinit="create_new", settings=settings)

    def log_row(self, row: dict, step: int) -> None:
        self.run.log(scalars(row), step=step)

    def end(self, metrics: dict) -> None:
        self.run.summary.update({**final_values(metrics), "status": metrics["status"]})
        self.run.finish(exit_code=0)

    def close(self, outcome: str) -> None:
        self.run.finish(exit_code=1)
