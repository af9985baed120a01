"""Every study preset in conf/experiment/ composes, validates, and runs as a sweep.

The runs shrink each preset on the command line only: a swept key given on the command line
replaces the preset's sweep list for that key (so ``model.hidden_units=8`` turns an 11-way sweep
into one run), sizes go down, and the real datasets become tiny files in their real on-disk
formats (tests/fake_datasets.py).  Everything else — the preset's model, optimizer, schedule,
trainer rule, corruption and measure set — is what the study uses.
"""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gen.config import validate
from tests import fake_datasets
from tests.helpers import CONF, LAUNCH, REPO, compose_config, launch, one_at_a_time, read_metrics

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

# Runs launched through this wrapper read the fake CIFAR files: torchvision checks CIFAR's md5 sums,
# which tiny files cannot match, so the wrapper turns that check off before running launch.py.
WITHOUT_MD5 = ("import runpy, sys; from tests.fake_datasets import skip_md5_checks\n"
               "sys.argv = [sys.argv[1], *sys.argv[2:]]\n"
               "with skip_md5_checks(): runpy.run_path(sys.argv[0], run_name='__main__')")

# preset -> (command-line overrides that shrink it, the number of runs they leave)
SHRUNK = {
    "quickstart": (["model.hidden_units=4,16", "dataset.train_size=100", "seed=0"], 4),
    "neyshabur_width": (["model.hidden_units=8", "dataset.train_size=60"], 2),
    "neyshabur_size": (["dataset.train_size=30,50", "corruption=random_labels",
                        "model.layers=[8,M,8,M,16,M,16,M]", "model.head_width=16"], 2),
    "zhang_randomization": (["model=alexnet_small", "model.channels=[4,8]",
                             "model.hidden=[16,8]", "dataset.train_size=50"], 5),
    "zhang_label_noise": (["model=mlp1", "model.width=8", "corruption.prob=0.0,1.0",
                           "dataset.train_size=50"], 2),
    "zhang_bn_ablation": (["seed=0", "dataset.train_size=30"], 2),
    "zhang_regularization": (["model=alexnet_small", "model.channels=[4,8]",
                              "model.hidden=[16,8]", "dataset.train_size=50", "corruption=random_labels"], 4),
    "zhang_regularization_small": (["model=alexnet_small_narrow", "dataset.train_size=50",
                                    "optimizer.weight_decay=0.0"], 4),
    "sharpness_optimizers": (["dataset=fashion_mnist,cifar10", "model=simple_batch", "optimizer=adashift",
                              "dataset.train_size=50", "model.hidden=16", "measure.params.hessian_probes=2",
                              "measure.params.power_iterations=3"], 4),
    "steady_sinusoid": (["dataset.f=0.25,1.0", "seed=0"], 2),
    "steady_cnn": (["corruption.prob=0.0,1.0", "seed=0", "model.channels=[4,8]", "model.hidden=8",
                    "dataset.train_size=10"], 2),
    "dziugaite_roy": (["dataset.train_size=60", "model.hidden_units=8", "measure.params.certified_steps=5",
                       "measure.params.certified_mc_draws=2"], 2),
    "double_descent_modelwise": (["model.hidden_units=8,64", "corruption.prob=0.2", "dataset.train_size=60"], 2),
    "double_descent_epochwise": (["dataset.train_size=60", "model.hidden_units=16"], 2),
    "jiang_grid": (["model.depth=2", "model.width=1", "model.dropout=0.0,0.5", "optimizer.lr=0.01",
                    "trainer.batch_size=32", "optimizer.weight_decay=0.0", "dataset.train_size=50",
                    "measure.params.flatness_search_depth=3", "measure.params.flatness_mc_samples=2"], 2),
}
TINY_RUNS = ["trainer.max_epochs=1", "trainer.progress=false", "trainer.save_weights=false", "analysis.auto=false"]


def test_every_preset_has_a_shrunk_run():
    assert sorted(SHRUNK) == PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_prints_its_composed_config(preset, tmp_path):
    proc = launch([f"experiment={preset}", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"name: {preset}" in proc.stdout
    validate(compose_config([f"experiment={preset}"]))  # the schema accepts it as it stands


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_header_says_what_it_reproduces_and_costs(preset):
    header = [line for line in (CONF / "experiment" / f"{preset}.yaml").read_text().splitlines()
              if line.startswith("#")]
    assert header[0] == "# @package _global_"
    text = " ".join(header[1:])
    assert "runs" in text and any(cost in text for cost in ("minute", "hour", "GPU-day", "cluster"))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_sweeps_the_study(preset):
    """The preset's own sweep, composed as Hydra would: `-m experiment=NAME` runs the study."""
    cfg = compose_config([f"experiment={preset}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params, "no hydra.sweeper.params"
    runs = math.prod(len(str(values).split(",")) for values in params.values())
    assert runs >= 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    fake_datasets.write_mnist(root, n_train=100, n_test=40)
    fake_datasets.write_fashion_mnist(root, n_train=100, n_test=40)
    fake_datasets.write_cifar10(root, n_train=100, n_test=40)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_shrunk(preset, data_root, tmp_path):
    overrides, expected_runs = SHRUNK[preset]
    cfg = compose_config([f"experiment={preset}"])
    root = [f"dataset.root={data_root}"] if "root" in cfg.dataset else []
    # one job after another: the md5 checks are skipped in this process, not in a worker's
    args = one_at_a_time(["-m", f"experiment={preset}", *overrides, *root, *TINY_RUNS])
    proc = subprocess.run([sys.executable, "-c", WITHOUT_MD5, str(LAUNCH), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((tmp_path / "outputs" / "sweeps" / preset).glob("*/metrics.json"))
    assert len(runs) == expected_runs, proc.stderr[-3000:]
    for path in runs:
        metrics = read_metrics(path)
        assert metrics["status"] == "completed", (path, metrics.get("error"))
        assert metrics["experiment"] == preset and metrics["final"]["epochs"] == 1
        assert set(metrics["config"]["measure"]["names"]) <= set(metrics["measures"])


@pytest.mark.parametrize("preset", ["zhang_randomization", "zhang_label_noise"])
def test_s2_presets_sweep_the_models_with_zhangs_learning_rates(preset):
    from tests.helpers import compose_config

    assert compose_config([f"experiment={preset}"]).optimizer.lr == 0.1  # the Inception, the default
    for model in ("mlp1", "mlp3", "alexnet_small"):
        assert compose_config([f"experiment={preset}", f"model={model}"]).optimizer.lr == 0.01
    assert compose_config([f"experiment={preset}", "model=mlp1", "optimizer.lr=0.2"]).optimizer.lr == 0.2
    swept = compose_config([f"experiment={preset}"], return_hydra_config=True).hydra.sweeper.params
    assert swept["model"] == "mlp1,mlp3,alexnet_small,inception_small"


def test_s2_run_ids_are_those_of_the_earlier_s2_model_group():
    """Ids computed with the old experiment/s2_model@_global_=MODEL composition (0.3.0): the presets'
    existing run folders are still found."""
    from gen.sweeps.run_id import legacy_run_id as run_id  # the rule of those ids (gen.migrate renames them)
    from tests.helpers import compose_config

    before = {("zhang_randomization", "mlp1", "corruption=random_labels"): "00acead99207",
              ("zhang_randomization", "inception_small", "corruption=random_labels"): "a5e174a325b3",
              ("zhang_label_noise", "alexnet_small", "corruption.prob=0.3"): "28d7eefb71f4"}
    for (preset, model, corruption), expected in before.items():
        assert run_id(compose_config([f"experiment={preset}", f"model={model}", corruption])) == expected
