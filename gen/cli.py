"""What ``launch.py`` does around Hydra: one clear line and a non-zero exit for every failure.

Hydra prints multi-line reports for composition errors; we let them reach us (by setting
HYDRA_FULL_ERROR for the duration of the call) and print one line instead.  A user who sets
HYDRA_FULL_ERROR=1 still gets the full traceback.

In a multirun a job whose run fails does not stop the sweep: the run records ``status: failed``
in its metrics.json (gen.run) and the job returns normally, so every launcher goes on with the
other jobs.  ``SweepSummary``, a Hydra callback in the main process, then lists the runs that
failed in this sweep and the exit status is non-zero.  Bad input and preemption still stop the
sweep: every job would fail the same way; so does a failure that cannot even be recorded (a full disk).
A run that another process holds (gen.sweeps.runlock) is skipped; the summary counts those apart.
"""
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gen.sweeps import resolvers, run_folder
from gen.config.overrides import check_group_choices, check_override_text
from gen.config import ConfigError, check_folder_names, validate
from gen.config.base import misspelt_key_hint, other_options_hint

resolvers.register()  # before Hydra composes; the parallel launcher's workers import this module too

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def run_with_clear_errors(main: Callable[[], object], argv: list[str]) -> int:
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    _sweep_failures.clear()
    _sweep_dirs.clear()
    try:
        check_override_text(argv)
        check_group_choices(argv)
        main()
        if _sweep_failures:
            return _fail(f"error: {len(_sweep_failures)} run(s) of this sweep failed (listed above); "
                         f"relaunching the same command runs them again", EXIT_FAILED)
    except (ConfigError, BadInput, run_folder.Refused) as error:
        return _fail(f"error: {error}", EXIT_BAD_INPUT)
    except (HydraException, OmegaConfBaseException) as error:
        if wants_traceback:
            raise
        return _fail(f"error: {composition_message(error)}", EXIT_BAD_INPUT)
    except Exception as error:  # a failed run: recorded in its metrics.json and log
        if wants_traceback:
            raise
        return _fail(f"error: {type(error).__name__}: {error}", EXIT_FAILED)
    finally:
        if not wants_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        _remove_unused_sweep_dirs()
    return 0


def exit_without_teardown(code: int) -> NoReturn:
    """End the process with ``code`` as a normal exit would — other threads joined, output flushed, the atexit
    handlers run (logging's, the trackers' own) — but without the interpreter tearing down every module it
    imported: with torch loaded that took 0.5-0.9 s of every launch here (measured from the last atexit handler to
    the exit), and nothing of a launch is left to it (records are written and closed before).
    ``atexit._run_exitfuncs`` is CPython's own exit path for those handlers (undocumented, present since 2.x)."""
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _remove_unused_sweep_dirs() -> None:
    """A sweep that stopped before any run began leaves a folder with only Hydra's multirun.yaml (and
    the submitit launchers' empty .submitit/): remove it, so no folder looks like a sweep that ran."""
    for sweep_dir in _sweep_dirs:
        try:
            entries = {e.name: e for e in sweep_dir.iterdir()}
        except OSError:
            continue
        submitit = entries.pop(".submitit", None)
        if set(entries) != {"multirun.yaml"} or (submitit is not None and any(Path(submitit).rglob("*.pkl"))):
            continue
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


def composition_message(error: BaseException) -> str:
    """One line from Hydra/OmegaConf's report: the override, the key and what went wrong."""
    text = str(error)
    match = re.match(r"Could not override '([^']+)'\.\s*To append to your config use \+(\S+)", text)
    if match:
        hints = other_options_hint(match[1]) + misspelt_key_hint(match[1])
        override = match[2] if len(match[2]) <= 100 else f"{match[2][:100]}… ({len(match[2])} characters)"
        return (f"invalid config: {override}: unknown key '{match[1]}'{hints} "
                f"(see the keys with `python launch.py --cfg job`)")
    cause = error.__cause__
    lines = [text.splitlines()[0] if text else type(error).__name__]
    if cause is not None and str(cause):
        lines.append(str(cause).splitlines()[0])
    return ": ".join(line.strip() for line in lines)


def _fail(line: str, code: int) -> int:
    print(line, file=sys.stderr)
    return code


# ---- jobs and sweeps ---------------------------------------------------------------------------
def run_job(cfg: DictConfig) -> float | None:
    """The task function's body: train one run and return its test accuracy.

    In a multirun a failed run returns None instead of raising: gen.run has recorded it (metrics.json
    with the error, and the log), and the sweep goes on; ``SweepSummary`` reports it at the end."""
    def train_it() -> dict | None:
        from gen.run import train

        return train(cfg)

    return _guarded(cfg, train_it)


def lockstep_tasks(group: list) -> list[Callable[[DictConfig], float | None]]:
    """The task functions of a lockstep group's jobs (gen.sweeps.ensemble.Member each), which a launcher
    runs one after another in one process: the first trains the whole group (gen.run.train_group) and
    keeps what it trained for each member; each other one hands that back (its job's ``.hydra/`` and
    callbacks are Hydra's as for any job), or, if the group could not take it (another process holds it,
    it was finished meanwhile, its checkpoint stands at another step), trains its run alone."""
    trained: dict[Path, dict] = {}

    def lead(cfg: DictConfig) -> float | None:
        def train_it() -> dict | None:
            from gen.run import train_group

            results = train_group(group)
            trained.update({m.run_dir: r for m, r in zip(group[1:], results[1:]) if r is not None})
            return results[0]

        return _guarded(cfg, train_it)

    def follow(cfg: DictConfig) -> float | None:
        run_dir = Path(os.path.abspath(HydraConfig.get().runtime.output_dir))
        metrics = trained.get(run_dir)
        if metrics is None:
            return run_job(cfg)
        import logging

        logging.getLogger("gen").info("%s: trained in lockstep with %s", run_dir, group[0].run_dir.name)
        return metrics["final"]["test_acc"]

    return [lead] + [follow] * (len(group) - 1)


def _guarded(cfg: DictConfig, train_it: Callable[[], dict | None]) -> float | None:
    """``train_it()``'s test accuracy (None: another process runs it), its failures as :func:`run_job` says."""
    try:
        validate(cfg)  # before torch and the rest load: a config error answers in about a second
    except ConfigError as error:
        _remove_fresh_run_dir()
        raise BadInput(str(error)) from None
    from gen.record import NotRecorded, was_recorded
    from gen.training.checkpoint import Interrupted

    try:
        metrics = train_it()
    except ConfigError as error:  # bad input: every later job would fail alike
        raise BadInput(str(error)) from None
    except (Interrupted, NotRecorded):  # a stop request; a failure not even recordable (a full disk)
        raise
    except Exception as error:  # only a failure its metrics.json records lets the sweep go on
        if not _in_multirun() or not was_recorded(error):
            raise
        return None
    return None if metrics is None else metrics["final"]["test_acc"]  # None: another process runs it


def _remove_fresh_run_dir() -> None:
    """The folder Hydra made for this job, if bad input left nothing else in it."""
    from gen import record

    try:
        record.remove_if_fresh(Path(HydraConfig.get().runtime.output_dir))
    except ValueError:  # not under Hydra
        pass


class BadInput(BaseException):
    """A ConfigError on its way out of a job.  Not an ``Exception``, so Hydra's job runner lets it
    pass without adding its own "Error executing job" report: the user sees one line."""


def _in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under Hydra
        return False


_sweep_failures: list[str] = []  # set in the main process by SweepSummary, read by run_with_clear_errors
_sweep_dirs: list[Path] = []     # the sweep folder of this launch (SweepSummary), removed if left unused


class RunFolderGuard(Callback):
    """A single run's config and folder checked before Hydra writes anything there (its ``launch.log``,
    ``.hydra/``): bad input leaves no folder, and a folder gen.sweeps.run_folder refuses (a planted link,
    another run's record, no permission) is left untouched.  A multirun checks every job's folder in its
    launcher (hydra_plugins.gen_launchers.jobs) before the first job starts."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from gen.sweeps.run_id import run_id

        job = job_config(config)
        try:
            validate(job)
        except ConfigError as error:
            raise BadInput(str(error)) from None  # not an Exception: Hydra's callback runner lets it through
        owner = None if job.get("measure_run") is not None else run_id(job)  # gen.measure writes as the run measured
        run_folder.check(Path(str(OmegaConf.select(config, "hydra.run.dir"))), owner)


def job_config(config: DictConfig) -> DictConfig:
    """A composed config as Hydra hands it to a job: without its ``hydra`` node."""
    import copy

    from omegaconf import open_dict, read_write

    job = copy.deepcopy(config)
    with read_write(job), open_dict(job):
        del job["hydra"]
    return job


class SweepSummary(Callback):
    """After a multirun, print the state of the sweep folder and every run that failed in this sweep
    (its error line, log and metrics.json); a failure makes ``launch.py`` exit non-zero.

    "In this sweep": a failed metrics.json written since the multirun started, so older failures
    that this sweep did not relaunch are listed but do not change the exit status.  Scanning the
    folder (not the jobs' return values) works with every launcher."""

    def __init__(self) -> None:
        self._before: dict[Path, int] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:  # before Hydra's sweeper creates the sweep folder from them
            check_folder_names(config)
        except ConfigError as error:
            raise BadInput(str(error)) from None  # not an Exception: Hydra's callback runner lets it through
        sweep_dir = Path(OmegaConf.select(config, "hydra.sweep.dir"))
        self._before = _record_stamps(sweep_dir)
        _sweep_dirs.append(sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from gen.sweeps import status

        sweep_dir = Path(OmegaConf.select(config, "hydra.sweep.dir"))
        folders = status.scan([sweep_dir]) if sweep_dir.is_dir() else []
        failed = [f for f in folders if f.status in status.FAILURES
                  and _stamp(f.path / status.METRICS_FILE) != self._before.get(f.path)]
        elsewhere = [f for f in folders if f.status == "running" and f.held]
        print(status.describe(folders, [sweep_dir]), file=sys.stderr)
        for folder in failed:
            print(f"failed in this sweep: {folder.path / status.METRICS_FILE}", file=sys.stderr)
        if elsewhere:  # not failures: their own process records them
            print(f"{len(elsewhere)} run(s) of this sweep are running in another process (not failures; "
                  f"relaunch once it ends to check them)", file=sys.stderr)
        _sweep_failures.extend(str(f.path) for f in failed)

    def __getstate__(self) -> dict:
        return {"_before": {}}  # launchers ship callbacks to every job: leave the snapshot home


def _record_stamps(sweep_dir: Path) -> dict[Path, int]:
    """metrics.json modification times of the run folders below ``sweep_dir`` (cheap: no parsing)."""
    if not sweep_dir.is_dir():
        return {}
    return {path.parent: _stamp(path) for path in sweep_dir.rglob("metrics.json")}


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
