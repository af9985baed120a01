"""What ``launch.py`` does around Hydra: one clear line and a non-zero exit for every failure.

Hydra prints multi-line reports for composition errors; we let them reach us (by setting
HYDRA_FULL_ERROR for the duration of the call) and print one line instead.  A user who sets
HYDRA_FULL_ERROR=1 still gets the full traceback.

Every job returns its run's outcome (gen.outcome).  In a multirun a job whose run fails does not stop
the sweep: the run records ``status: failed`` in its metrics.json (gen.run) and the job returns its
``failed`` outcome, so every launcher goes on with the other jobs.  gen's sweeper, in the launching
process, receives every outcome, lists the runs that failed in this sweep and raises
``outcome.SweepFailed``: the exit status is non-zero.  Bad input and preemption still stop the
sweep: every job would fail the same way; so does a failure that cannot even be recorded (a full disk).
A run that another process holds (gen.sweeps.runlock) is skipped; the summary counts those apart.
"""
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gen.outcome import RunOutcome, SweepFailed
from gen.sweeps import resolvers, run_folder
from gen.config.overrides import check_group_choices, check_override_text
from gen.config import ConfigError, validate
from gen.config.base import misspelt_key_hint, other_options_hint

resolvers.register()  # before Hydra composes; the parallel launcher's workers import this module too

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def run_with_clear_errors(main: Callable[[], object], argv: list[str]) -> int:
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        check_override_text(argv)
        check_group_choices(argv)
        main()
    except SweepFailed as failed:  # gen's sweeper: the runs that failed are listed above
        return _fail(f"error: {len(failed.failures)} run(s) of this sweep failed (listed above); "
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
def run_job(cfg: DictConfig) -> RunOutcome:
    """The task function's body: train one run and return its outcome (gen.outcome), which Hydra's
    JobReturn carries back to gen's sweeper.

    In a multirun a run whose failure gen.run recorded (metrics.json with the error, and the log) returns
    its ``failed`` outcome instead of raising, and the sweep goes on; a single run raises it."""
    def train_it(keep_going: bool) -> RunOutcome:
        from gen.run import train

        return train(cfg, keep_going=keep_going)

    return _guarded(cfg, train_it)


def lockstep_tasks(group: list) -> list[Callable[[DictConfig], RunOutcome]]:
    """The task functions of a lockstep group's jobs (gen.sweeps.ensemble.Member each), which a launcher
    runs one after another in one process: the first trains the whole group (gen.run.train_group) and
    keeps each member's outcome; each other one hands that back (its job's ``.hydra/`` and
    callbacks are Hydra's as for any job), or, if the group could not take it (another process holds it,
    it was finished meanwhile, its checkpoint stands at another step), trains its run alone."""
    trained: dict[Path, RunOutcome] = {}

    def lead(cfg: DictConfig) -> RunOutcome:
        def train_it(keep_going: bool) -> RunOutcome:
            from gen.run import train_group

            outcomes = train_group(group, keep_going)
            trained.update({m.run_dir: o for m, o in zip(group[1:], outcomes[1:]) if o is not None})
            return outcomes[0]

        return _guarded(cfg, train_it)

    def follow(cfg: DictConfig) -> RunOutcome:
        run_dir = Path(os.path.abspath(HydraConfig.get().runtime.output_dir))
        outcome = trained.get(run_dir)
        if outcome is None:
            return run_job(cfg)
        import logging

        logging.getLogger("gen").info("%s: trained in lockstep with %s", run_dir, group[0].run_dir.name)
        return outcome

    return [lead] + [follow] * (len(group) - 1)


def _guarded(cfg: DictConfig, train_it: Callable[[bool], RunOutcome]) -> RunOutcome:
    """``train_it(keep_going)``'s outcome, ``keep_going`` in a multirun (a recorded failure is returned, not
    raised); bad input leaves as :class:`BadInput`, whatever else it raises goes on up."""
    try:
        validate(cfg)  # before torch and the rest load: a config error answers in about a second
    except ConfigError as error:
        _remove_fresh_run_dir()
        raise BadInput(str(error)) from None
    try:
        return train_it(_in_multirun())
    except ConfigError as error:  # bad input: every later job would fail alike
        raise BadInput(str(error)) from None


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
