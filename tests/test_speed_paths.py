"""The fast paths compute what the slow ones did: the training loop against a reference loop, the
plain step against the general one, the disk cache against decoding, and the CPU thread setting."""
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from gen.training import loop as train_module
from gen.data import cache, load_data, vision
from gen.models import build_model
from gen.training.objective import objective_for
from gen.training.optimizers import build_optimization
from gen.training.loop import Trainer
from tests.helpers import TINY, compose_config, shape_of
from tests.fake_datasets import write_mnist


def make_trainer(overrides: list[str], seed: int = 0) -> Trainer:
    """A Trainer built as gen.run builds one (no trajectory watcher, no run folder)."""
    cfg = compose_config(TINY + [f"seed={seed}", "measure=none", *overrides])
    data = load_data(cfg.dataset, cfg.corruption, "cpu")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, *shape_of(data))
    return Trainer(model, data, objective_for(data, data.num_outputs),
                   build_optimization(cfg.optimizer, model, cfg.trainer.max_epochs), cfg.trainer,
                   torch.Generator().manual_seed(cfg.seed))


def reference_epochs(trainer: Trainer, epochs: int) -> None:
    """The loop as a textbook writes it over the same shuffles: zero_grad, forward, loss, backward, step."""
    data, bs = trainer.data, trainer.cfg.batch_size
    for _ in range(epochs):
        perm = torch.randperm(len(data.x_train), generator=trainer.generator)
        for i in range(0, len(perm), bs):
            batch = perm[i:i + bs]
            trainer.optimizer.zero_grad()
            trainer.objective.loss(trainer.model(data.x_train[batch]), data.y_train[batch]).backward()
            trainer.optimizer.step()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_loop_matches_a_reference_loop_bit_for_bit(optimizer):
    ours, reference = make_trainer([f"optimizer={optimizer}"]), make_trainer([f"optimizer={optimizer}"])
    record = ours.fit()
    reference_epochs(reference, record.epoch)
    assert record.epoch == 2 and record.step == 2 * -(-200 // 64)
    assert_same_weights(ours.model, reference.model)


def test_plain_step_equals_the_general_step():
    plain, general = make_trainer([]), make_trainer([])
    general._plain_step = general._step   # the closure path every step
    a, b = plain.fit(), general.fit()
    assert_same_weights(plain.model, general.model)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(a.history) == strip(b.history)


def test_a_non_finite_loss_anywhere_in_the_epoch_is_divergence():
    trainer = make_trainer(["trainer.max_epochs=3"])
    trainer.data = dataclasses.replace(trainer.data, x_train=trainer.data.x_train.clone())
    trainer.data.x_train[17] = float("nan")   # one sample: one batch's loss
    assert trainer.fit().status == "diverged"
    assert trainer.record.epoch == 1


def test_the_max_steps_budget_stops_mid_epoch():
    record = make_trainer(["trainer.max_steps=3"]).fit()
    assert (record.step, record.epoch, record.samples_seen) == (3, 1, 3 * 64)


# ---- the data cache -----------------------------------------------------------------------------------
@pytest.fixture
def mnist_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path / "cache"))
    write_mnist(tmp_path / "data", n_train=120, n_test=40)
    cache.clear_memory()
    yield lambda extra=(): compose_config(["dataset=mnist", f"dataset.root={tmp_path / 'data'}", *extra])
    cache.clear_memory()


def test_a_disk_cache_hit_gives_identical_tensors_without_decoding(mnist_cfg, monkeypatch):
    cfg = mnist_cfg()
    first = load_data(cfg.dataset, cfg.corruption, "cpu")
    cache.clear_memory()   # as a new process: only the disk cache is left

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a cache file")
    monkeypatch.setattr(vision, "decode", no_decoding)
    second = load_data(cfg.dataset, cfg.corruption, "cpu")
    for key in ("x_train", "y_train", "x_test", "y_test", "corrupted"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key


def test_the_cache_is_keyed_by_dataset_transform_and_version(mnist_cfg, monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    for extra in ([], ["dataset.resize=14"], ["dataset.resize=14", "dataset.crop=10"]):
        cfg = mnist_cfg(extra)
        load_data(cfg.dataset, cfg.corruption, "cpu")
    assert len(list(folder.glob("mnist-*.pt"))) == 3
    cache.clear_memory()
    monkeypatch.setattr(cache, "VERSION", cache.VERSION + 1)   # a new decoder: old files are not read
    cfg = mnist_cfg()
    assert load_data(cfg.dataset, cfg.corruption, "cpu").x_train.shape[-1] == 28
    assert len(list(folder.glob("mnist-*.pt"))) == 4


# ---- CPU threads --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, threads", [(None, 1), ("", 1), ("3", 3), ("0", 0)])
def test_cpu_threads_follow_the_environment(monkeypatch, value, threads):
    if value is None:
        monkeypatch.delenv(train_module.CPU_THREADS_ENV, raising=False)
    else:
        monkeypatch.setenv(train_module.CPU_THREADS_ENV, value)
    assert train_module.cpu_threads() == threads


def test_a_lockstep_group_trains_on_a_thread_per_member_up_to_the_usable_cores_unless_told(monkeypatch):
    monkeypatch.delenv(train_module.CPU_THREADS_ENV, raising=False)
    monkeypatch.setattr(train_module.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert [train_module.cpu_threads(k) for k in (1, 2, 3, 8)] == [1, 2, 3, 4]
    monkeypatch.setenv(train_module.CPU_THREADS_ENV, "1")
    assert train_module.cpu_threads(8) == 1


@pytest.mark.parametrize("chosen, policy", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_gen_lets_waiting_openmp_threads_sleep_unless_the_user_chose(chosen, policy):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if chosen:
        env["OMP_WAIT_POLICY"] = chosen
    proc = subprocess.run([sys.executable, "-c", "import os, gen; print(os.environ['OMP_WAIT_POLICY'])"], env=env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == policy


def test_a_bad_thread_count_is_refused(monkeypatch):
    monkeypatch.setenv(train_module.CPU_THREADS_ENV, "two")
    with pytest.raises(ValueError, match="GEN_CPU_THREADS"):
        train_module.cpu_threads()


def test_cpu_training_sets_the_thread_count(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(train_module.CPU_THREADS_ENV, "1")
    try:
        torch.set_num_threads(2)
        make_trainer([])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
