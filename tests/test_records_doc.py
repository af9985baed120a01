"""docs/records.md describes the record gen/record.py checks: every status, every key each status requires."""
import re

from gen import record
from tests.conftest import REPO

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
    from gen import checkpoint, run, runlock

    assert f"schema {record.SCHEMA_VERSION}" in PAGE
    for name in (record.METRICS_FILE, run.INIT_WEIGHTS, run.FINAL_WEIGHTS, checkpoint.CHECKPOINT_FILE,
                 runlock.LOCK_FILE):
        assert f"`{name}`" in PAGE, name
