"""Check command-line overrides before Hydra composes, for a one-line error: group choices
(``model=fc``), and what Hydra's parser would choke on (an override thousands of characters long takes
it minutes, quadratic in its length; characters outside ASCII stop its lexer unless quoted)."""
import re
from pathlib import Path

from gen.config import ConfigError
from gen.config.base import folder_name_problem

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_GROUP_CHOICE = re.compile(r"^(?:\+|~)?(?P<group>[a-z_]+(?:/[a-z_]+)*)=(?P<value>[A-Za-z0-9_.,-]+)$")


MAX_OVERRIDE_CHARS = 2000  # Hydra parses 2,000 characters of list in about half a second, 8,000 in ten


def check_override_text(argv: list[str]) -> None:
    """Raise ConfigError for an override too long to parse quickly, or with characters outside ASCII
    where Hydra's lexer refuses them (outside quotes; ``name``, a folder name, takes none at all)."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if len(arg) > MAX_OVERRIDE_CHARS:
            raise ConfigError(key, value, f"an override may have at most {MAX_OVERRIDE_CHARS} characters, this one "
                                          f"has {len(arg)}; sweep a long range with range(start,stop)")
        if value.isascii():
            continue
        if key == "name":
            raise ConfigError(key, value, folder_name_problem(value))
        if value[:1] not in ("'", '"'):
            raise ConfigError(key, value, "characters outside ASCII need quotes in an override (key='value')")


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
