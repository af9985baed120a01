"""Data augmentation (gen.data.augment): the crops and flips themselves, their determinism, that they
touch training batches only, their refusals, and that adding the group moved no run's folder."""
import pytest
import torch

from gen.data.augment import Augmentation, crop, flip
from gen.sweeps.run_id import run_id, run_id_of_record
from gen.config import ConfigError, validate
from gen.run import build_run
from tests.helpers import TINY, compose_config, launch, read_metrics

IMAGE = torch.arange(1.0, 10.0).view(1, 1, 3, 3)   # 1 2 3 / 4 5 6 / 7 8 9


def test_a_crop_is_the_window_of_the_zero_padded_image_at_its_offset():
    images = torch.cat([IMAGE, IMAGE + 10])
    cropped = crop(images, padding=1, offsets=torch.tensor([[0, 0], [2, 1]]))
    assert cropped.tolist() == [[[[0, 0, 0], [0, 1, 2], [0, 4, 5]]],
                                [[[14, 15, 16], [17, 18, 19], [0, 0, 0]]]]
    centre = crop(images, padding=1, offsets=torch.tensor([[1, 1], [1, 1]]))
    assert torch.equal(centre, images)


def test_a_crop_takes_the_same_window_of_every_channel():
    image = torch.stack([IMAGE[0, 0], -IMAGE[0, 0]])[None]        # two channels
    cropped = crop(image, padding=2, offsets=torch.tensor([[4, 0]]))
    assert cropped[0, 0].tolist() == [[0, 0, 7], [0, 0, 0], [0, 0, 0]]
    assert torch.equal(cropped[0, 1], -cropped[0, 0])


def test_a_flip_mirrors_the_chosen_images_left_right_and_leaves_the_others():
    images = torch.cat([IMAGE, IMAGE + 10])
    flipped = flip(images, torch.tensor([True, False]))
    assert flipped[0, 0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
    assert torch.equal(flipped[1], images[1])


def test_each_augmented_image_is_one_of_its_crops_maybe_mirrored_and_all_offsets_occur():
    images = torch.randn(4000, 2, 5, 6)
    out = Augmentation(padding=2, flip_prob=0.5, generator=torch.Generator().manual_seed(0))(images)
    candidates = torch.stack([variant(crop(images, 2, torch.tensor([[r, c]]).expand(len(images), 2)))
                              for r in range(5) for c in range(5) for variant in (lambda x: x, lambda x: x.flip(-1))])
    matches = (candidates == out).flatten(2).all(-1)              # [50 variants, N]
    assert matches.any(0).all()
    assert matches.any(1).all(), "every offset, mirrored or not, is drawn"
    mirrored = matches[1::2].any(0) & ~matches[0::2].any(0)
    assert 0.45 < mirrored.float().mean() < 0.55


def test_the_same_generator_state_draws_the_same_batch():
    images = torch.randn(64, 3, 8, 8)
    first = Augmentation(4, 0.5, torch.Generator().manual_seed(3))(images)
    again = Augmentation(4, 0.5, torch.Generator().manual_seed(3))(images)
    other = Augmentation(4, 0.5, torch.Generator().manual_seed(4))(images)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_training_augments_batches_and_leaves_the_data_evaluation_sees_untouched():
    setup = build_run(compose_config(TINY + ["augment=crop_flip", "augment.padding=2"]))
    before = setup.data.x_train.clone()
    seen = []
    augment = setup.trainer.augment
    setup.trainer.augment = lambda x: seen.append((x.clone(), augment(x))) or seen[-1][1]
    setup.trainer.fit()
    assert seen and all(not torch.equal(x, out) for x, out in seen[:3])
    assert torch.equal(setup.data.x_train, before)


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_metrics_and_augmentation_changes_them(tmp_path):
    augmented = ["augment=crop_flip", "augment.padding=2"]
    histories = []
    for name, augment in (("a", augmented), ("b", augmented), ("none", ["augment=none"])):
        proc = launch(TINY + augment + ["trainer.save_weights=false", f"hydra.run.dir={tmp_path / name}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        histories.append([{k: v for k, v in row.items() if k != "seconds"}
                          for row in read_metrics(tmp_path / name / "metrics.json")["history"]])
    assert histories[0] == histories[1] != histories[2]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["synthetic", "sinusoid"])
def test_augmenting_inputs_that_are_not_images_is_one_line_exit_2_and_nothing_written(dataset, tmp_path):
    run_dir = tmp_path / "run"
    model = ["model=steady_mlp"] if dataset == "sinusoid" else []
    proc = launch([f"dataset={dataset}", *model, "augment=crop", "trainer.max_epochs=1", "trainer.progress=false",
                   f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "invalid config" in line]
    assert len(lines) == 1 and "augment.name=crop" in lines[0] and "image" in lines[0], proc.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("override, key", [("augment.padding=0", "augment.padding"),
                                           ("augment.prob=1.5", "augment.prob"),
                                           ("+augment.size=3", "augment.size")])
def test_bad_augmentation_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        validate(compose_config(["augment=crop_flip", override]))


# Ids of runs published in docs/reproductions/repro_s1/runs.csv, before the augment group existed
# (scripts/reproduce.sh's s1 commands).
PUBLISHED = {
    "1b5affbb44c1": ["experiment=neyshabur_width", "name=repro_s1", "model.hidden_units=32", "corruption=none",
                     "trainer.max_epochs=30"],
}
COMMON = ["trainer.progress=false", "trainer.save_weights=false", "analysis.auto=false"]


@pytest.mark.parametrize("published", PUBLISHED)
def test_adding_the_augment_group_moved_no_published_run(published):
    from gen.sweeps.run_id import legacy_run_id

    assert legacy_run_id(compose_config(PUBLISHED[published] + COMMON)) == published  # gen.migrate finds it


def test_augment_none_leaves_the_id_of_the_config_without_the_group_and_any_augmentation_moves_it():
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(compose_config(TINY), resolve=True)
    assert config["augment"] == {"name": "none"}
    without = {k: v for k, v in config.items() if k != "augment"}
    assert run_id_of_record(config) == run_id_of_record(without) == run_id(compose_config(TINY))
    ids = {run_id(compose_config(TINY + [f"augment={name}"])) for name in ("none", "crop", "flip", "crop_flip")}
    assert len(ids) == 4
