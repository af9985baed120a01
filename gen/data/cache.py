"""Caches of decoded clean datasets: a small in-process one, and one on disk.

Decoding a torchvision set (and resizing it) costs seconds; a sweep loads the same data again and
again.  Both caches are keyed by a digest of everything that decides the decoded tensors: the
dataset's name, the options applied before caching (``resize``, ``crop``, generator keys), the
source files' sizes and modification times, and :data:`VERSION`.  Bump ``VERSION`` whenever the
decoding or these transforms change, so stale files are never read.

The disk cache lives in ``$GEN_CACHE_DIR`` if set (``GEN_CACHE_DIR=off`` disables it), otherwise
in ``<dataset.root>/.gen_cache`` (data without a root, digits' splits: :func:`user_folder`).  Files are written atomically (temp file + rename), so parallel
jobs racing to fill it are safe; an unwritable folder only costs the caching (a warning is logged).
"""
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch

from gen.data.bundle import DataBundle

log = logging.getLogger(__name__)

VERSION = 1
MEMORY_ENTRIES = 4   # a few decoded sets at most: CIFAR's training images alone are 150 MB
TENSORS = ("x_train", "y_train", "x_test", "y_test")

_memory: "OrderedDict[str, DataBundle]" = OrderedDict()


def digest(key: dict) -> str:
    """A stable hash of a JSON-able key (sorted keys, so dict order does not matter)."""
    text = json.dumps({"version": VERSION, **key}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def file_signature(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime in ns) of each file: changes when a file is replaced."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return out


# ---- in process -------------------------------------------------------------------------------
def from_memory(key: str) -> DataBundle | None:
    data = _memory.get(key)
    if data is not None:
        _memory.move_to_end(key)
    return data


def to_memory(key: str, data: DataBundle) -> None:
    _memory[key] = data
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)


def clear_memory() -> None:
    _memory.clear()


# ---- on disk ----------------------------------------------------------------------------------
def disk_folder(default: Path) -> Path | None:
    """Where the disk cache lives, or None when disabled."""
    configured = os.environ.get("GEN_CACHE_DIR")
    if configured is None or configured == "":
        return default
    if configured.lower() == "off":
        return None
    return Path(configured).expanduser()


def user_folder() -> Path:
    """The default folder of caches of data that has no ``dataset.root``: ``$XDG_CACHE_HOME/gen``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "gen"


def disk_path(folder: Path, name: str, key: str) -> Path:
    return folder / f"{name}-{key}.pt"


def from_disk(path: Path, name: str) -> DataBundle | None:
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, weights_only=True)
    except Exception as error:  # a truncated or foreign file: decode again and overwrite it
        log.warning("ignoring unreadable data cache %s: %s", path, error)
        return None
    tensors = {k: stored[k] for k in TENSORS}
    return DataBundle(name, stored["task"], num_classes=stored["num_classes"],
                      corrupted=torch.zeros(len(tensors["y_train"]), dtype=torch.bool), **tensors)


def to_disk(path: Path, data: DataBundle) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(handle)
        try:
            torch.save({"task": data.task, "num_classes": data.num_classes,
                        **{k: getattr(data, k) for k in TENSORS}}, temp)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.remove(temp)
    except OSError as error:
        log.warning("could not write the data cache %s (%s); continuing without it", path, error)
