"""The tests' fork server (tests/launch_server.py) runs a launch as a fresh interpreter would."""
import json
import os
import signal
import sys

from tests.helpers import TINY, comparable, launch, metrics_files, read_metrics
from tests.launch_client import run_python, start_python

SCRIPT = """
import json, os, sys
mask = os.umask(0)
print(json.dumps({"cwd": os.getcwd(), "env": os.environ.get("GEN_PROBE"), "umask": mask, "argv": sys.argv,
                  "path0": sys.path[0], "main": __name__}))
print("to stderr", file=sys.stderr)
sys.exit(3)
"""


def test_a_forked_script_gets_the_callers_folder_environment_umask_arguments_and_exit_status(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    previous = os.umask(0o027)
    try:
        proc = run_python([script, "a", "b c"], work, {**os.environ, "GEN_PROBE": "42"}, timeout=60)
    finally:
        os.umask(previous)
    seen = json.loads(proc.stdout)
    assert proc.returncode == 3 and proc.stderr == "to stderr\n"
    assert seen == {"cwd": str(work), "env": "42", "umask": 0o027, "argv": [str(script), "a", "b c"],
                    "path0": str(tmp_path), "main": "__main__"}


def test_a_started_launch_can_be_signalled_and_reports_how_it_ended(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    proc = start_python([script], tmp_path, merge_stderr=True)
    assert proc.stdout.readline() == "up\n" and proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM


def test_a_run_forked_equals_the_run_in_a_fresh_interpreter(tmp_path, monkeypatch):
    for folder in ("forked", "fresh"):
        (tmp_path / folder).mkdir()
    forked = launch(TINY, tmp_path / "forked")
    monkeypatch.setenv("GEN_TEST_FRESH", "1")
    fresh = launch(TINY, tmp_path / "fresh")
    assert forked.returncode == fresh.returncode == 0, forked.stderr + fresh.stderr
    runs = [comparable(read_metrics(p)) for folder in ("forked", "fresh") for p in metrics_files(tmp_path / folder)]
    assert len(runs) == 2 and runs[0] == runs[1]
    assert sys.executable in forked.args
