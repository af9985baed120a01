"""What every gen launcher does first: compose each job's config in the main process (so conf/ as it
is at launch decides, also for jobs that wait in a queue) and cut the sweep into units of work."""
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.core.utils import configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, open_dict

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

    Every config, and every job's run folder (gen.sweeps.run_folder), is checked before the first job
    line is logged: bad input or a folder the sweep must not write stops the sweep with one line
    (gen.cli), not after a banner that says jobs are launching.  A job that is the same run as an
    earlier one (``seed=0,0,1``: the same run folder) is launched once, with one line saying so."""
    configs, folders = [], {}
    for idx, overrides in enumerate(job_overrides, initial_job_idx):
        config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = job_id(config, idx)
            config.hydra.job.num = idx
        folder = check_job(config)
        if folder in folders:
            log.info(f"\t#{idx} is the same run as #{folders[folder]} ({folder.name}): launched once")
            continue
        folders[folder] = idx
        configs.append(config)
    for config in configs:
        log.info(f"\t#{config.hydra.job.num} : {' '.join(filter_overrides(config.hydra.overrides.task))}")
    return configs


def check_job(sweep_config: DictConfig) -> Path:
    """The job's run folder, once its config and the folder are checked: raise gen.config.ConfigError
    where the config is bad input (what gen.run checks first), gen.sweeps.run_folder.Refused where the
    folder must not be written (a planted link, another run's record, no permission)."""
    from gen.config import validate  # lazily, as every gen import here (it needs no torch)
    from gen.sweeps import ensemble, run_folder
    from gen.sweeps.run_id import run_id

    member = ensemble.Member.from_sweep_config(sweep_config)  # the job's config, as Hydra hands it over
    validate(member.cfg)  # the measure names too, from conf/measure/all.yaml
    measuring = member.cfg.get("measure_run") is not None  # gen.measure's job writes as the run it measures
    run_folder.check(member.run_dir, None if measuring else run_id(member.cfg))
    return member.run_dir


def units_of(configs: list[DictConfig], initial_job_idx: int) -> tuple[list, list[list[int]]]:
    """The jobs as gen.sweeps.ensemble members, and gen.sweeps.ensemble.units of them, with a log line per
    lockstep group."""
    from gen.sweeps import ensemble  # lazily: Hydra imports every plugin module at startup

    members = [ensemble.Member.from_sweep_config(c) for c in configs]
    units = ensemble.units(members)
    for unit in units:
        if len(unit) > 1:
            log.info(f"\tlockstep: jobs {', '.join(f'#{initial_job_idx + i}' for i in unit)}")
    return members, units


def run_unit(sweep_configs: list[DictConfig], run_job: Callable[[DictConfig, Callable | None], Any]) -> list[Any]:
    """A unit's jobs, one after another: ``run_job(config, task)`` runs one through Hydra with ``task`` as its
    task function (None: the launcher's own).  A lockstep group's jobs get gen.cli.lockstep_tasks: the first
    trains the whole group, the others hand back what it trained for them."""
    if len(sweep_configs) == 1:
        return [run_job(sweep_configs[0], None)]
    from gen.cli import lockstep_tasks
    from gen.sweeps import ensemble

    tasks = lockstep_tasks([ensemble.Member.from_sweep_config(c) for c in sweep_configs])
    return [run_job(config, task) for config, task in zip(sweep_configs, tasks)]


def in_job_order(units: list[list[int]], unit_returns: list[list]) -> list:
    """The units' returns, back in the order of the jobs."""
    returns = [None] * sum(len(unit) for unit in units)
    for unit, rets in zip(units, unit_returns):
        for i, ret in zip(unit, rets):
            returns[i] = ret
    return returns
