"""The folder of a multirun without a ``name``: named after its command's overrides.

    python launch.py -m model.hidden_units=8,32 seed=0,1   ->  outputs/sweeps/model.hidden_units=8,32__seed=0,1/

Unrelated sweeps must not share a folder (their reports would mix), and relaunching a command must find
its folder again to skip what is done — so a date will not do, but the command itself will.  Overrides
that say how to run rather than what (``hydra...``, ``rerun``, ``analysis...``, the trainer keys the run id
leaves out) do not count: ``rerun=true`` or another launcher still lands in the same folder.  Order does
not count either.  A name with characters a folder name cannot hold, or too long, keeps a readable
head and gets a short hash of the whole command, so two commands never share a folder by accident.

The resolver ``${sweep_name:NAME,OVERRIDES}`` of conf/config.yaml's ``hydra.sweep.dir`` (gen.sweeps.resolvers):
cached, so a job finds the folder its sweep chose, although its own ``hydra.overrides.task`` holds only
its single values.
"""
import hashlib
import re
from typing import Iterable

from gen.sweeps.run_id import NOT_IN_ID, NOT_IN_ID_TRAINER

UNNAMED = "default"  # `python launch.py -m` with no overrides at all
MAX_LENGTH = 120
SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+-]")


def sweep_name(name: str | None, overrides: Iterable[str]) -> str:
    """``name`` if one was given, else the name of the sweep these command-line overrides describe."""
    if name is not None:
        return str(name)
    last = {_key(o): o for o in map(str, overrides)}  # a key given twice: the last value is the one swept
    kept = sorted(o for o in last.values() if _counts(o))
    if not kept:
        return UNNAMED
    joined = SEPARATOR.join(o.lstrip("+~").replace("/", ".") for o in kept)
    safe = _UNSAFE.sub("-", joined).lstrip("-.") or "sweep"  # a folder name starts with a letter or digit
    if safe == joined and len(safe) <= MAX_LENGTH:
        return safe
    digest = hashlib.sha256("\n".join(kept).encode()).hexdigest()[:8]
    return f"{safe[:MAX_LENGTH - 9]}-{digest}"


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _counts(override: str) -> bool:
    """Does this override change what the sweep computes (and so name its folder)?"""
    top, _, rest = _key(override).replace("/", ".").partition(".")
    if top in NOT_IN_ID:
        return False
    return not (top == "trainer" and rest.split(".")[0] in NOT_IN_ID_TRAINER)
