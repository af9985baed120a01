"""``hydra/sweeper=gen`` (the default): Hydra's basic sweeper, which also reads what became of every run.

It is the one place in the launching process that receives every launcher's returns: each job's
``return_value`` is its run's outcome (gen.outcome.RunOutcome; the launchers hand them back whether the job ran
here, on a worker or on a SLURM node).  Once the sweep ends it prints the summary (gen.sweeps.sweep_summary)
and, if a run failed, raises ``gen.outcome.SweepFailed`` carrying the outcomes, which ``launch.py`` turns into
its last line and exit status (gen.cli).  Why an exception: ``hydra.main`` discards the sweeper's returns
(hydra-core 1.3), so nothing else reaches the entry point but shared state; and Hydra runs the callbacks'
``on_multirun_end`` only when the sweep returns, so the sweeper ends them itself first (the analysis of a
sweep with a failed run is still written).

Before the sweep it checks the folder names the sweep's config gives (gen.config.check_folder_names), and a
sweep that stops before any run began leaves no sweep folder behind.

Before it launches a batch, Hydra's sweeper composes each job's config to find bad input early
(``validate_batch_is_legal``), and throws the configs away; gen's launchers then compose each one
again, in this process, and check it before the first job starts (jobs.compose_jobs).  That second
pass is the same check and more, so with a gen launcher this sweeper leaves it at that: a
multirun's first job no longer waits for every config to be composed twice.  With any other
launcher (Hydra's own basic one, say) it checks the batch as Hydra does.
"""
import shutil
from pathlib import Path
from typing import Any, Sequence

from hydra_plugins.gen_launchers.hydra_internals import basic_sweeper, end_multirun


class GenSweeper(basic_sweeper.BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict | None = None, summary: bool = True) -> None:
        super().__init__(max_batch_size, params)
        self.summary = summary  # the summary at the end (conf/hydra/sweeper/gen.yaml; gen.measure prints its own)

    def sweep(self, arguments: list[str]) -> Any:
        from gen.config import check_folder_names  # lazily: Hydra imports every plugin module at startup

        check_folder_names(self.config)  # before the basic sweeper creates the sweep folder from them
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            returns = super().sweep(arguments)  # raises the exception of a job that raised
        except BaseException:
            remove_if_unused(sweep_dir)
            raise
        self._end(sweep_dir, [r.return_value for batch in returns for r in batch])
        return returns

    def _end(self, sweep_dir: Path, values: list) -> None:
        from gen.outcome import RunOutcome, SweepFailed
        from gen.sweeps import sweep_summary

        outcomes = [v for v in values if isinstance(v, RunOutcome)]  # gen.measure's jobs return none
        if self.summary:
            sweep_summary.report(sweep_dir, outcomes)
        if any(o.failed for o in outcomes):
            end_multirun(self)  # as Hydra would have done, had the sweep returned
            raise SweepFailed(outcomes)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not getattr(self.launcher, "composes_every_job_first", False):  # jobs.ComposesEveryJobFirst
            super().validate_batch_is_legal(batch)


def remove_if_unused(sweep_dir: Path) -> None:
    """A sweep that stopped before any run began leaves a folder with only Hydra's multirun.yaml (and
    the submitit launchers' empty .submitit/): remove it, so no folder looks like a sweep that ran."""
    try:
        entries = {e.name: e for e in sweep_dir.iterdir()}
    except OSError:
        return
    submitit = entries.pop(".submitit", None)
    if set(entries) != {"multirun.yaml"} or (submitit is not None and any(Path(submitit).rglob("*.pkl"))):
        return
    shutil.rmtree(sweep_dir, ignore_errors=True)
    _remove_empty_parents(sweep_dir.parent)


def _remove_empty_parents(folder: Path) -> None:
    """The folders Hydra made on the way (outputs/sweeps/), if now empty; never the working directory or above."""
    here = Path.cwd().resolve()
    folder = folder.resolve()
    while folder != here and here in folder.parents:
        try:
            folder.rmdir()  # only succeeds on an empty folder
        except OSError:
            return
        folder = folder.parent
