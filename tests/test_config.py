"""Every config-group option composes and validates; bad input fails with one clear line."""
import pytest

from gen import measures
from gen.schema import ConfigError, validate
from tests.conftest import CONF, compose_config

GROUPS = ["model", "dataset", "corruption", "augment", "optimizer", "measure", "trainer", "experiment"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes_and_validates(group):
    assert options(group), f"conf/{group}/ is empty"
    for option in options(group):
        cfg = compose_config([f"{group}={option}"])
        validate(cfg)
        measures.check_set(cfg.measure)
        if group != "experiment":
            assert cfg[group].name == option, f"conf/{group}/{option}.yaml must say name: {option}"


def test_design_groups_all_present():
    for group in GROUPS + ["hydra/launcher"]:
        assert (CONF / group).is_dir(), group


@pytest.mark.parametrize("override, key", [
    ("model.hidden_units=0", "model.hidden_units"),
    ("model.hidden_units=abc", "model.hidden_units"),
    ("dataset.train_size=-5", "dataset.train_size"),
    ("trainer.max_epochs=-1", "trainer.max_epochs"),
    ("optimizer.lr=-0.1", "optimizer.lr"),
    ("+trainer.foo=1", "trainer.foo"),
    ("trainer.stop.rule=sometimes", "trainer.stop.rule"),
])
def test_bad_values_name_the_key_and_what_is_allowed(override, key):
    cfg = compose_config([override])
    with pytest.raises(ConfigError) as caught:
        validate(cfg)
    message = str(caught.value)
    assert key in message and "\n" not in message
    assert override.split("=", 1)[1] in message


def test_run_dir_is_a_pure_function_of_the_config():
    a = compose_config(["seed=1"], return_hydra_config=True)
    b = compose_config(["seed=1", "trainer.progress=false"], return_hydra_config=True)
    c = compose_config(["seed=2"], return_hydra_config=True)
    assert a.hydra.run.dir == b.hydra.run.dir != c.hydra.run.dir
    assert a.hydra.run.dir.startswith("outputs/runs/")
