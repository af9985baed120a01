"""The table of identity changes (gen/sweeps/run_id.py): each line holds at conf/'s default and hashes
there as the config did before the key existed.  The golden ids themselves are in tests/test_layout.py."""
import pytest
from omegaconf import OmegaConf

from gen.sweeps.run_id import IDENTITY_CHANGES, OMIT, GroupOption, legacy_run_id, run_id, run_id_of_record, without
from tests.helpers import compose_config

ADDED = [c for c in IDENTITY_CHANGES if not c.path.endswith("._target_")]  # the others are classes that moved


def at(content: dict, path: str):
    for key in path.split("."):
        content = content[key]
    return content


@pytest.fixture(scope="module")
def default_config():
    return OmegaConf.to_container(compose_config([]), resolve=True)


@pytest.mark.parametrize("change", ADDED, ids=lambda c: c.path)
def test_a_key_added_later_is_in_the_table_at_its_default_in_conf(change, default_config):
    assert change.holds(at(default_config, change.path))


@pytest.mark.parametrize("change", ADDED, ids=lambda c: c.path)
def test_at_its_default_an_added_key_hashes_as_the_config_written_before_it(change, default_config):
    if change.hashed is OMIT:
        before = without(default_config, change.path)
    else:  # the value it stands for, written out
        before = OmegaConf.to_container(OmegaConf.create(default_config))
        keys = change.path.split(".")
        at(before, ".".join(keys[:-1]))[keys[-1]] = change.hashed
    assert legacy_run_id(default_config) == legacy_run_id(before)
    assert run_id_of_record(default_config) == run_id_of_record(before)


def test_an_added_key_away_from_its_default_has_an_id_of_its_own():
    assert run_id(compose_config(["trainer.loss=squared"])) != run_id(compose_config([]))
    assert run_id(compose_config(["augment=flip"])) != run_id(compose_config([]))
    assert legacy_run_id(compose_config(["measure.params.conv_spectral=reshape"])) != legacy_run_id(compose_config([]))


def test_a_condition_limits_a_change_to_its_convention():
    """Under another convention, conv_spectral's null was never fft: it is hashed as it stands."""
    jiang = OmegaConf.to_container(compose_config(["measure.params.convention=jiang2020"]), resolve=True)
    written_out = OmegaConf.to_container(OmegaConf.create(jiang))
    written_out["measure"]["params"]["conv_spectral"] = "fft"
    assert legacy_run_id(jiang) != legacy_run_id(written_out)


def test_hashing_never_changes_the_callers_config(default_config):
    copy = OmegaConf.to_container(OmegaConf.create(default_config))
    legacy_run_id(default_config), run_id_of_record(default_config)
    assert default_config == copy


def test_a_group_change_reads_the_groups_option_alone():
    assert GroupOption("none").matches({"name": "none", "padding": 4})
    assert not GroupOption("none").matches({"name": "crop"}) and not GroupOption("none").matches("none")


def test_each_change_names_a_release_up_to_this_one():
    import gen

    release = lambda text: tuple(int(part) for part in text.split("."))
    assert all(release("0.1.0") < release(c.since) <= release(gen.__version__) for c in IDENTITY_CHANGES)
