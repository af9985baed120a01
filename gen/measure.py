"""Measure a trained zoo: ``python -m gen.measure PATH... [measure=SET] [measure.params.K=V] [hydra/launcher=...]``.

Each PATH is a run folder or a folder holding run folders (a sweep, a folder of sweeps).  For every
completed run whose record lacks a measure of the set, or holds it under other params or computed by
other code, the measures are computed on its saved weights (gen.remeasure): never a training step.
The rest are skipped (up to date), and runs that cannot be measured say why in one line (not completed,
trained with ``trainer.save_weights=false``).

A measurement is a sweep: the runs to measure become the jobs of a Hydra multirun of gen's own config
(``measure_run=FOLDER`` each), launched by the same launchers as training (``hydra/launcher=parallel``
by default, ``sequential``, ``slurm``, ``submitit_local``, with their ``hydra.launcher.*`` keys).  Each job
takes its run's lock, writes metrics.json atomically and logs to the run's ``measure.log``; Hydra's
bookkeeping (``multirun.yaml``, ``.submitit/``) goes to ``outputs/measurements/<set>/`` (or
``hydra.sweep.dir``), never into the run folders, whose ``.hydra/`` stays as training left it.  At the end
a summary line, and the analysis of each sweep folder measured (one holding Hydra's multirun.yaml) is
written again (``analysis.auto=false``: not).  Exit status: 0, 1 if a run could not be measured, 2 for bad input.

Only keys that say what to measure and where may be given: ``measure``, ``measure.*``, ``trainer.device``,
``analysis.auto`` and Hydra's (``hydra/launcher=...``, ``hydra.*``); anything else is refused in one line,
exit 2: a run's own training config comes from its record.
"""
import hashlib
import logging
import sys
from pathlib import Path

from omegaconf import DictConfig

from gen import record
from gen.config import ConfigError

log = logging.getLogger("gen")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
ALLOWED_KEYS, ALLOWED_PREFIXES = ("measure", "trainer.device", "analysis.auto"), ("measure.", "hydra/", "hydra.")
USAGE = "usage: python -m gen.measure PATH... [measure=SET] [measure.params.KEY=VALUE] [hydra/launcher=NAME] ..."


def main(argv: list[str]) -> int:
    from gen.cli import EXIT_BAD_INPUT, run_with_clear_errors

    paths, overrides = split_args(argv)
    try:
        check_overrides(overrides)
        measure_cfg, analysis_auto = _compose(overrides)
        if not paths:
            raise ConfigError("PATH", "(none)", f"name at least one run or sweep folder ({USAGE})")
        runs = find_runs(paths)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    todo, lines = plan(runs, measure_cfg)
    for line in lines:
        print(line, file=sys.stderr)
    if todo:
        args = hydra_argv(todo, overrides, measure_cfg)
        sys.argv = [sys.argv[0], *args]  # Hydra reads its command line from sys.argv
        code = run_with_clear_errors(_hydra_main(), args)
        if code == EXIT_BAD_INPUT:
            return code
    left = [run for run in todo if _still_to_do(run, measure_cfg)]
    print(f"gen.measure: {len(runs)} run(s): {len(todo) - len(left)} measured, {len(runs) - len(todo)} skipped, "
          f"{len(left)} not measured" + (f" (see {', '.join(str(r / 'measure.log') for r in left[:3])})"
                                         if left else ""), file=sys.stderr)
    if analysis_auto and len(todo) > len(left):
        _analyse(sorted({run.parent for run in todo if run not in left and (run.parent / "multirun.yaml").exists()}))
    return 1 if left else 0


def split_args(argv: list[str]) -> tuple[list[Path], list[str]]:
    paths = [Path(a) for a in argv if "=" not in a and not a.startswith("-")]
    overrides = [a for a in argv if ("=" in a or a.startswith("-")) and a not in ("-m", "--multirun")]
    return paths, overrides


def check_overrides(overrides: list[str]) -> None:
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key not in ALLOWED_KEYS and not key.startswith(ALLOWED_PREFIXES):
            raise ConfigError(key, override.split("=", 1)[-1],
                              "a measurement takes each run's training config from its record; give only "
                              "measure, measure.*, trainer.device, analysis.auto and hydra keys")


