"""Whether a run may write into its folder, checked before anything (Hydra's log and ``.hydra/`` included)
is written there.

A run folder is only ever written by the run whose id it bears, and nothing is written through a link:

- the folder itself may be a link only to a folder beside it (inside the same parent); a link that leaves
  its parent (``hydra.run.dir`` pointing into someone else's files) is refused;
- no entry of the folder or of its ``.hydra/`` may be a symbolic link: every file there is one that gen or
  Hydra writes or renames (``run.lock``, ``launch.log``, ``.hydra/config.yaml``, ``metrics.json``,
  ``checkpoint.pt``...), and Hydra opens its files by name;
- the folder must be listable, and writable, and its log files writable, by this user: otherwise Hydra's
  logging fails later with a message that hides the cause;
- a folder that holds a valid record of another run (its ``run_id`` is not this run's) is refused: its
  record, weights and checkpoint stay as they are.

A refusal is :class:`Refused`, one line naming the folder (or the file) and what is wrong; gen.cli exits 2
with it.  Called for every job of a sweep before the first one starts (hydra_plugins.gen_launchers.jobs),
for a single run before Hydra creates its folder (gen.cli.RunFolderGuard), and by gen.run itself.
"""
import os
from pathlib import Path

HYDRA_DIR = ".hydra"


class Refused(BaseException):
    """A run folder this run must not write.  Not an ``Exception``, so that neither Hydra's job runner
    nor gen.run records it as a failed run (nothing may be written there, not even that)."""


def check(run_dir: Path, run_id: str | None = None) -> None:
    """Raise :class:`Refused` unless the run of id ``run_id`` may write in ``run_dir`` (which may not exist yet)."""
    run_dir = Path(run_dir)
    _check_folder_link(run_dir)
    if not os.path.lexists(run_dir):
        return
    names = _entries(run_dir)
    _check_no_links(run_dir, names)
    if HYDRA_DIR in names and os.path.isdir(run_dir / HYDRA_DIR):
        _check_no_links(run_dir / HYDRA_DIR, _entries(run_dir / HYDRA_DIR))
    _check_writable(run_dir, names)
    if run_id is not None:
        _check_owner(run_dir, run_id)


def _check_folder_link(run_dir: Path) -> None:
    if not run_dir.is_symlink():
        return
    target = Path(os.path.realpath(run_dir))
    parent = Path(os.path.realpath(run_dir.parent))
    if target.parent != parent:
        raise Refused(f"run folder {run_dir} is a symbolic link to {target}, outside {parent}; gen writes "
                      f"nothing through a link that leaves the run's folder (remove the link or choose another folder)")


def _entries(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError as error:
        raise Refused(f"cannot read run folder {folder}: {error.strerror or error}") from None


def _check_no_links(folder: Path, names: set[str]) -> None:
    for name in sorted(names):
        path = folder / name
        if path.is_symlink():
            raise Refused(f"{path} is a symbolic link (to {os.readlink(path)}); gen and Hydra write nothing "
                          f"through a link: remove it")


def _check_writable(run_dir: Path, names: set[str]) -> None:
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise Refused(f"cannot write in run folder {run_dir}: Permission denied")
    for name in sorted(n for n in names if n.endswith(".log")):
        try:
            os.close(os.open(run_dir / name, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK))
        except OSError as error:
            raise Refused(f"cannot write {run_dir / name}: {error.strerror or error}") from None
    hydra_dir = run_dir / HYDRA_DIR
    if HYDRA_DIR in names and not os.access(hydra_dir, os.W_OK | os.X_OK):
        raise Refused(f"cannot write in {hydra_dir}: Permission denied")


def _check_owner(run_dir: Path, run_id: str) -> None:
    from gen import record  # lazily: gen.record imports this package

    found = record.read(run_dir)
    if found.status in record.RECORDED_STATUSES and found.metrics["run_id"] != run_id:
        raise Refused(f"run folder {run_dir} holds the record of another run (run_id {found.metrics['run_id']}, "
                      f"not {run_id}); a run folder is only ever written by the run whose id it bears: choose "
                      f"another folder (hydra.run.dir) or move that one away")
