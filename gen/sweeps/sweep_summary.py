"""What a multirun says when it ends (gen's sweeper calls :func:`report` in the launching process): the state
of the sweep folder (as ``python -m analysis status`` prints it), a line per run that failed in this sweep,
and how many of its runs another process is running.  Which runs failed in this sweep comes from the
outcomes the jobs returned (gen.outcome), not from the folder: an older failure this sweep did not relaunch
is listed in the folder's state but is not this sweep's.
"""
import sys
from pathlib import Path

from gen.outcome import RunOutcome
from gen.record import METRICS_FILE


def report(sweep_dir: Path, outcomes: list[RunOutcome]) -> None:
    from gen.sweeps import status

    folders = status.scan([sweep_dir]) if sweep_dir.is_dir() else []
    print(status.describe(folders, [sweep_dir]), file=sys.stderr)
    for outcome in outcomes:
        if outcome.failed:
            print(f"failed in this sweep: {failure_place(sweep_dir, outcome.run_dir)} ({outcome.reason})",
                  file=sys.stderr)
    elsewhere = [f for f in folders if f.status == "running" and f.held]
    if elsewhere:  # not failures: their own process records them
        print(f"{len(elsewhere)} run(s) of this sweep are running in another process (not failures; "
              f"relaunch once it ends to check them)", file=sys.stderr)


def failure_place(sweep_dir: Path, run_dir: Path) -> Path:
    """The failed run's metrics.json (its folder where it left none), spelt from ``sweep_dir`` as the user gave it."""
    try:
        run_dir = sweep_dir / Path(run_dir).resolve().relative_to(sweep_dir.resolve())
    except ValueError:  # a run folder outside the sweep folder (hydra.sweep.subdir names another place)
        pass
    return run_dir / METRICS_FILE if (run_dir / METRICS_FILE).exists() else run_dir
