"""``hydra/launcher=parallel`` (gen's default): the sweep's jobs on worker processes of this machine, as
many at once as it has GPUs (each worker pinned to its own) or, without a GPU, CPU cores (each run on one
torch thread).  ``hydra/launcher=sequential`` runs them one after another in the launching process.

As every gen launcher, it composes and checks every job's config here first (jobs.compose_jobs) and
cuts the sweep into units (gen.sweeps.ensemble.units): a lockstep group of ``trainer.ensemble=K`` runs is
one unit, trained on one worker; every other run is a unit of its own.  Each unit goes to the next free
worker.  A sweep of a single unit, or ``n_jobs=1``, runs in this process, as ``sequential`` does.

Start-up: the workers are forked from a fork server that imported gen's training code (torch, 2-4 s of
CPU) once, started as the launch begins so that its imports overlap the composing of the jobs' configs;
each worker lives for the whole sweep and trains unit after unit.  This process imports no torch on a
CPU machine, so a parallel sweep imports torch once, as a sequential one does.  (A fork of this process
would need torch here first; a fresh interpreter per worker would import it once per worker.)

The sweep's progress line is logged here for each run as its unit comes back, in the order units finish.
A job that raises (bad input, a stop request, a failure that could not be recorded; a failed run that
recorded its failure returns normally, gen.cli) comes back as Hydra's failed JobReturn, as with
``sequential``, and the sweeper raises it.  SIGTERM/SIGUSR1/SIGUSR2 to this process reach every worker:
each running run checkpoints and stops, and every unit still queued stops before it starts.
"""
import contextlib
import logging
import os
import signal
from typing import Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, run_job, setup_globals
from hydra_plugins.gen_launchers.jobs import check_job, compose_jobs, in_job_order, start_sweep, units_of
from hydra_plugins.gen_launchers.sequential_launcher import SequentialLauncher
from omegaconf import DictConfig

log = logging.getLogger(__name__)
# What the fork server imports once for every worker: gen's training code, and torch._dynamo, which every
# torch optimizer imports when it is built (2-3 s, the most of a small run's first job)
PRELOAD = ["gen.cli", "gen.run", "torch._dynamo", __name__]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)  # gen.training.checkpoint's


class ParallelLauncher(SequentialLauncher):
    def __init__(self, n_jobs: int) -> None:
        super().__init__()
        self.n_jobs = n_jobs

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from gen.config import ConfigError

        if not isinstance(self.n_jobs, int) or isinstance(self.n_jobs, bool) or self.n_jobs < 1:
            raise ConfigError("hydra.launcher.n_jobs", self.n_jobs, "the number of workers: a whole number ≥ 1")
        if self.n_jobs > 1 and len(job_overrides) > 1:
            _start_fork_server()  # its imports overlap the composing below
        start_sweep(self)
        configs = compose_jobs(self, job_overrides, initial_job_idx)
        members, units = units_of(configs, initial_job_idx)
        workers = min(self.n_jobs, len(units))
        if workers < 2:
            log.info(f"Launching {len(configs)} jobs locally")
            return self.run_here(configs, members, units)
        log.info(f"Launching {len(configs)} jobs on {workers} workers ({len(units)} tasks)")
        return self.run_on_workers(configs, members, units, workers)

    def run_on_workers(self, configs: list, members: list, units: list[list[int]], workers: int) -> list[JobReturn]:
        """The units on ``workers`` worker processes, a progress line per finished run."""
        import pickle
        from concurrent.futures import ProcessPoolExecutor, as_completed

        import cloudpickle

        from gen.sweeps.sweep_progress import SweepProgress

        progress = SweepProgress(m.run_dir for m in members)
        state = Singleton.get_state()
        returns: list = [None] * len(units)
        with ProcessPoolExecutor(workers, mp_context=_fork_server(), initializer=_start_worker,
                                 initargs=(workers,)) as executor, _forwarding_stop_signals():
            # cloudpickle, both ways: the task function may live in __main__ (launch.py), which a worker cannot
            # import, and a job's return holds Hydra's config classes, which its plugin scan defines twice
            futures = [executor.submit(_run_unit, cloudpickle.dumps(
                (k, self.hydra_context, self.task_function, [configs[i] for i in unit], state)))
                for k, unit in enumerate(units)]
            try:
                for future in as_completed(futures):
                    k, rets, written = pickle.loads(future.result())
                    returns[k] = rets
                    for i, here in zip(units[k], written):
                        progress.finished(members[i].run_dir, here=here)
            except BaseException:
                executor.shutdown(wait=True, cancel_futures=True)  # no new unit; running ones end as they do
                raise
        return in_job_order(units, returns)


def _fork_server():
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _start_fork_server() -> None:
    """Start the fork server now, so that it imports while this process composes the jobs (it would
    otherwise start when the first worker is needed, and the sweep would wait for its imports)."""
    from multiprocessing import forkserver

    _fork_server()
    forkserver.ensure_running()


@contextlib.contextmanager
def _forwarding_stop_signals():
    """While the workers run: a stop signal to this process is sent on to each of them."""
    import multiprocessing

    def forward(signum, _frame):
        log.warning("signal %d: the workers checkpoint their runs and start no new one", signum)
        for child in multiprocessing.active_children():
            os.kill(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_worker(workers: int) -> None:
    """A worker's first act: a stop signal checkpoints and stops its runs (also one between two units),
    and it takes its GPU before anything initialises CUDA (gen.sweeps.workers)."""
    from gen.sweeps import workers as pool
    from gen.training import checkpoint

    checkpoint.install_signal_handlers()
    pool.pin_worker(workers)


def _run_unit(payload: bytes) -> bytes:
    """On a worker: the unit's jobs through Hydra's run_job, the first training a lockstep group; returns
    (pickled) the unit's index, its JobReturns and whether this worker wrote each run's record (not another
    launch meanwhile), for the progress line."""
    import pickle

    import cloudpickle

    from gen import record
    from gen.sweeps import ensemble

    index, hydra_context, task_function, sweep_configs, singleton_state = pickle.loads(payload)
    setup_globals()
    Singleton.set_state(singleton_state)

    def run(config: DictConfig) -> JobReturn:
        check_job(config)  # again: the unit may have waited for hours since the sweep checked its folder
        HydraConfig.instance().set_config(config)
        ret = run_job(hydra_context=hydra_context, config=config, task_function=task_function,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        log.info(f"#{config.hydra.job.num} ran in worker {os.getpid()}")  # in the job's launch.log too
        return ret

    returns = ensemble.run_unit(sweep_configs, run)
    written = [record.written_here(ensemble.Member.from_sweep_config(c).run_dir) for c in sweep_configs]
    return cloudpickle.dumps((index, returns, written))

