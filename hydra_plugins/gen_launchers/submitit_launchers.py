"""hydra-submitit's launchers with four changes gen's sweeps rely on (hydra/launcher=slurm|submitit_local):

1. Configs are composed at submission and shipped with each job.  hydra-submitit composes a job's
   config on the node when it starts, from whatever conf/ holds then, so editing conf/ while jobs
   wait in the queue would change them.
2. A run that fails ends its job with a non-zero exit, so SLURM marks it FAILED (hydra-submitit
   returns the failure as a value and SLURM says COMPLETED); the sweep still collects every job's
   outcome (gen.outcome), as the local launchers do: a job that ended well hands back its runs'
   outcomes, and for a FAILED job this process reads each run's outcome from its metrics.json (a
   job that died before its run recorded anything is a ``failed`` outcome that says so and names
   the job's log), never from submitit's error text.
3. Preemption: the run checkpoints before submitit requeues the job (gen.sweeps.preemption); the
   requeued job gets the same arguments and resumes from checkpoint.pt.
4. With ``trainer.ensemble=K`` a job is a unit of the sweep (gen.sweeps.ensemble.units): a lockstep group
   of up to K runs trained together, or one run; the job runs its runs one after another.

Hydra imports every module of hydra_plugins at startup, so gen (and torch) are imported lazily here.
"""
import copy
import logging
import os
from pathlib import Path
from typing import Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra_plugins.gen_launchers.hydra_internals import executor_kind, failure_of, preemption_signal
from hydra_plugins.gen_launchers.jobs import ComposesEveryJobFirst, compose_jobs, in_job_order, run_unit, units_of
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


class RunFailed(Exception):
    """Raised on the node after a run failed, so that the job's exit status says so."""


class FrozenConfigMixin(ComposesEveryJobFirst):
    """Overrides BaseSubmititLauncher's ``launch`` (main process) and ``__call__`` (on the node)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from gen.sweeps import resolvers

        resolvers.register()  # the ${run_id:} of the run folders

        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        configs = compose_jobs(self, job_overrides, initial_job_idx)  # the node sets hydra.job.id
        log.info(f"Submitit '{executor_kind(self)}' sweep output dir : {sweep_dir}")
        members, units = units_of(configs, initial_job_idx)  # one job per run, or per lockstep group (trainer.ensemble)
        state = Singleton.get_state()
        jobs = executor.map_array(self, [[configs[i] for i in unit] for unit in units],
                                  ["hydra.sweep.dir"] * len(units),
                                  [[initial_job_idx + i for i in unit] for unit in units], [state] * len(units))
        unit_returns = []
        for job, unit in zip(jobs, units):
            try:
                unit_returns.append(job.results()[0])
            except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError):
                overrides = [list(configs[i].hydra.overrides.task) for i in unit]  # duplicate jobs are gone
                unit_returns.append([_return_of(job, members[i].run_dir, o) for i, o in zip(unit, overrides)])
        return in_job_order(units, unit_returns)

    def _executor(self):
        """The executor hydra-submitit's ``launch`` builds, with the same parameter mapping."""
        import submitit

        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{executor_kind(self)}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=executor_kind(self), **init)
        base_keys = set(OmegaConf.structured(submitit_launcher.BaseQueueConf).keys())
        kind = executor_kind(self)
        executor.update_parameters(**{k if k in base_keys else f"{kind}_{k}": v for k, v in params.items()})
        return executor

    def __call__(self, sweep_configs: list[DictConfig], job_dir_key: str, job_nums: list[int],
                 singleton_state: dict) -> list[JobReturn]:
        """One unit of the sweep (a run, or a lockstep group) on the node."""
        import submitit

        from gen.outcome import RunOutcome
        from gen.record import METRICS_FILE
        from gen.sweeps import resolvers

        resolvers.register()  # on the node, before the jobs' configs resolve

        Singleton.set_state(singleton_state)
        setup_globals()
        # run_job marks parts of the config read-only; a requeued job must get the pristine one back
        sweep_configs = copy.deepcopy(sweep_configs)
        for config, job_num in zip(sweep_configs, job_nums):
            with open_dict(config.hydra.job) as job:
                job.id = submitit.JobEnvironment().job_id
                job.num = job_num
        returns = run_unit(sweep_configs, lambda config, task: self._run(config, job_dir_key, task))
        for ret in returns:  # each a finished job: a training job returns its run's outcome (gen.cli.run_job)
            done = ret.return_value
            if isinstance(done, RunOutcome) and done.failed:  # recorded in its metrics.json: read back at home
                raise RunFailed(f"run failed: {done.reason} (recorded in {done.run_dir / METRICS_FILE})")
        return returns

    def _run(self, sweep_config: DictConfig, job_dir_key: str, task) -> JobReturn:
        from gen.training import checkpoint
        from gen.sweeps import preemption

        usr_sig = preemption_signal()
        with preemption.deferred_requeue(usr_sig):
            ret = run_job(hydra_context=self.hydra_context, task_function=task or self.task_function,
                          config=sweep_config, job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")
        if ret.status == JobStatus.FAILED:
            if isinstance(failure_of(ret), checkpoint.Interrupted):
                preemption.requeue_if_preempted(usr_sig)  # exits here when submitit requeues the job
            raise failure_of(ret)
        return ret


def _return_of(job, run_dir: Path, overrides: list[str]) -> JobReturn:
    """A run of a job that failed, as a finished job whose return value is the run's outcome, read from its
    record: its result (another run of the unit failed), the failure it recorded, or, where it left no
    valid record (the job died first), a failed outcome that says so; each failure names the job's log."""
    from gen import outcome, record

    found = record.read(run_dir)
    job_line = f"job {job.job_id} ({' '.join(overrides)})"
    if found.is_result:
        result = outcome.of_record(run_dir, found.metrics)
    elif found.status == record.FAILED:
        recorded = outcome.of_record(run_dir, found.metrics).reason
        result = outcome.failed(run_dir, f"{job_line} failed: {recorded}; log: {job.paths.stderr}")
    else:
        left = found.reason or f"no {record.METRICS_FILE}"
        result = outcome.failed(run_dir, f"{job_line} ended before its run recorded anything ({left}); "
                                         f"log: {job.paths.stderr}")
    ret = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
    ret.return_value = result
    ret.working_dir = os.getcwd()
    return ret


class SlurmLauncher(FrozenConfigMixin, submitit_launcher.SlurmLauncher):
    pass


class LocalLauncher(FrozenConfigMixin, submitit_launcher.LocalLauncher):
    pass
