"""Every config-group option composes and validates; bad input fails with one clear line."""
import pytest

from gen import measures
from gen.config import ConfigError, validate
from tests.helpers import CONF, compose_config

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


def test_a_key_of_another_option_names_the_options_that_have_it(run_in):
    proc, _ = run_in(["corruption.prob=0.5", "--cfg", "job"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: invalid config: corruption.prob=0.5: unknown key 'corruption.prob'; choose corruption=gaussian "
        "(or labels, random_labels, random_pixels, shuffled_pixels) to set prob "
        "(see the keys with `python launch.py --cfg job`)"]
    proc, _ = run_in(["model.foo=1", "--cfg", "job"])
    assert proc.returncode == 2 and "choose" not in proc.stderr  # no option has it: no hint


def test_the_validator_names_them_too():
    from omegaconf import open_dict

    cfg = compose_config(["corruption=none"])
    with open_dict(cfg):
        cfg.corruption.prob = 0.5
    with pytest.raises(ConfigError, match=r"unknown key; .*; choose corruption=gaussian \(or labels, .*\) to set prob$"):
        validate(cfg)


def test_a_bad_value_in_a_multirun_stops_before_the_launch_banner_and_leaves_no_folder(run_in):
    proc, root = run_in(["-m", "optimizer.lr=0.1,-1", "trainer.max_epochs=1"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: invalid config: optimizer.lr=-1: must be > 0"]
    assert "Launching" not in proc.stdout and "#0" not in proc.stdout
    assert not (root / "outputs").exists()  # nothing written anywhere


def test_a_preset_whose_data_is_missing_leaves_no_sweep_folder(run_in):
    proc, root = run_in(["-m", "experiment=zhang_randomization", "dataset.root=nowhere"])
    assert proc.returncode == 2 and "cifar10 files not found" in proc.stderr
    assert not (root / "outputs").exists()


def test_a_misspelt_group_suggests_the_key_meant(run_in):
    proc, _ = run_in(["modle.hidden_units=3", "--cfg", "job"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: invalid config: modle.hidden_units=3: unknown key 'modle.hidden_units'; did you mean "
        "model.hidden_units? (see the keys with `python launch.py --cfg job`)"]


@pytest.mark.parametrize("typo, meant", [("trainer.max_epoch", "trainer.max_epochs"),
                                         ("optimizer.sam.rhoo", "optimizer.sam.rho"), ("sed", "seed")])
def test_a_misspelt_key_at_any_depth_suggests_the_key_meant(typo, meant):
    from gen.config.base import misspelt_key_hint

    assert misspelt_key_hint(typo) == f"; did you mean {meant}?"
    assert misspelt_key_hint(meant) == "" and misspelt_key_hint("zzz.qqq") == ""
