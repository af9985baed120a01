"""Files in a run folder are written whole or not at all.

Every writer goes through :func:`write_bytes`: the bytes go to a temp file with a unique name beside
the target (two processes never share one), are flushed to disk, and the temp file is renamed over
the target, so a reader (or a relaunch) sees the old file or the new one, never half of one.  The
file gets the mode any other file of the process gets (``0o666`` less the umask), not mkstemp's
``0o600``.  A write that fails (a full disk, a quota) removes its temp file and raises
:class:`WriteError` naming the file it could not write.  The temp file is created with
``O_CREAT|O_EXCL|O_NOFOLLOW`` (mkstemp's flags) and renamed over the target, so a link planted at the
target is replaced, never written through.

Reading a file of a run folder goes through :func:`read_regular_file` (or opens it as it does): without
following a link, without blocking on a FIFO, regular files only, with a size cap.
"""
import errno
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


class WriteError(OSError):
    """A file of the run could not be written; the message names it."""


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise WriteError(error.errno, f"could not write {path}: {error.strerror or error}") from error
    try:
        with os.fdopen(fd, "wb") as f:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(f.fileno(), view):]
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError(error.errno, f"could not write {path}: {error.strerror or error}") from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    """``payload`` as indented JSON (plain numbers only: NaN and inf are refused, not written)."""
    write_bytes(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode())


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save(obj)``, serialised in memory first so that the file is written in one piece."""
    import torch  # lazily: analysis imports this package without torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getbuffer())


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.  It is opened without
    following a link and without blocking (a FIFO would wait for a writer forever), and checked on the
    open descriptor (no race with a swap): a link, a FIFO, a device or an oversized file raises OSError
    with a reason that says which."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(error.errno, "a symbolic link, not a file (gen reads no file through a link)") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file but {_file_kind(info.st_mode)}")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"{info.st_size} bytes, more than the {limit} gen reads of it")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while being read
                raise OSError(errno.EFBIG, f"more than the {limit} bytes gen reads of it")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
             stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask
