"""Write run folders exactly as a real sweep leaves them, from numbers you choose.

For the analysis tests and the ``collect`` benchmark: each run folder gets a current-schema
``metrics.json`` with every block (docs/records.md), Hydra's ``.hydra/config.yaml`` and
``overrides.yaml``, and a log.  A sweep root also gets a ``multirun.yaml``.  Nothing here trains
anything: the caller supplies the results it wants analysis to find.
"""
import copy
import functools
import json
import math
from pathlib import Path

import yaml

from gen.record import SCHEMA_VERSION
from gen.sweeps.run_id import run_id_of_record

PARAMS_KEY = "0123abcd"  # the one measure_params entry of a written run
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@functools.lru_cache(maxsize=1)
def base_config() -> dict:
    """The composed default config (conf/config.yaml), as a run's metrics.json records it, with the
    progress bar off: the one source of every default, read rather than copied."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gen.sweeps import resolvers

    resolvers.register()

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = OmegaConf.to_container(compose("config", overrides=["trainer.progress=false"]), resolve=True)
    return config


def make_config(name: str = "default", **dotted) -> dict:
    """The default config with dotted overrides: ``make_config(**{"model.hidden_units": 64})``.
    A ``corruption.name`` other than none adds the ``prob`` key the real option files carry."""
    config = copy.deepcopy(base_config())
    config["name"] = name
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        target = config
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    corruption = config["corruption"]
    if corruption["name"] != "none":
        corruption.setdefault("prob", 1.0 if corruption["name"] == "random_labels" else 0.0)
    return config


def run_id_of(config: dict) -> str:
    """gen's own id of a run with this config: what gen.record checks a record's run_id against."""
    return run_id_of_record(config)


def curve(epochs: int, start: float, end: float, rate: float = 0.1) -> list[float]:
    """An exponential approach from ``start`` to ``end`` over ``epochs + 1`` evaluations."""
    return [end + (start - end) * math.exp(-rate * e) for e in range(epochs + 1)]


def make_history(epochs: int, steps_per_epoch: int, train_acc: float, test_acc: float,
                 rate: float = 0.1, **extra_per_epoch) -> list[dict]:
    """History rows from epoch 0 (the untrained model) to ``epochs``; ``extra_per_epoch`` maps a
    history key to a list of ``epochs`` values for epochs 1… (tracker rows start after epoch 0)."""
    train = curve(epochs, 0.1, train_acc, rate)
    test = curve(epochs, 0.1, test_acc, rate)
    rows = []
    for e in range(epochs + 1):
        row = {"epoch": e, "step": e * steps_per_epoch, "train_loss": 2.3 * (1 - train[e]) + 0.005,
               "train_acc": train[e], "test_loss": 2.3 * (1 - test[e]) + 0.3, "test_acc": test[e],
               "lr": 0.01, "seconds": 0.05 * e}
        for key, values in extra_per_epoch.items():
            if e >= 1:
                row[key] = values[e - 1]
        rows.append(row)
    return rows


def write_run(sweep_dir: Path, config: dict, *, status: str = "completed", train_acc: float = 1.0,
              test_acc: float = 0.9, epochs: int = 5, steps_per_epoch: int = 20, measures: dict | None = None,
              history: list[dict] | None = None, split_acc: dict | None = None,
              interpolation: dict | None = None, train_size: int = 1347, test_size: int = 450,
              error: tuple[str, str] = ("RuntimeError", "boom"), run_id: str | None = None,
              notes: list[str] | None = None) -> Path:
    """One run folder under ``sweep_dir`` holding what a real run of ``config`` would leave."""
    run_dir = Path(sweep_dir) / (run_id or run_id_of(config))  # a record carries its config's id, whatever the folder
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([]))
    (run_dir / "launch.log").write_text(f"[gen] {status} {run_dir.name}\n")
    record = {"schema": SCHEMA_VERSION, "run_id": run_id_of(config), "status": status, "config": config,
              "overrides": [], "experiment": None, "seed": config["seed"],
              "env": {"python": "3.11", "torch": "2.14.1", "device": "cpu", "git_sha": None, "host": "test",
                      "package_version": "0.1.0"}}
    if status == "failed":
        record.update(error={"type": error[0], "message": error[1],
                             "traceback_tail": ["Traceback (most recent call last):", f"{error[0]}: {error[1]}"]},
                      timing={"total_s": 0.5}, notes=[f"failed: {error[0]}: {error[1]}"])
    else:
        history = history or make_history(epochs, steps_per_epoch, train_acc, test_acc)
        last = history[-1]
        record.update(
            model={"name": config["model"]["name"], "num_params": int((measures or {}).get("num_params") or 1000)},
            data={"name": config["dataset"]["name"], "train_size": train_size, "test_size": test_size,
                  "input_shape": [1, 8, 8], "num_classes": 10, "corrupted_fraction": 0.0},
            final=_final(last),
            interpolation=interpolation or _interpolation(history),
            measures=measures or {},
            measured={name: {"params": PARAMS_KEY, "code": "gen 0.1.0", "seconds": 0.01} for name in measures or {}},
            measure_params={PARAMS_KEY: config.get("measure", {}).get("params", {})},
            history=history,
            timing={"total_s": last["seconds"] + 0.5, "data_s": 0.1, "train_s": last["seconds"],
                    "measures_s": 0.1, "train_samples_per_s": 50000.0},
            notes=(notes or []) + (["training diverged (non_finite_loss, gen.training.divergence)"]
                                   if status == "diverged" else []))
        if status == "diverged":
            record["divergence"] = {"rule": "non_finite_loss", "epoch": last["epoch"], "step": last["step"],
                                    "train_loss": None}
        if split_acc is not None:
            record["split_acc"] = split_acc
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    return run_dir


def _final(last: dict) -> dict:
    has_acc = last.get("train_acc") is not None
    return {"train_acc": last.get("train_acc"), "train_loss": last["train_loss"], "test_acc": last.get("test_acc"),
            "test_loss": last["test_loss"],
            "train_error": 1 - last["train_acc"] if has_acc else None,
            "test_error": 1 - last["test_acc"] if has_acc else None,
            "gen_gap": last["train_acc"] - last["test_acc"] if has_acc else None,
            "loss_gap": last["test_loss"] - last["train_loss"], "epochs": last["epoch"], "steps": last["step"]}


def _interpolation(history: list[dict]) -> dict:
    """The first evaluation with train CE < 0.01 or train accuracy > 99.7% (S2, Zhang et al. 2017; docs/records.md)."""
    for row in history:
        acc = row.get("train_acc")
        if row["train_loss"] < 0.01 or (acc is not None and acc > 0.997):
            return {"reached": True, "epoch": row["epoch"], "step": row["step"], "seconds": row["seconds"],
                    "test_error": 1 - acc if acc is not None else None}
    return {"reached": False, "epoch": None, "step": None, "seconds": None, "test_error": None}


def write_multirun_yaml(sweep_dir: Path, name: str, params: dict[str, str]) -> Path:
    """The ``multirun.yaml`` Hydra leaves at a sweep's root (the parts analysis reads)."""
    path = Path(sweep_dir) / "multirun.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    task = [f"{k}={v}" for k, v in params.items()]
    path.write_text(yaml.safe_dump({"hydra": {"sweeper": {"params": params},
                                              "overrides": {"task": task},
                                              "sweep": {"dir": str(sweep_dir)}},
                                    **make_config(name)}, sort_keys=False))
    return path


def write_unfinished_run(sweep_dir: Path, config: dict, run_id: str | None = None) -> Path:
    """A folder a job started and never finished: Hydra's ``.hydra/`` but no metrics.json."""
    run_dir = Path(sweep_dir) / (run_id or run_id_of(config))
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run_dir
