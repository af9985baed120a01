"""What the tests share as plain functions and constants: compose configs like launch.py does, run launch.py in a
subprocess, read records, build tiny networks and measure contexts.  Tests import them from here
(``from tests.helpers import ...``); conftest.py holds only pytest's hooks and fixtures.  They are functions,
not fixtures, because tests call them with arguments, several times, and at import time (``TINY`` in
parametrize lists and module constants).
"""
import json
import os
import subprocess
from pathlib import Path

from hydra import compose, initialize_config_dir

from gen.sweeps import resolvers
from tests.launch_client import run_python

resolvers.register()

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
LAUNCH = REPO / "launch.py"

# Tiny settings that keep any run to a second or two on CPU.
TINY = ["trainer.max_epochs=2", "trainer.progress=false", "dataset.train_size=200", "model.hidden_units=16"]
# Multiruns of tests run one job after another unless the test names a launcher: the default (parallel) starts a
# worker per core, and pytest-xdist already runs a test per core; tests of the launchers name theirs.
SEQUENTIAL = "hydra/launcher=sequential"


def one_at_a_time(args: list[str]) -> list[str]:
    """``args`` of a multirun with ``hydra/launcher=sequential`` added, unless they choose a launcher."""
    multirun = "-m" in args or "--multirun" in args
    if not multirun or any(a.startswith("hydra/launcher=") for a in args):
        return list(args)
    return [*args, SEQUENTIAL]


def compose_config(overrides: list[str] = (), return_hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)


def launch(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python launch.py ARGS`` in ``cwd`` (runs land in cwd/outputs), forked from this worker's fork server
    (tests/launch_client.py); a multirun's jobs one at a time unless ARGS choose a launcher (:func:`one_at_a_time`)."""
    args = one_at_a_time(args)
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR") if full_env["HYDRA_FULL_ERROR"] == "0" else None
    return run_python([LAUNCH, *args], cwd, full_env, timeout)


def plant_unwritable_weights(sweep_dir: Path, overrides: list[str]) -> str:
    """A real failure for one run of a sweep: a folder where that run's ``model.pt`` must go, so it
    trains and then cannot write its final weights (IsADirectoryError).  Returns the run's id."""
    from gen.sweeps.run_id import run_id

    rid = run_id(compose_config(overrides))
    (Path(sweep_dir) / rid / "model.pt").mkdir(parents=True)
    return rid


def comparable(metrics: dict) -> dict:
    """What two runs of one config must share however they were launched, interrupted or resumed: the record
    without wall-clock seconds."""
    no_seconds = lambda row: row and {k: v for k, v in row.items() if k != "seconds"}
    return {"status": metrics["status"], "final": metrics["final"], "measures": metrics["measures"],
            "history": [no_seconds(row) for row in metrics["history"]],
            "interpolation": no_seconds(metrics["interpolation"]), "split_acc": metrics.get("split_acc")}


def metrics_files(root: Path) -> list[Path]:
    return sorted(root.rglob("metrics.json"))


def read_metrics(path: Path) -> dict:
    return json.loads(path.read_text())


def measure_context(model, x, y, init_state=None, record=None, **params):
    """A MeasureContext over the tensors (x, y) as the training set: classification for integer
    labels, regression for float targets; ``params`` override the measure parameters."""
    import torch

    from gen.data.bundle import DataBundle
    from gen.measures.context import MeasureContext, resolve_params

    classification = not y.is_floating_point()
    num_classes = int(y.max()) + 1 if classification else 0
    data = DataBundle("tiny", "classification" if classification else "regression", x, y, x, y,
                      max(num_classes, 2) if classification else 0, torch.zeros(len(x), dtype=torch.bool))
    return MeasureContext(model, init_state, data, record, resolve_params({"params": params}))


def measure_value(ctx, name: str) -> float:
    """One registered measure on ``ctx``, straight from the registry (no size adjustment, no notes)."""
    from gen.measures.registry import MEASURES

    return float(MEASURES[name].compute(ctx))


def relu_mlp(widths: list[int], bias: bool = True, seed: int = 0):
    """Linear → ReLU → … → Linear with the given widths (input first), seeded."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def shape_of(data) -> tuple[tuple[int, ...], int, str, int]:
    """What gen.run builds a model from (gen.models.build_model): a dataset's input shape, output count,
    name (for error lines) and training-set size (the width of a model with a unit per sample)."""
    return tuple(data.input_shape), data.num_outputs, f"dataset {data.name}", len(data.x_train)


def train_and_read(cfg, run_dir: Path) -> dict:
    """``gen.run.train(cfg, run_dir)``, then the record it wrote (train returns the run's outcome, not its record)."""
    from gen.run import train

    return read_metrics(Path(train(cfg, run_dir).run_dir) / "metrics.json")
