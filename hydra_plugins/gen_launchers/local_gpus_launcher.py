"""``hydra/launcher=local_gpus``: hydra-joblib's launcher with its jobs cut into units of the sweep
(gen.sweeps.ensemble.units): with ``trainer.ensemble=K`` a lockstep group of up to K runs is one joblib
task, so it trains on one worker's GPU; every other run is a task of its own.  Configs are composed
in the main process, as the SLURM launcher does.  gen/sweeps/local_gpus.py pins each worker to a GPU.
"""
import logging
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, run_job, setup_globals
from hydra_plugins.gen_launchers.hydra_internals import process_joblib_cfg
from hydra_plugins.gen_launchers.jobs import ComposesEveryJobFirst, compose_jobs, in_job_order, start_sweep, units_of
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class LocalGpusLauncher(ComposesEveryJobFirst, JoblibLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from joblib import Parallel, delayed

        from gen.sweeps.sweep_progress import SweepProgress  # lazily: Hydra imports every plugin at startup

        start_sweep(self)
        joblib_cfg = dict(self.joblib, backend="loky")  # Hydra does not work with joblib's threads
        process_joblib_cfg(joblib_cfg)
        configs = compose_jobs(self, job_overrides, initial_job_idx, lambda c, idx: f"{c.hydra.job.name}_{idx}")
        members, units = units_of(configs, initial_job_idx)
        log.info(f"joblib: {joblib_cfg.get('n_jobs')} workers, {len(units)} tasks for {len(configs)} jobs")
        state = Singleton.get_state()
        progress = SweepProgress(m.run_dir for m in members)
        returns: list = [None] * len(units)
        # unordered: each unit's runs are reported as soon as its worker is done, not in sweep order
        for k, rets, written in Parallel(**joblib_cfg, return_as="generator_unordered")(
                delayed(_run_unit)(k, self.hydra_context, self.task_function, [configs[i] for i in unit], state)
                for k, unit in enumerate(units)):
            returns[k] = rets
            for i in units[k]:
                progress.finished(members[i].run_dir, here=written[units[k].index(i)])
        return in_job_order(units, returns)


def _run_unit(index: int, hydra_context, task_function, sweep_configs: list[DictConfig],
              singleton_state: dict[Any, Any]):
    """On a worker: the unit's jobs through Hydra's run_job, the first training a lockstep group."""
    from gen.sweeps import ensemble

    setup_globals()
    Singleton.set_state(singleton_state)

    def run(config: DictConfig) -> JobReturn:
        HydraConfig.instance().set_config(config)
        return run_job(hydra_context=hydra_context, config=config, task_function=task_function,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")

    from gen import record

    returns = ensemble.run_unit(sweep_configs, run)
    # whether this worker wrote each run's record (not another launch meanwhile): the sweep's progress line
    written = [record.written_here(ensemble.Member.from_sweep_config(c).run_dir) for c in sweep_configs]
    return index, returns, written
