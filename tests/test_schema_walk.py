"""Every value that reaches torch is validated first (issue 12, point 6).

The walk visits every key of every schema (gen.config.GROUPS: each option of each group, nested
blocks included) and tries, for each, a wrong type, an out-of-range value, a non-finite value and an
empty value (and, for the model's sizes, one too large for any memory).  Each must stop the run in
``gen.run.train`` with a ConfigError of one line and leave no run folder; a value that trains, or
fails any other way, is a hole in the schema.  A few of them also go through ``launch.py`` to check
the exit status 2 and the single line on stderr.
"""
import dataclasses
import math
import types
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from gen.run import train
from gen.config import GROUPS, ConfigError
from tests.helpers import CONF, compose_config, launch, metrics_files

HUGE = 10**15
SIZES = ("model.", "dataset.num_train", "dataset.num_test", "dataset.dim", "dataset.resize", "dataset.crop",
         "dataset.train_size")  # keys where a huge value means memory no machine has
BASE = ["trainer.max_epochs=1", "trainer.progress=false", "trainer.save_weights=false"]
DATASETS_OFFLINE = ("digits", "synthetic", "sinusoid")  # torchvision sets share TorchvisionCommon: mnist stands in


def fields_of(schema: type, prefix: str = ""):
    """(dotted key, annotation, limits, optional) for every leaf field, nested blocks included."""
    for field in dataclasses.fields(schema):
        key = f"{prefix}{field.name}"
        annotation, optional = field.type, False
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
            optional = True
        if dataclasses.is_dataclass(annotation):
            yield from fields_of(annotation, f"{key}.")
        else:
            yield key, annotation, field.metadata.get("limits", {}), optional


def out_of_range(limits: dict, is_int: bool) -> list:
    values = []
    if "choices" in limits:
        values.append(-12345 if not isinstance(limits["choices"][0], str) else "no-such-choice")
    step = 1 if is_int else 1e-3
    values += [limits["ge"] - step] if "ge" in limits else []
    values += [limits["gt"]] if "gt" in limits else []
    values += [limits["le"] + step] if "le" in limits else []
    values += [limits["lt"]] if "lt" in limits else []
    return values


def mutations(key: str, annotation, limits: dict, optional: bool) -> dict[str, object]:
    """name -> a value the schema must refuse for this key."""
    origin = typing.get_origin(annotation)
    empty = {} if optional else {"null": None}
    if origin is list:
        (item,) = typing.get_args(annotation)
        found = {"wrong type": "abc", "non-finite item": [math.inf], "wrong item type": [[1]], **empty}
        if item in (int, float):
            found["wrong item type"] = ["abc"]
        if limits.get("min_length", 1) > 0:
            found["empty list"] = []
        for i, value in enumerate(out_of_range(limits.get("items", {}), item is int)):
            found[f"item out of range {i}"] = [value]
        if key.startswith("model.") and item is not str:
            found["huge item"] = [HUGE]
        return found
    if annotation is bool:
        return {"wrong type": "abc", "non-finite": math.inf, **empty}
    if annotation is str:
        found = {"wrong type": 5, "empty string": "", **empty}
        found.update({f"out of range {i}": v for i, v in enumerate(out_of_range(limits, False))})
        return found
    if annotation in (int, float):
        found = {"wrong type": "abc", "non-finite": math.inf, "nan": math.nan, **empty}
        found.update({f"out of range {i}": v for i, v in enumerate(out_of_range(limits, annotation is int))})
        if annotation is int and key.startswith(SIZES):
            found["huge"] = HUGE
        return found
    raise AssertionError(f"{key}: the walk does not know how to try {annotation}")


def option_configs(fake_root: Path):
    """(label, overrides) choosing each option of each group once."""
    yield "root", []
    for group, options in GROUPS.items():
        if group == "":
            continue
        names = sorted(options) if "*" not in options else sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        for name in names:
            if group == "dataset" and name not in (*DATASETS_OFFLINE, "mnist"):
                continue
            extra = [f"dataset.root={fake_root}"] if (group, name) == ("dataset", "mnist") else []
            if group == "model":  # image models need images; digits are 8×8, some need 28×28
                extra = ["dataset=mnist", f"dataset.root={fake_root}"]
            yield f"{group}={name}", [f"{group}={name}", *extra]


def schema_of(cfg, label: str) -> type:
    group, _, _ = label.partition("=")
    if group == "root":
        return GROUPS[""]["root"]
    options = GROUPS[group]
    return options.get(cfg[group].name) or options["*"]


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    from tests.fake_datasets import write_mnist

    root = tmp_path_factory.mktemp("data")
    write_mnist(root, n_train=60, n_test=20)
    return root


@pytest.mark.slow
def test_every_key_refuses_a_wrong_type_a_bad_range_non_finite_and_empty_values(fake_root, tmp_path):
    holes, tried = [], 0
    for label, overrides in option_configs(fake_root):
        base = compose_config([*BASE, *overrides])
        schema = schema_of(base, label)
        prefix = "" if label == "root" else label.partition("=")[0] + "."
        for key, annotation, limits, optional in fields_of(schema):
            if label == "root" and key.split(".")[0] in GROUPS:
                continue
            for what, value in mutations(prefix + key, annotation, limits, optional).items():
                tried += 1
                cfg = base.copy()
                with open_dict(cfg):
                    OmegaConf.update(cfg, prefix + key, value, merge=False)
                run_dir = tmp_path / str(tried)
                try:
                    train(cfg, run_dir)
                except ConfigError as error:
                    if "\n" in str(error) or run_dir.exists():
                        holes.append(f"{label} {prefix}{key}={value!r} ({what}): {str(error)!r}, folder left")
                    continue
                except Exception as error:
                    holes.append(f"{label} {prefix}{key}={value!r} ({what}): {type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''}")
                    continue
                holes.append(f"{label} {prefix}{key}={value!r} ({what}): accepted")
    assert tried > 500
    assert not holes, f"{len(holes)} of {tried} bad values got past the schema:\n" + "\n".join(holes)


@pytest.mark.parametrize("args, line", [
    (["seed=99999999999999999999999"], "invalid config: seed=99999999999999999999999: must be ≥ 0 and ≤ 4294967295"),
    (["optimizer=adam", "optimizer.betas=[0.9]"], "invalid config: optimizer.betas=[0.9]: expected a list of 2 values"),
    (["optimizer.lr=inf"], "invalid config: optimizer.lr=inf: must be a finite number"),
    (["optimizer.lr=nan"], "invalid config: optimizer.lr=nan: must be a finite number"),
    (["model.hidden_units=1000000000000000"], "invalid config: model.hidden_units=1000000000000000: the model would"),
])
def test_bad_values_stop_launch_with_exit_2_one_line_and_no_record(args, line, tmp_path):
    proc = launch([*BASE, *args], tmp_path)
    assert proc.returncode == 2, proc.stderr
    (only,) = proc.stderr.strip().splitlines()
    assert only.startswith(f"error: {line}")
    assert not metrics_files(tmp_path) and not list((tmp_path / "outputs" / "runs").glob("*"))
