"""trainer.ensemble=K: runs trained in lockstep (gen.training.lockstep) are recorded exactly as if trained alone.

Each member is compared with the same config trained alone: history, stopping epoch, final metrics
and weights.  The members differ in everything a lockstep group may vary (seed, corruption,
learning rate) and end differently (one stops early by its rule, one diverges), and the optimizers
carry state (momentum with weight decay and a step schedule; AdamW's decoupled decay).
"""
import json
import re

import pytest
import torch

from gen.sweeps import ensemble
from gen.run import train, train_group
from gen.config import ConfigError
from tests.helpers import compose_config, launch, read_metrics

BASE = ["dataset.train_size=300", "model.hidden_units=16", "trainer.max_epochs=8", "trainer.progress=false",
        "trainer.stop.rule=train_loss", "trainer.stop.threshold=1.0"]
OPTIMIZERS = {
    "momentum": ["optimizer=momentum", "optimizer.weight_decay=0.001", "optimizer/schedule=step",
                 "optimizer.schedule.step_size=2", "optimizer.schedule.gamma=0.7"],
    "adamw": ["optimizer=adamw"],
}
LEAD_LR = {"momentum": 0.3, "adamw": 0.03}
DIVERGING_LR = {"momentum": 1e4, "adamw": 1e4}


def members_of(optimizer: str) -> list[list[str]]:
    lead = LEAD_LR[optimizer]
    return [[f"optimizer.lr={lead}", "seed=0"],                                       # stops early
            [f"optimizer.lr={lead / 30}", "seed=1"],                                  # runs to the end
            [f"optimizer.lr={lead}", "seed=2", "corruption=labels", "corruption.prob=0.5"],
            [f"optimizer.lr={DIVERGING_LR[optimizer]}", "seed=3"]]


def member(overrides: list[str], run_dir) -> ensemble.Member:
    return ensemble.Member(compose_config(overrides), run_dir, tuple(overrides), None)


def column(metrics: dict, key: str) -> list[float]:
    return [row[key] for row in metrics["history"]]


def outcome(run_dir) -> tuple[dict, dict]:
    return json.loads((run_dir / "metrics.json").read_text()), torch.load(run_dir / "model.pt", weights_only=True)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_lockstep_members_equal_their_runs_trained_alone(optimizer, tmp_path):
    variants = [BASE + OPTIMIZERS[optimizer] + extra for extra in members_of(optimizer)]
    group = [member(v + ["trainer.ensemble=4"], tmp_path / "lockstep" / str(i)) for i, v in enumerate(variants)]
    train_group(group)  # trains and writes all four
    ends = []
    for i, overrides in enumerate(variants):
        alone_dir = tmp_path / "alone" / str(i)
        train(compose_config(overrides), alone_dir)
        (together, weights_together), (alone, weights_alone) = outcome(group[i].run_dir), outcome(alone_dir)
        assert together["status"] == alone["status"]
        assert together["final"]["epochs"] == alone["final"]["epochs"]
        assert [row["epoch"] for row in together["history"]] == [row["epoch"] for row in alone["history"]]
        if alone["status"] == "completed":  # (a diverged run's losses blow up to 1e27 before they are NaN)
            for key in ("train_loss", "test_loss", "lr"):
                assert column(together, key) == pytest.approx(column(alone, key), rel=1e-5)
            assert together["final"]["test_acc"] == pytest.approx(alone["final"]["test_acc"], abs=1 / 300)
            for name, value in weights_alone.items():
                torch.testing.assert_close(weights_together[name], value, rtol=1e-4, atol=1e-5)
        assert together["overrides"] == list(group[i].overrides)
        assert any("lockstep" in note for note in together["notes"])
        ends.append((alone["status"], alone["final"]["epochs"]))
    # the group really ended four ways: early stop, full length, full length on noisy labels, divergence
    assert ends[0][1] < ends[1][1] == 8 and ends[3][0] == "diverged" and ends[0][0] == "completed"


def test_runs_group_when_they_differ_only_in_seed_corruption_and_learning_rate(tmp_path):
    runs = [["seed=0"], ["seed=1"], ["corruption=random_labels"], ["optimizer.lr=0.2"], ["seed=4"],
            ["model.hidden_units=8"], ["trainer.batch_size=32"]]
    members = [member(["trainer.ensemble=2", *r], tmp_path / str(i)) for i, r in enumerate(runs)]
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "metrics.json").write_text(json.dumps({"status": "completed"}))  # has its result
    groups = ensemble.plan(members)
    assert [[m.run_dir.name for m in g] for g in groups] == [["0", "1"], ["2", "3"]]
    assert ensemble.plan([member(["seed=0"], tmp_path / "a"), member(["seed=1"], tmp_path / "b")]) == []


