"""``logger=tensorboard``: event files in RUN_DIR/<folder>/, so ``tensorboard --logdir SWEEP_DIR`` shows every
run of a sweep (named by its run id) and the HPARAMS view shows the sweep as a table."""
from gen.tracking.base import Tracker, final_values, hyperparameters, scalars
from gen.tracking.session import remove_folder


class TensorBoard(Tracker):
    name = "tensorboard"

    def start(self, run_id: str, config: dict, resumed: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = self.run_dir / self.options["folder"]
        if not resumed:
            remove_folder(self.folder)
        # purge_step: events past the last step this tracker recorded (written before a kill, never
        # confirmed) are dropped by TensorBoard's reader, so no step shows twice
        purge = self.last_step + 1 if resumed and self.last_step is not None else None
        self.writer = SummaryWriter(str(self.folder), purge_step=purge)
        self.config = config

    def log_row(self, row: dict, step: int) -> None:
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()  # once per evaluation: what tracking.json says is logged is on disk

    def end(self, metrics: dict) -> None:
        # run_name=".": the hparams land in this run's own folder, beside its scalars (not a subfolder)
        self.writer.add_hparams(hyperparameters(self.config), final_values(metrics), run_name=".",
                                global_step=metrics["final"]["steps"])
        self.writer.close()

    def close(self, outcome: str) -> None:
        self.writer.close()
