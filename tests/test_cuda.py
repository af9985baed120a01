"""On a GPU (``pytest -m cuda``; skipped without one): what the CPU tests show, on CUDA.

A run trains with its data on the device and records the device; lockstep members equal their runs
trained alone on the GPU; bf16 autocast trains; a killed run resumes on the GPU to the uninterrupted
record.  ``bash scripts/gpu_check.sh`` runs these with the speed benchmark's CUDA section."""
import signal
import time

import pytest
import torch

from gen.run import build_run
from tests.helpers import compose_config, launch, read_metrics
from tests.test_resume import comparable, start

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

RUN = ["trainer.device=cuda", "trainer.progress=false", "dataset.train_size=600", "model.hidden_units=64",
       "trainer.max_epochs=5", "optimizer=momentum"]


def test_a_run_keeps_its_data_on_the_gpu_and_records_the_device(tmp_path):
    setup = build_run(compose_config(RUN))
    assert setup.data.x_train.is_cuda and setup.data.y_train.is_cuda and next(setup.model.parameters()).is_cuda
    proc = launch([*RUN, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = read_metrics(tmp_path / "run" / "metrics.json")
    assert metrics["status"] == "completed" and metrics["env"]["device"].startswith("cuda:")


@pytest.mark.parametrize("precision", ["32", "bf16"])
def test_training_on_the_gpu_learns(precision, tmp_path):
    proc = launch([*RUN, f"trainer.precision={precision}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    final = read_metrics(tmp_path / "run" / "metrics.json")["final"]
    assert final["train_acc"] > 0.8 and final["test_acc"] > 0.7  # digits: chance is 0.1


def test_lockstep_on_the_gpu_equals_training_alone(tmp_path):
    sweep = ["-m", *RUN, "seed=0,1,2,3", "analysis.auto=false"]
    alone = launch([*sweep, f"hydra.sweep.dir={tmp_path / 'alone'}"], cwd=tmp_path)
    together = launch([*sweep, "trainer.ensemble=4", f"hydra.sweep.dir={tmp_path / 'together'}"], cwd=tmp_path)
    assert alone.returncode == 0 and together.returncode == 0, alone.stderr + together.stderr
    for path in (tmp_path / "alone").glob("*/metrics.json"):
        a, b = read_metrics(path), read_metrics(tmp_path / "together" / path.parent.name / "metrics.json")
        assert any("lockstep" in note for note in b["notes"])
        assert [r["train_loss"] for r in b["history"]] == pytest.approx([r["train_loss"] for r in a["history"]],
                                                                         rel=1e-4)


def test_a_killed_gpu_run_resumes_to_the_uninterrupted_result(tmp_path):
    args = [*RUN, "trainer.max_epochs=30", "trainer.batch_size=8", "trainer.checkpoint_every=1", "seed=3"]
    reference = launch([*args, f"hydra.run.dir={tmp_path / 'reference'}"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    run_dir = tmp_path / "killed"
    proc = start([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    while not (run_dir / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    again = launch([*args, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert again.returncode == 0 and "resuming" in again.stdout + again.stderr, again.stderr
    assert comparable(read_metrics(run_dir / "metrics.json")) == \
        comparable(read_metrics(tmp_path / "reference" / "metrics.json"))
