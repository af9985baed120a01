"""Progress output: a bar on a terminal only; in a log, about ten plain lines per run (gen.training.progress)."""
import re
import subprocess
import sys

import pytest

from gen.training.progress import LINES_PER_RUN, QUIET_S, Progress
from tests.helpers import LAUNCH


@pytest.mark.slow
def test_a_run_logged_to_a_file_writes_a_few_plain_lines_and_no_bar(tmp_path):
    log_file = tmp_path / "log.txt"
    with log_file.open("w") as out:  # a file, as `python launch.py ... > log 2>&1` gives
        proc = subprocess.run([sys.executable, str(LAUNCH), "trainer.max_epochs=40", "dataset.train_size=200",
                               "model.hidden_units=16"], cwd=tmp_path, stdout=out, stderr=out, timeout=300)
    text = log_file.read_text()
    assert proc.returncode == 0, text
    assert "\r" not in text and "ep/s" not in text, "a progress bar was written to a file"
    lines = re.findall(r"epoch (\d+)/40  loss \S+  acc \S+  test \S+", text)
    assert 5 <= len(lines) <= LINES_PER_RUN + 1, text
    assert lines[-1] == "40"
    assert len(text.encode()) < 4000, f"{len(text.encode())} bytes"


def report_lines(progress: Progress, epochs: range, caplog) -> list[str]:
    caplog.clear()
    for epoch in epochs:
        progress.report(epoch, loss=0.5)
    return [r.getMessage() for r in caplog.records if r.name == "gen"]


def test_plain_lines_come_at_each_tenth_of_the_budget(caplog):
    caplog.set_level("INFO", logger="gen")
    lines = report_lines(Progress(100, terminal=False), range(1, 101), caplog)
    assert lines[:2] == ["epoch 1/100  loss 0.5", "epoch 10/100  loss 0.5"] and lines[-1] == "epoch 100/100  loss 0.5"
    assert len(lines) == 11


def test_a_quiet_stretch_longer_than_a_minute_gets_a_line(caplog):
    caplog.set_level("INFO", logger="gen")
    now = [0.0]
    progress = Progress(1000, terminal=False, clock=lambda: now[0])
    report_lines(progress, range(1, 2), caplog)
    now[0] = QUIET_S + 1
    assert report_lines(progress, range(2, 3), caplog) == ["epoch 2/1000  loss 0.5"]
    assert report_lines(progress, range(3, 4), caplog) == []


def test_no_lines_on_a_terminal_or_with_progress_off(caplog):
    caplog.set_level("INFO", logger="gen")
    assert report_lines(Progress(10, terminal=True), range(1, 11), caplog) == []
    assert report_lines(Progress(10, terminal=False, enabled=False), range(1, 11), caplog) == []
