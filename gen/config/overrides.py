"""Check command-line group choices (``model=fc``) before Hydra composes, for a one-line error."""
import re
from pathlib import Path

from gen.config import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_GROUP_CHOICE = re.compile(r"^(?:\+|~)?(?P<group>[a-z_]+(?:/[a-z_]+)*)=(?P<value>[A-Za-z0-9_.,-]+)$")


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Raise ConfigError for ``group=name`` where conf/group/name.yaml does not exist."""
    for arg in argv:
        match = _GROUP_CHOICE.match(arg)
        if not match or not (conf_dir / match["group"]).is_dir():
            continue
        group = match["group"]
        known = options(group, conf_dir)
        for value in match["value"].split(","):
            if value not in known and value != "null":
                raise ConfigError(group, value, f"no such option; choose one of {known}{_hint(group, value)}")


def _hint(group: str, value: str) -> str:
    if group == "optimizer" and value.lower() in ("sam", "asam"):
        return " (SAM is not an optimizer: add optimizer.sam.enabled=true, and optimizer.sam.adaptive=true for ASAM, to any of them)"
    return ""
