"""The arrows between the parts of gen, and one home per fact, read from the source itself."""
import ast
import dataclasses
from pathlib import Path

import pytest

from gen.config import GROUPS

REPO = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", files("gen"), ids=lambda p: str(p.relative_to(REPO)))
def test_gen_never_imports_analysis(path):
    assert not {m for m in imports_of(path) if m == "analysis" or m.startswith("analysis.")}


@pytest.mark.parametrize("path", files("gen/models"), ids=lambda p: p.name)
def test_models_are_built_from_shapes_not_datasets(path):
    assert not {m for m in imports_of(path) if m.startswith("gen.data")}


@pytest.mark.parametrize("path", files("gen/measures"), ids=lambda p: p.name)
def test_measures_never_see_the_loop(path):
    assert not {m for m in imports_of(path) if m.startswith(("gen.training.loop", "gen.training.lockstep", "gen.run"))}


def test_hydra_internals_are_used_in_one_module_only():
    users = {p.relative_to(REPO).as_posix() for folder in ("gen", "hydra_plugins", "analysis") for p in files(folder)
             if any("._internal" in m or "._core" in m for m in imports_of(p))
             or "_return_value" in p.read_text() or "._EXECUTOR" in p.read_text()}
    assert users == {"hydra_plugins/gen_launchers/hydra_internals.py"}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_schemas_hold_no_defaults(group):
    """Defaults live in conf/ alone: a schema field with a default would be a second copy."""
    for schema in GROUPS[group].values():
        stack = [schema]
        while stack:
            cls = stack.pop()
            for field in dataclasses.fields(cls):
                assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, \
                    f"{cls.__name__}.{field.name}"
                if dataclasses.is_dataclass(field.type):
                    stack.append(field.type)


# ids that gen 0.3.0 to 0.5.0 gave these configs (the measure group hashed too), and the ids of 0.6.0, which
# hash what determines the trained network: the measure set left out, unless it lists a measure that
# watches training (measure=all lists bias_trajectory: its id is measure=trajectory's)
IDS_OF_0_3_0 = {"": "516771dd7fc7", "optimizer=adashift": "9edc74c8647f", "optimizer=adam model=mlp1": "5fa20b3d9c22",
                "measure=all": "059120aa79b3", "measure=norms": "a2c532e1ce31", "measure=trajectory": "490b868ad2a0"}
IDS_OF_0_6_0 = {"": "748120020a04", "optimizer=adashift": "c0f2b750e61f", "optimizer=adam model=mlp1": "4ed11bb92fe3",
                "measure=all": "638b1ac42f3b", "measure=norms": "748120020a04", "measure=trajectory": "638b1ac42f3b"}


@pytest.mark.parametrize("overrides", IDS_OF_0_6_0)
def test_run_ids_hash_the_trained_network(overrides):
    from gen.sweeps.run_id import run_id
    from tests.helpers import compose_config

    assert run_id(compose_config(overrides.split())) == IDS_OF_0_6_0[overrides]


@pytest.mark.parametrize("overrides", [o for o in IDS_OF_0_3_0 if o != "measure=all"])  # all's list grew in
def test_each_old_id_maps_to_its_new_id(overrides):  # 0.6: a 0.5 record maps by its own recorded list (test_migrate)
    """gen.migrate renames a folder of 0.3.0-0.5.0 by these two functions; 0.4.0's moved modules
    (AdaShift: gen.optim → gen.training.adashift) still hash their old paths."""
    from gen.sweeps.run_id import legacy_run_id, run_id
    from tests.helpers import compose_config

    cfg = compose_config(overrides.split())
    assert (legacy_run_id(cfg), run_id(cfg)) == (IDS_OF_0_3_0[overrides], IDS_OF_0_6_0[overrides])


# ---- tests that cannot fail ----------------------------------------------------------------------------------
CHECKING_CALLS = ("assert", "check", "expect", "verify")  # helpers named so: assert_same_curve, np.testing.assert_*
PYTEST_CHECKS = {"raises", "warns", "deprecated_call", "fail", "skip", "importorskip"}


def always_true(node: ast.expr) -> bool:
    """An assertion's test that holds whatever the code does: a truthy constant, ``x or True``,
    ``x if c else True``, a non-empty tuple (``assert (a, "message")``)."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return any(always_true(value) for value in node.values)
    if isinstance(node, ast.IfExp):
        return always_true(node.body) or always_true(node.orelse)
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and bool(node.elts)


def checks_something(function: ast.AST, checkers: set[str]) -> bool:
    """Whether a function asserts, expects an exception, or calls a checking helper (one of this module's
    functions that does, or one named assert_/check_/expect_/verify_...)."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in checkers or name.lower().startswith(CHECKING_CALLS):
                return True
            if isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "pytest" and name in PYTEST_CHECKS:
                return True
    return False


def unfailing_tests(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = [f"{path.name}:{node.lineno}: assert {ast.unparse(node.test)[:80]} holds whatever the code does"
             for node in ast.walk(tree) if isinstance(node, ast.Assert) and always_true(node.test)]
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    checkers: set[str] = set()
    while more := {f.name for f in functions if f.name not in checkers and checks_something(f, checkers)}:
        checkers |= more  # helpers that call helpers that assert
    found += [f"{path.name}:{node.lineno}: {node.name} asserts nothing" for node in tree.body
              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
              and node.name not in checkers]
    return found


def test_the_scan_finds_a_test_that_cannot_fail(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def helper(x):\n    assert x\n"
        "def test_or_true(x):\n    assert x == 1 or True\n"
        "def test_conditional(x):\n    assert x if x else 'no'\n"
        "def test_silent(x):\n    x.run()\n"
        "def test_by_helper(x):\n    helper(x)\n"
        "def test_raises(x):\n    with pytest.raises(ValueError):\n        x.run()\n")
    assert [line.split(": ", 1)[1] for line in unfailing_tests(tmp_path / "test_x.py")] == [
        "assert x == 1 or True holds whatever the code does", "assert x if x else 'no' holds whatever the code does",
        "test_silent asserts nothing"]


def test_every_test_can_fail():
    """issue 29: an assertion that holds whatever the code does, or a test that asserts nothing, tests nothing."""
    assert not [line for path in files("tests") for line in unfailing_tests(path)]


def test_tests_import_helpers_not_conftest():
    """conftest.py is pytest's (hooks, fixtures); a test importing it gets a second copy of the module when it is
    imported as both ``conftest`` and ``tests.conftest``.  Plain helpers live in tests/helpers.py."""
    importers = [p.name for p in files("tests") if {"conftest", "tests.conftest"} & imports_of(p)]
    assert not importers, f"import from tests.helpers instead of conftest in {importers}"