REFUSED = {
    "batch norm": (["model=simple_batch", "dataset.resize=16"],
                   "needs a model without batch norm or dropout; model=simple_batch has them"),
    "SAM": (["optimizer.sam.enabled=true"], "SAM is not supported in lockstep"),
    "AdaShift": (["optimizer=adashift"], "optimizer=adashift is not supported in lockstep"),
    "trajectory": (["measure=trajectory"], "trajectory measures track every step of one run"),
    "augmentation": (["augment=flip"], "data augmentation .augment=flip. is not supported in lockstep"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_lockstep_cannot_reproduce_is_refused_in_one_line_before_any_file(case, tmp_path):
    extra, message = REFUSED[case]
    overrides = ["dataset.train_size=100", "trainer.max_epochs=1", "trainer.progress=false", "trainer.ensemble=2",
                 *extra]
    group = [member([*overrides, f"seed={s}"], tmp_path / str(s)) for s in (0, 1)]
    with pytest.raises(ConfigError, match=f"trainer.ensemble=2: .*{message}"):
        train_group(group)
    assert not (tmp_path / "0").exists() and not (tmp_path / "1").exists()


@pytest.mark.slow
def test_a_lockstep_multirun_records_every_run_and_a_relaunch_skips_them(tmp_path):
    args = ["-m", "trainer.max_epochs=2", "trainer.progress=false", "dataset.train_size=200",
            "model.hidden_units=16", "seed=0,1,2", "trainer.ensemble=2", "analysis.auto=false", "name=default"]
    first = launch(args, tmp_path)
    assert first.returncode == 0, first.stderr
    log = first.stdout + first.stderr
    assert "lockstep:" in log and len(re.findall(r"[0-9a-f]{12}: trained in lockstep with [0-9a-f]{12}\n", log)) == 1
    assert "skipping" not in log  # the member's result is fresh, not skipped
    runs = {p.parent.name: read_metrics(p) for p in tmp_path.glob("outputs/sweeps/default/*/metrics.json")}
    assert sorted(m["seed"] for m in runs.values()) == [0, 1, 2]
    assert all(m["status"] == "completed" for m in runs.values())
    assert all((tmp_path / "outputs/sweeps/default" / run_id / ".hydra/config.yaml").exists() for run_id in runs)
    assert sum(any("lockstep" in n for n in m["notes"]) for m in runs.values()) == 2  # seeds 0, 1; 2 alone
    again = launch(args, tmp_path)
    log = again.stdout + again.stderr
    assert again.returncode == 0 and log.count("skipping") == 3 and "lockstep:" not in log


def test_a_model_that_is_not_a_chain_of_linear_layers_takes_the_vmapped_step_and_equals_its_runs_alone(tmp_path):
    """A convolutional net (alexnet_small) is not stacked by gen.training.stacked: lockstep trains it
    with torch.func.vmap, and its members still equal their runs trained alone."""
    from gen.run import build_run
    from gen.training.stacked import chain_of

    base = ["dataset.train_size=120", "trainer.max_epochs=2", "trainer.progress=false", "model=alexnet_small",
            "model.channels=[3,4]", "model.hidden=[8]", "optimizer=momentum"]
    variants = [base + ["seed=0"], base + ["seed=1", "optimizer.lr=0.03"]]
    assert chain_of(build_run(compose_config(variants[0])).trainer.model) is None
    group = [member(v + ["trainer.ensemble=2"], tmp_path / "lockstep" / str(i)) for i, v in enumerate(variants)]
    train_group(group)
    for i, overrides in enumerate(variants):
        train(compose_config(overrides), tmp_path / "alone" / str(i))
        (together, weights_together), (alone, weights_alone) = outcome(group[i].run_dir), outcome(tmp_path / "alone" / str(i))
        assert any("lockstep" in note for note in together["notes"])
        assert column(together, "train_loss") == pytest.approx(column(alone, "train_loss"), rel=1e-5)
        for name, value in weights_alone.items():
            torch.testing.assert_close(weights_together[name], value, rtol=1e-4, atol=1e-5)


def test_a_lockstep_group_stopped_mid_epoch_resumes_to_its_uninterrupted_result(tmp_path, monkeypatch):
    """A stop request in the middle of an epoch: every member checkpoints its own weights and its slice of
    the stacked optimizer state (momentum, learning rates that differ), and the relaunched group ends
    with the records of a group that was never stopped."""
    from gen.training import checkpoint

    base = BASE[:1] + ["model.hidden_units=16", "trainer.max_epochs=3", "trainer.progress=false",
                       "trainer.checkpoint_every=0"] + OPTIMIZERS["momentum"]
    variants = [base + ["seed=0", "optimizer.lr=0.1"], base + ["seed=1", "optimizer.lr=0.03"]]

    def group_in(folder):
        return [member(v + ["trainer.ensemble=2"], tmp_path / folder / str(i)) for i, v in enumerate(variants)]

    reference = group_in("reference")
    train_group(reference)

    stopped = group_in("stopped")
    calls = iter(range(10 ** 6))
    monkeypatch.setattr(checkpoint, "requested", lambda: next(calls) == 7)  # asked before training, then per step
    with pytest.raises(checkpoint.Interrupted, match="preempted at epoch 2, step 7 "):
        train_group(stopped)
    assert all((m.run_dir / "checkpoint.pt").exists() and not (m.run_dir / "metrics.json").exists() for m in stopped)
    monkeypatch.setattr(checkpoint, "requested", lambda: False)
    train_group(stopped)
    for done, again in zip(reference, stopped):
        (expected, weights_expected), (resumed, weights_resumed) = outcome(done.run_dir), outcome(again.run_dir)
        assert column(resumed, "train_loss") == column(expected, "train_loss")
        assert column(resumed, "step") == column(expected, "step")
        for name, value in weights_expected.items():
            torch.testing.assert_close(weights_resumed[name], value, rtol=0, atol=0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_group_split_into_one_part_per_thread_ends_as_one_stack_does(optimizer, tmp_path, monkeypatch):
    """On CPU a group trains in one part per thread (gen.training.lockstep), the parts side by side in
    threads: with one thread (one stack of 4) and with three (parts of 2 and 2), its members end with
    the same records and weights, bit for bit (they share the learning rate: nothing is rescaled)."""
    variants = [BASE + OPTIMIZERS[optimizer] + [f"optimizer.lr={LEAD_LR[optimizer] / 3}", f"seed={seed}"]
                + (["corruption=labels", "corruption.prob=0.5"] if seed == 2 else []) for seed in range(4)]
    from gen.training import lockstep

    split, parts = lockstep.Lockstep._split, []
    monkeypatch.setattr(lockstep.Lockstep, "_split", lambda self, count: parts.append(split(self, count)) or parts[-1])
    outcomes = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("GEN_CPU_THREADS", threads)
        group = [member(v + ["trainer.ensemble=4"], tmp_path / threads / str(i)) for i, v in enumerate(variants)]
        train_group(group)
        outcomes[threads] = [outcome(m.run_dir) for m in group]
    assert [[len(part.trainers) for part in split_into] for split_into in parts] == [[4], [2, 2]]
    for (one, weights_one), (split, weights_split) in zip(outcomes["1"], outcomes["3"]):
        assert split["history"] == [{**row, "seconds": split_row["seconds"]}
                                    for row, split_row in zip(one["history"], split["history"])]
        for name, value in weights_one.items():
            torch.testing.assert_close(weights_split[name], value, rtol=0, atol=0)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("failing", ["lead", "follower"])
def test_a_part_that_fails_stops_its_group_with_the_error_and_no_thread_waits_for_ever(failing, monkeypatch):
    """The parts of a group run in threads (gen.training.lockstep): an error in the part that asks for
    stop requests (the lead) or in one that follows it ends the epoch with that error."""
    from gen.run import build_run
    from gen.training import lockstep

    monkeypatch.setenv("GEN_CPU_THREADS", "2")
    overrides = ["dataset.train_size=200", "model.hidden_units=8", "trainer.max_epochs=1", "trainer.progress=false"]
    trainers = [build_run(compose_config([*overrides, f"seed={s}"])).trainer for s in range(4)]
    group = lockstep.Lockstep(trainers, compose_config(overrides))
    assert len(group.parts) == 2
    broken = group.parts[0 if failing == "lead" else 1]
    steps = iter(range(10 ** 6))

    def gradients_then_failure(xb, yb, working=broken.gradients):
        if next(steps) == 1:
            raise RuntimeError(f"{failing} failed")
        return working(xb, yb)

    broken.gradients = gradients_then_failure
    with pytest.raises(RuntimeError, match=f"{failing} failed"):
        group.train_epoch(trainers)
