"""Docs cannot name what is not there: every ``path/like/this.py`` and every dotted ``gen.x.y`` name in a
docstring of gen, analysis, hydra_plugins, scripts, benchmarks and examples, in conf/'s comments, in docs/*.md
and in the README (its changelog aside: history names what was) exists in the repository."""
import ast
import functools
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("gen", "analysis", "hydra_plugins", "scripts", "benchmarks", "examples")
PY_FILE = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.py)\b")
DOTTED = re.compile(r"(?<![\w./])((?:gen|analysis|hydra_plugins)(?:\.\w+)+)")
NOT_PYTHON = {  # look like a module's name and are not one
    "analysis.auto": "a config key (analysis/callback.py)",
    "gen.run_id": "the tag trackers give a run (gen/tracking/)",
    "data/generation/measures.py": "a file of nitarshan/robust-generalization-measures, the peers' code",
}


def docstrings(path: Path) -> str:
    nodes = ast.walk(ast.parse(path.read_text()))
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return "\n".join(ast.get_docstring(node, clean=False) or "" for node in nodes if isinstance(node, kinds))


@functools.cache
def texts() -> dict[str, str]:
    found = {p.relative_to(REPO).as_posix(): docstrings(p)
             for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py"))}
    found |= {p.relative_to(REPO).as_posix(): p.read_text() for p in sorted((REPO / "conf").rglob("*.yaml"))}
    found |= {p.relative_to(REPO).as_posix(): p.read_text() for p in sorted((REPO / "docs").glob("*.md"))}
    found["README.md"] = (REPO / "README.md").read_text().split("\n## Changelog")[0]
    return found


def file_exists(name: str, where: Path) -> bool:
    """Beside the text, from the repository's root, or (a file of a package shown in a tree) under any folder."""
    return (REPO / name).exists() or (where.parent / name).exists() or any(REPO.glob(f"**/{name}"))


def name_exists(dotted: str) -> bool:
    """The longest importable prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attribute in parts[i:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


@pytest.mark.parametrize("source", sorted(texts()))
def test_every_file_and_name_a_doc_gives_exists(source):
    text = texts()[source]
    missing = [name for name in PY_FILE.findall(text) if name not in NOT_PYTHON
               and not file_exists(name, REPO / source)]
    missing += [name for name in DOTTED.findall(text) if name not in NOT_PYTHON and not name_exists(name)]
    assert not missing, f"{source} names what does not exist: {sorted(set(missing))}"
