"""``hydra/launcher=sequential``: Hydra's basic launcher, one job after another in this process, plus
lockstep groups: with ``trainer.ensemble=K`` the runs that can train together (gen.sweeps.ensemble.plan)
are trained by their first member's job in one loop (gen.training.lockstep).
Every job still goes through Hydra's ``run_job`` (its folder, ``.hydra/``, callbacks, return value);
the other members' jobs find the result their group wrote.  The default launcher, ``parallel``, runs a
sweep of one unit of work this way too.
"""
import logging
from typing import Sequence

from hydra.core.utils import JobReturn, configure_log, run_job
from hydra_plugins.gen_launchers.hydra_internals import BasicLauncher
from hydra_plugins.gen_launchers.jobs import (ComposesEveryJobFirst, check_job, compose_jobs, in_job_order, run_unit,
                                              start_sweep, units_of)

log = logging.getLogger(__name__)


class SequentialLauncher(ComposesEveryJobFirst, BasicLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        start_sweep(self)
        configs = compose_jobs(self, job_overrides, initial_job_idx)
        log.info(f"Launching {len(configs)} jobs locally")
        members, units = units_of(configs, initial_job_idx)
        return self.run_here(configs, members, units)

    def run_here(self, configs: list, members: list, units: list[list[int]]) -> list[JobReturn]:
        """The units one after another in this process, a progress line per finished run."""
        from gen.sweeps.sweep_progress import SweepProgress  # lazily: Hydra imports every plugin module at startup

        progress = SweepProgress(m.run_dir for m in members)
        folder = {id(config): member.run_dir for config, member in zip(configs, members)}

        def run(config, task) -> JobReturn:
            ret = self._run(config, task or self.task_function)
            progress.finished(folder[id(config)])
            return ret

        return in_job_order(units, [run_unit([configs[i] for i in unit], run) for unit in units])

    def _run(self, config, task) -> JobReturn:
        check_job(config)  # again: an earlier job may have run for hours since the sweep checked its folder
        ret = run_job(hydra_context=self.hydra_context, task_function=task, config=config,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret
