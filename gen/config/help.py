"""The sections of ``python launch.py --help`` that come from conf/ (conf/hydra/help/gen.yaml's template
calls them through the ``${gen_help:SECTION}`` resolver), so the help lists what conf/ holds today.

A preset's or launcher's line is its file's ``# summary:`` comment; tests/test_help.py checks every file has one.
"""
import re
import textwrap
from pathlib import Path

from gen.config.overrides import CONF_DIR, options

# Not in the groups section: Hydra's own (--hydra-help), the measure sets' shared defaults (internal), and
# the presets, which have a section of their own
NOT_LISTED_AS_GROUPS = ("hydra", "measure/params", "experiment")
SUMMARY = re.compile(r"^# summary: (.+)$", re.MULTILINE)
WIDTH = 100


def section(name: str, conf_dir: Path = CONF_DIR) -> str:
    return {"groups": groups, "presets": presets, "launchers": launchers}[name](conf_dir)


def groups(conf_dir: Path = CONF_DIR) -> str:
    """Each user-facing group and its options, wrapped."""
    lines = []
    for group in user_groups(conf_dir):
        lines += textwrap.wrap(", ".join(options(group, conf_dir)), WIDTH, initial_indent=f"  {group}: ",
                               subsequent_indent=" " * (len(group) + 4))
    return "\n".join(lines)


def user_groups(conf_dir: Path = CONF_DIR) -> list[str]:
    found = sorted(str(d.relative_to(conf_dir)) for d in conf_dir.rglob("*") if d.is_dir() and any(d.glob("*.yaml")))
    return [g for g in found if not any(g == i or g.startswith(i + "/") for i in NOT_LISTED_AS_GROUPS)]


def presets(conf_dir: Path = CONF_DIR) -> str:
    return _described(conf_dir / "experiment", "")


def launchers(conf_dir: Path = CONF_DIR) -> str:
    return _described(conf_dir / "hydra" / "launcher", "hydra/launcher=")


def summary(path: Path) -> str:
    match = SUMMARY.search(path.read_text())
    if match is None:
        raise ValueError(f"{path} has no '# summary: ...' line (python launch.py --help shows it)")
    return match[1].strip()


def _described(folder: Path, prefix: str) -> str:
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    width = max(len(prefix + n) for n in names) + 2
    return "\n".join(f"  {prefix + name:<{width}}{summary(folder / f'{name}.yaml')}" for name in names)
