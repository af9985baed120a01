"""docs/records.md describes the record gen/record.py checks: every status, every key each status requires."""
import re

from gen import record
from tests.helpers import REPO

PAGE = (REPO / "docs" / "records.md").read_text()


def documented_keys() -> set[str]:
    return set(re.findall(r"^\| `([^`]+)`", PAGE, re.MULTILINE)) | set(re.findall(r"`([a-z_]+\.[a-z_]+)`", PAGE))


def test_every_key_gen_record_requires_is_in_the_page():
    required = {f"{block}.{key}" if block else key
                for blocks in record.REQUIRED.values() for block, keys in blocks.items() for key in keys}
    assert required - documented_keys() == set()


def test_every_status_is_in_the_page():
    for status in (*record.RECORDED_STATUSES, record.INVALID, record.UNREADABLE, "interrupted", "missing", "running"):
        assert f"| `{status}` |" in PAGE, status


def test_the_page_names_the_schema_version_and_the_files_a_run_writes():
    from gen import run
    from gen.sweeps import runlock
    from gen.training import checkpoint

    assert f"schema {record.SCHEMA_VERSION}" in PAGE
    for name in (record.METRICS_FILE, run.INIT_WEIGHTS, run.FINAL_WEIGHTS, checkpoint.CHECKPOINT_FILE,
                 runlock.LOCK_FILE):
        assert f"`{name}`" in PAGE, name


def test_no_user_facing_file_points_outside_the_project():
    """Users have the project only: no ../shared, no DESIGN.md or REFERENCE.md it does not hold."""
    files = [REPO / "README.md", *REPO.glob("docs/*.md")]
    for folder, pattern in (("conf", "*.yaml"), ("gen", "*.py"), ("analysis", "*.py"), ("scripts", "*.sh"),
                            ("hydra_plugins", "*.py")):
        files += (REPO / folder).rglob(pattern)
    for path in files:
        text = path.read_text()
        for outside in ("../shared", "DESIGN.md", "REFERENCE.md"):
            assert outside not in text, f"{path.relative_to(REPO)} mentions {outside}"
