"""One process at a time per run folder: a lock file that the kernel releases when its process dies.

:func:`acquire` takes an exclusive ``flock`` on ``RUN_DIR/run.lock`` without waiting; a second
launch of the same sweep finds the lock taken and skips the run ("running in another process").
The kernel drops the lock when the holder exits, however it exits (kill -9 included), so a stale
file never blocks a relaunch.  The file names its holder (``host pid``) for ``analysis status``,
which tells a live holder from a dead one by trying the lock itself (:func:`holder_alive`): a pid may be
reused, a free lock may not lie.  The lock is opened without following a link (a planted ``run.lock``
link is refused, never truncated through).

``flock`` is exclusive across the processes of one machine.  On a shared cluster filesystem it
holds across machines only where the filesystem supports it (NFSv4, Lustre mounted with ``flock``,
GPFS, BeeGFS); where it does not, two launches on different nodes can both train a run: each writes
its files atomically, so the folder ends with one whole record (the last one written), never a mix.
"""
import errno
import fcntl
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from gen import atomic

LOCK_FILE = "run.lock"

log = logging.getLogger(__name__)


class LinkRefused(OSError):
    """A file gen would write in a run folder is a symbolic link."""


@dataclass
class RunLock:
    path: Path
    fd: int | None

    def release(self) -> None:
        """Remove the file while still holding it (a waiter then sees a new inode), then unlock."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None


def acquire(run_dir: Path) -> RunLock | None:
    """The lock of ``run_dir``, or None if a live process holds it."""
    path = Path(run_dir) / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise LinkRefused(f"{path} is a symbolic link; gen writes nothing through a link "
                                  f"(remove it, or choose another run folder)") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as error:
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            log.warning("%s: this filesystem has no file locks (%s); two launches of this run would "
                        "both train it", path, error.strerror)
        if _same_file(fd, path):
            break
        os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
    os.ftruncate(fd, 0)
    os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
    return RunLock(path, fd)


def holder(run_dir: Path) -> tuple[str, int] | None:
    """(host, pid) the lock file names, or None."""
    try:
        host, pid = atomic.read_regular_file(Path(run_dir) / LOCK_FILE, 4096).decode().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def describe_holder(run_dir: Path) -> str:
    found = holder(run_dir)
    return f"pid {found[1]} on {found[0]}" if found else "holder unknown"


def holder_alive(run_dir: Path) -> bool | None:
    """Whether the process that took the run's lock still holds it: None where this machine cannot tell.

    The lock itself answers (a non-blocking shared ``flock`` on the file, let go at once): taken means
    alive.  Free means dead where the holder ran on this machine.  A free lock whose holder ran on
    another host proves nothing where the filesystem's locks do not reach across nodes: None (status then
    goes by how recently the folder changed).  Without a lock (no file, a link, no file locks): the pid."""
    taken = _lock_taken(Path(run_dir) / LOCK_FILE)
    found = holder(run_dir)
    here = found is not None and found[0] == socket.gethostname()
    if taken is not None:
        return True if taken else (False if here else None)
    if not here:
        return None
    try:
        os.kill(found[1], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _lock_taken(path: Path) -> bool | None:
    """Whether a process holds the lock on ``path``; None where the file cannot be locked to test."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no file locks here
        return None
    finally:
        os.close(fd)  # closing lets go of the test lock
    return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
