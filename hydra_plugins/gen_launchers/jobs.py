"""What every gen launcher does first: compose each job's config in the main process (so conf/ as it
is at launch decides, also for jobs that wait in a queue) and cut the sweep into units of work."""
import copy
import logging
from pathlib import Path
from typing import Sequence

from hydra.core.utils import configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)


def start_sweep(launcher) -> None:
    """Hydra's set-up in the launching process, as its own launchers do, and the sweep folder."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)


class ComposesEveryJobFirst:
    """A launcher whose ``launch`` composes and checks every job's config with :func:`compose_jobs`
    before it starts any job: gen's sweeper (gen_sweeper.py) leaves the batch's check to it.

    The sweeper reads the attribute, not ``isinstance``: Hydra's plugin scan executes each plugin
    module again after another one imported it, so this class may exist twice."""
    composes_every_job_first = True


def compose_jobs(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
                 job_id=lambda config, idx: idx) -> list[DictConfig]:
    """Each job's config, numbered from ``initial_job_idx``; ``job_id`` names ``hydra.job.id``.

    Every config is checked before the first job line is logged: bad input stops the sweep with one
    line (gen.cli), not after a banner that says jobs are launching."""
    configs = []
    for idx, overrides in enumerate(job_overrides, initial_job_idx):
        config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = job_id(config, idx)
            config.hydra.job.num = idx
        check_job(config)
        configs.append(config)
    for idx, overrides in enumerate(job_overrides, initial_job_idx):
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
    return configs


def check_job(sweep_config: DictConfig) -> None:
    """Raise gen.config.ConfigError where a job's config is bad input (what gen.run checks first)."""
    from gen.config import validate  # lazily, as every gen import here (it needs no torch)

    job = copy.deepcopy(sweep_config)
    with read_write(job), open_dict(job):
        del job["hydra"]  # as Hydra hands a job its config
    validate(job)  # the measure names too, from conf/measure/all.yaml


def units_of(configs: list[DictConfig], initial_job_idx: int) -> tuple[list, list[list[int]]]:
    """The jobs as gen.sweeps.ensemble members, and gen.sweeps.ensemble.units of them, with a log line per lockstep group."""
    from gen.sweeps import ensemble  # lazily: Hydra imports every plugin module at startup

    members = [ensemble.Member.from_sweep_config(c) for c in configs]
    units = ensemble.units(members)
    for unit in units:
        if len(unit) > 1:
            log.info(f"\tlockstep: jobs {', '.join(f'#{initial_job_idx + i}' for i in unit)}")
    return members, units


def in_job_order(units: list[list[int]], unit_returns: list[list]) -> list:
    """The units' returns, back in the order of the jobs."""
    returns = [None] * sum(len(unit) for unit in units)
    for unit, rets in zip(units, unit_returns):
        for i, ret in zip(unit, rets):
            returns[i] = ret
    return returns
