"""Files in a run folder are written whole or not at all.

Every writer goes through :func:`write_bytes`: the bytes go to a temp file with a unique name beside
the target (two processes never share one), are flushed to disk, and the temp file is renamed over
the target, so a reader (or a relaunch) sees the old file or the new one, never half of one.  The
file gets the mode any other file of the process gets (``0o666`` less the umask), not mkstemp's
``0o600``.  A write that fails (a full disk, a quota) removes its temp file and raises
:class:`WriteError` naming the file it could not write.
"""
import io
import json
import os
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


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask
