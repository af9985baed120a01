"""``hydra/launcher=parallel`` (gen's default): the sweep's jobs on worker processes of this machine, as
many at once as it has GPUs (each worker pinned to its own) or, without a GPU, CPU cores (each run on one
torch thread).  ``hydra/launcher=sequential`` runs them one after another in the launching process.

As every gen launcher, it composes and checks every job's config here first (jobs.compose_jobs) and
cuts the sweep into units (gen.sweeps.ensemble.units): a lockstep group of ``trainer.ensemble=K`` runs is
one unit, trained on one worker; every other run is a unit of its own.  Each unit goes to the next free
worker.  A sweep of a single unit, or ``n_jobs=1``, runs in this process, as ``sequential`` does.

Start-up: the workers are forked from a fork server (gen.sweeps.fork_server), started as the launch
begins: it imports gen's training code (torch and torch._dynamo: 3-5 s of CPU) once for all of them while
this process composes the jobs' configs, and each worker lives for the whole sweep, training unit after
unit.  The server leaves without tearing down its modules once this process has exited.  Forking this
process instead would put those imports after the composing (10 runs of 0.3 s each on 2 cores: 16.9 s
against 12.0 s from the fork server, one interleaved run, load average 1.9), and on a GPU machine this
process has asked CUDA for the GPU count, so a fork of it could not use CUDA.  A fresh interpreter per
worker would import everything once per worker.

The sweep's progress line is logged here for each run as its unit comes back, in the order units finish.
Each job's JobReturn comes back pickled, its return value the run's outcome (gen.outcome; a failed run that
recorded its failure returns its ``failed`` outcome, gen.cli) for gen's sweeper.  A job that raises (bad
input, a stop request, a failure that could not be recorded) comes back as Hydra's failed JobReturn, as
with ``sequential``, and the sweeper raises it.  SIGTERM/SIGUSR1/SIGUSR2 to this process reach every worker:
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
from hydra_plugins.gen_launchers.jobs import check_job, compose_jobs, in_job_order, run_unit, start_sweep, units_of
from hydra_plugins.gen_launchers.sequential_launcher import SequentialLauncher
from omegaconf import DictConfig

log = logging.getLogger(__name__)
PRELOAD = ["gen.sweeps.fork_server", __name__]  # what the fork server imports once for all workers
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)  # gen.training.checkpoint's


class ParallelLauncher(SequentialLauncher):
    def __init__(self, n_jobs: int) -> None:
        super().__init__()
        self.n_jobs = n_jobs

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from gen.config import ConfigError

        if not isinstance(self.n_jobs, int) or isinstance(self.n_jobs, bool) or self.n_jobs < 1:
            raise ConfigError("hydra.launcher.n_jobs", self.n_jobs, "the number of workers: a whole number ≥ 1")
        if self.n_jobs > 1 and len(job_overrides) > 1 and not _may_be_one_group(self.config):
            _start_fork_server()  # its imports overlap the composing below
        start_sweep(self)
        configs = compose_jobs(self, job_overrides, initial_job_idx)
        members, units = units_of(configs, initial_job_idx)
        workers = min(self.n_jobs, len(units))
        if workers < 2:
            log.info(f"Launching {len(configs)} jobs locally")
            return self.run_here(configs, members, units)
        log.info(f"Launching {len(configs)} jobs on {workers} workers ({len(units)} tasks)")
        return self.run_on_workers(configs, members, units, workers, _fork_server())

    def run_on_workers(self, configs: list, members: list, units: list[list[int]], workers: int,
                       context) -> list[JobReturn]:
        """The units on ``workers`` worker processes, a progress line per finished run."""
        import pickle
        from concurrent.futures import ProcessPoolExecutor, as_completed

        import cloudpickle

        from gen.sweeps.sweep_progress import SweepProgress

        progress = SweepProgress(m.run_dir for m in members)
        state = Singleton.get_state()
        returns: list = [None] * len(units)
        # cloudpickle, both ways: the task function may live in __main__ (launch.py), which a fork server's worker
        # cannot import, and Hydra's state and a job's return hold its config classes, which its plugin scan
        # defines twice.  What every job shares goes to each worker once, as it starts.
        sweep = cloudpickle.dumps((self.hydra_context, self.task_function, state, workers))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(sweep,)) as executor:
            futures = [executor.submit(_run_unit, k, cloudpickle.dumps([configs[i] for i in unit]))
                       for k, unit in enumerate(units)]  # the workers start here, before this process forwards signals
            try:
                with _forwarding_stop_signals():
                    for future in as_completed(futures):
                        k, rets, written = future.result()
                        rets = pickle.loads(rets)
                        returns[k] = rets
                        for i, here in zip(units[k], written):
                            progress.finished(members[i].run_dir, here=here)
            except BaseException:
                executor.shutdown(wait=True, cancel_futures=True)  # no new unit; running ones end as they do
                raise
        return in_job_order(units, returns)


def _may_be_one_group(config: DictConfig) -> bool:
    """Whether the sweep asks for lockstep groups, so that it may be a single unit trained in this process:
    then the fork server starts only once the units are known to need it, not beside that training."""
    from omegaconf import OmegaConf

    return (OmegaConf.select(config, "trainer.ensemble", default=1) or 1) != 1


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


_sweep: dict = {}  # in a worker: what every job of its sweep shares (_start_worker)


def _start_worker(sweep: bytes) -> None:
    """A worker's first act: Hydra's state as in the launching process; a stop signal checkpoints and stops
    its runs (also one between two units); and it takes its GPU before anything initialises CUDA
    (gen.sweeps.workers)."""
    import pickle

    from gen.sweeps import workers as pool
    from gen.training import checkpoint

    hydra_context, task_function, singleton_state, workers = pickle.loads(sweep)
    setup_globals()
    Singleton.set_state(singleton_state)
    _sweep.update(hydra_context=hydra_context, task_function=task_function)
    for sig in STOP_SIGNALS:  # not whatever a forked worker inherited from its parent
        signal.signal(sig, checkpoint.request)
    pool.pin_worker(workers)


def _run_unit(index: int, payload: bytes) -> tuple[int, bytes, list[bool]]:
    """On a worker: the unit's jobs (``payload``: their configs, pickled) through Hydra's run_job, the first
    training a lockstep group; returns the unit's index, its JobReturns (pickled) and whether this worker
    wrote each run's record (not another launch meanwhile), for the progress line."""
    import pickle

    import cloudpickle

    from gen import record
    from gen.sweeps import ensemble

    sweep_configs = pickle.loads(payload)
    hydra_context, task_function = _sweep["hydra_context"], _sweep["task_function"]

    def run(config: DictConfig, task) -> JobReturn:
        check_job(config)  # again: the unit may have waited for hours since the sweep checked its folder
        HydraConfig.instance().set_config(config)
        ret = run_job(hydra_context=hydra_context, config=config, task_function=task or task_function,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        log.info(f"#{config.hydra.job.num} ran in worker {os.getpid()}")  # in the job's launch.log too
        return ret

    returns = run_unit(sweep_configs, run)
    written = [record.written_here(ensemble.run_dir_of(config)) for config in sweep_configs]
    return index, cloudpickle.dumps(returns), written

