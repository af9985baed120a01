"""Check command-line overrides before Hydra composes, for a one-line error: group choices
(``model=fc``), and what Hydra's parser would choke on (an override thousands of characters long takes
it minutes, quadratic in its length; characters outside ASCII stop its lexer unless quoted).

An option may also come from the user's own config folders, added with ``hydra.searchpath=[file:///path]``
(or ``pkg://package.conf``): their ``group/*.yaml`` files are options too (gen.config.user_options checks
them once composed)."""
import importlib.util
import re
from pathlib import Path

from gen.config import ConfigError
from gen.config.base import folder_name_problem

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_GROUP_CHOICE = re.compile(r"^(?:\+|~)?(?P<group>[a-z_]+(?:/[a-z_]+)*)=(?P<value>[A-Za-z0-9_.,-]+)$")
_SEARCHPATH = re.compile(r"^\+{0,2}hydra\.searchpath=\[?(?P<paths>[^\]]*)\]?$")


def options(group: str, conf_dir: Path = CONF_DIR, extra_dirs: tuple[Path, ...] = ()) -> list[str]:
    return sorted({p.stem for folder in (conf_dir, *extra_dirs) for p in (folder / group).glob("*.yaml")})


def search_path(argv: list[str]) -> tuple[Path, ...]:
    """The config folders ``hydra.searchpath=[...]`` adds on the command line (those that exist here)."""
    folders = []
    for arg in argv:
        match = _SEARCHPATH.match(arg)
        if not match:
            continue
        for entry in match["paths"].split(","):
            folder = _folder_of(entry.strip().strip("'\""))
            if folder is not None:
                folders.append(folder)
    return tuple(folders)


def _folder_of(entry: str) -> Path | None:
    if entry.startswith("file://"):
        return Path(entry.removeprefix("file://"))
    if entry.startswith("pkg://"):
        try:
            spec = importlib.util.find_spec(entry.removeprefix("pkg://").replace("/", "."))
        except (ImportError, ValueError):
            return None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        return Path(locations[0]) if locations else None
    return Path(entry) if entry else None  # Hydra reads a bare path as a file path


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




def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Raise ConfigError for ``group=name`` where no conf/group/name.yaml exists (in gen's conf/ or a
    folder of ``hydra.searchpath``)."""
    extra = search_path(argv)
    for arg in argv:
        match = _GROUP_CHOICE.match(arg)
        if not match or not any((folder / match["group"]).is_dir() for folder in (conf_dir, *extra)):
            continue
        group = match["group"]
        known = options(group, conf_dir, extra)
        for value in match["value"].split(","):
            if value not in known and value != "null":
                raise ConfigError(group, value, f"no such option; choose one of {known}{_hint(group, value)}")


def _hint(group: str, value: str) -> str:
    if group == "optimizer" and value.lower() in ("sam", "asam"):
        return (" (SAM is not an optimizer: add optimizer.sam.enabled=true, and optimizer.sam.adaptive=true for ASAM, "
                "to any of them)")
    return ""
