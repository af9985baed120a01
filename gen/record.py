"""The run record: ``metrics.json`` (schema 1), written atomically as a run's last act."""
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

import gen

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
RESULT_STATUSES = ("completed", "diverged")  # a relaunch skips these: they are results


def read_status(run_dir: Path) -> str | None:
    """The status a run folder's metrics.json records, or None (absent or unreadable)."""
    try:
        return json.loads((run_dir / METRICS_FILE).read_text()).get("status")
    except (OSError, ValueError):
        return None


def has_result(run_dir: Path) -> bool:
    """True if the run folder holds a result (a relaunch skips it unless ``rerun``)."""
    return read_status(run_dir) in RESULT_STATUSES


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / METRICS_FILE).read_text())


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temp file beside ``path`` and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_json(payload), f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_json(value: Any) -> Any:
    """Plain JSON numbers only: cast numpy/torch scalars, map NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
        return to_json(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def environment(device: torch.device) -> dict:
    """What produced the run: interpreter, libraries, hardware, code version."""
    name = str(device)
    if device.type == "cuda":
        name = f"cuda:{torch.cuda.get_device_name(device)}"
    return {"python": platform.python_version(), "torch": torch.__version__, "device": name,
            "git_sha": git_sha(), "host": socket.gethostname(), "package_version": gen.__version__,
            "argv": sys.argv}


@lru_cache(maxsize=1)
def git_sha() -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