def _compose(overrides: list[str]) -> tuple[DictConfig, bool]:
    """The measure set the overrides choose, checked (one line for a bad name or parameter)."""
    from hydra import compose, initialize_config_dir

    from gen.config.overrides import check_group_choices
    from gen.measures import check_set
    from gen.sweeps import resolvers

    resolvers.register()
    searchpath = [o for o in overrides if o.lstrip("+~").startswith("hydra.searchpath=")]  # the user's own sets
    config_overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")] + searchpath
    check_group_choices(config_overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=config_overrides)
    check_set(cfg.measure)
    return cfg.measure, bool(cfg.analysis.auto)


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run folder (one holding metrics.json) at or below the paths, once each, absolute."""
    runs: dict[Path, None] = {}
    for path in paths:
        if not path.is_dir():
            raise ConfigError("PATH", str(path), "not a folder")
        found = [path] if (path / record.METRICS_FILE).exists() else \
            sorted(p.parent for p in path.rglob(record.METRICS_FILE) if "analysis" not in p.parent.parts[-1:])
        if not found:
            raise ConfigError("PATH", str(path), f"holds no run folder (no {record.METRICS_FILE} at or below it)")
        runs.update(dict.fromkeys(p.resolve() for p in found))
    return list(runs)


def plan(runs: list[Path], measure_cfg) -> tuple[list[Path], list[str]]:
    """The runs with work left, and one line for each run that cannot be measured."""
    from gen import remeasure

    todo, lines = [], []
    for run in runs:
        rec = record.read(run)
        if rec.status != record.COMPLETED:
            why = rec.reason or f"status {rec.status}"
            lines.append(f"skipping {run}: not a completed run ({why})")
            continue
        if not remeasure.work(rec.metrics, measure_cfg, code=True):
            continue
        if not (run / remeasure.FINAL_WEIGHTS).exists() or not (run / remeasure.INIT_WEIGHTS).exists():
            lines.append(f"skipping {run}: cannot be measured again: it was trained with trainer.save_weights=false")
            continue
        todo.append(run)
    return todo, lines


def _still_to_do(run: Path, measure_cfg) -> bool:
    from gen import remeasure

    rec = record.read(run)
    return rec.status != record.COMPLETED or bool(remeasure.work(rec.metrics, measure_cfg, code=True))


def hydra_argv(runs: list[Path], overrides: list[str], measure_cfg) -> list[str]:
    """The multirun whose jobs are the runs: each job's folder is its run folder (Hydra writes no .hydra/
    there), the sweep's own bookkeeping goes to outputs/measurements/<set>/."""
    for run in runs:
        if any(c in str(run) for c in ",'\"\\[]{}()=$ "):
            raise ConfigError("PATH", str(run),
                              "a run folder whose path holds none of , ' \" \\ [ ] { } ( ) = $ or spaces")
    digest = hashlib.sha1("\n".join(map(str, runs)).encode()).hexdigest()[:8]
    sweep_dir = f"outputs/measurements/{measure_cfg.get('name') or 'measure'}__{digest}"
    given = {o.split("=", 1)[0] for o in overrides}
    argv = ["-m", *overrides, f"measure_run={','.join(map(str, runs))}", "hydra.job.name=measure",
            "hydra.output_subdir=null", "hydra.sweep.subdir=${measure_run}",
            "hydra.sweeper.summary=false", "~hydra.callbacks.analysis"]
    if "hydra.sweep.dir" not in given:
        argv.append(f"hydra.sweep.dir={sweep_dir}")
    return argv


def _hydra_main():
    import hydra

    return hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(measure_job)


def measure_job(cfg: DictConfig) -> None:
    """One job of the measurement sweep: measure the run ``cfg.measure_run`` under its lock.  A failure is
    logged (the run's measure.log) and leaves the record as it was; the sweep goes on."""
    from gen import remeasure
    from gen.sweeps import runlock

    run_dir = Path(cfg.measure_run)
    lock = runlock.acquire(run_dir)
    if lock is None:
        log.warning("skipping %s: running in another process (%s)", run_dir, runlock.describe_holder(run_dir))
        return None
    try:
        rec = record.read(run_dir)
        if rec.status != record.COMPLETED:
            log.warning("skipping %s: not a completed run (%s)", run_dir, rec.reason or rec.status)
            return None
        remeasure.measure_run(run_dir, rec.metrics, cfg.measure, cfg.trainer.device, code=True)
    except remeasure.CannotMeasure as why:
        log.warning("skipping %s", why)
    except Exception as error:  # this run's record stands as it was; the other runs are measured
        log.exception("measuring %s failed: %s: %s", run_dir, type(error).__name__, error)
    finally:
        lock.release()
    return None


def _analyse(sweeps: list[Path]) -> None:
    """The analysis of every sweep folder measured, written again (new measures ranked beside the old)."""
    from hydra.utils import get_method  # by name, as conf/config.yaml's analysis callback: gen never imports analysis

    analyse, default_out_dir = get_method("analysis.cli.analyse"), get_method("analysis.cli.default_out_dir")
    for sweep in sweeps:
        try:
            out = default_out_dir([sweep])
            analyse([sweep], out)
            print(f"analysis: {out / 'report.md'} and {out / 'report.html'}", file=sys.stderr)
        except Exception as error:  # the measures are written; the report is a view of them
            print(f"could not analyse {sweep} ({type(error).__name__}: {error}); run `python -m analysis {sweep}`",
                  file=sys.stderr)


if __name__ == "__main__":
    from gen.cli import exit_without_teardown
    from gen.measure import main as _main  # by its module name: a job's function pickles by reference

    exit_without_teardown(_main(sys.argv[1:]))
