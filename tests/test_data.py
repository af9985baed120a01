"""The dataset zoo (gen/data/): sources, subsets, transforms, caches, and their errors."""
import math
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
import torchvision.transforms as T
from PIL import Image
from torchvision.datasets.utils import check_integrity

import fake_datasets as fake
from tests.helpers import compose_config, launch, metrics_files, shape_of
from gen.data import cache, load_data, sinusoid, vision
from gen.data.subset import stratified_indices
from gen.data.transforms import center_crop, channel_stats, resize
from gen.models import build_model
from gen.config import ConfigError, validate

VISION = {"mnist": fake.write_mnist, "fashion_mnist": fake.write_fashion_mnist, "cifar10": fake.write_cifar10,
          "cifar100": fake.write_cifar100, "svhn": fake.write_svhn}


@pytest.fixture(autouse=True)
def fresh_caches(tmp_path, monkeypatch):
    """Each test starts with an empty in-process cache and its own disk cache folder."""
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path / "cache"))
    cache.clear_memory()
    with fake.skip_md5_checks():
        yield
    cache.clear_memory()


def load(overrides, corruption=("corruption=none",)):
    config = compose_config([*overrides, *corruption])
    validate(config)
    return load_data(config.dataset, config.corruption, "cpu")


def as_nchw(name, images):
    """The fake writer's arrays (torchvision's layout) as uint8 [N, C, H, W]."""
    if name in ("mnist", "fashion_mnist"):
        return torch.from_numpy(images).unsqueeze(1)
    if name.startswith("cifar"):
        return torch.from_numpy(images).permute(0, 3, 1, 2)
    return torch.from_numpy(images)


# ---- digits, synthetic, sinusoid ---------------------------------------------------------------
def test_digits_are_scaled_8x8_images_in_a_stratified_split():
    data = load(["dataset=digits"])
    assert data.task == "classification" and data.num_classes == 10
    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.x_train.min() == 0 and data.x_train.max() == 1
    # Stratified: each class's share of the test split is within one sample of 25%.
    total = torch.bincount(torch.cat([data.y_train, data.y_test]), minlength=10)
    test = torch.bincount(data.y_test, minlength=10)
    assert ((test - total * 0.25).abs() <= 1).all()
    assert not data.corrupted.any()


def test_digits_split_follows_data_seed():
    a, b, c = load(["dataset=digits"]), load(["dataset=digits"]), load(["dataset=digits", "dataset.data_seed=1"])
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)


def sklearn_split(test_fraction, data_seed):
    """The split as gen made it before its disk cache: scikit-learn, called directly."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    return train_test_split(digits.images.astype(np.float32) / 16.0, labels, test_size=test_fraction,
                            stratify=labels, random_state=data_seed)


@pytest.mark.parametrize("test_fraction, data_seed", [(0.25, 0), (0.25, 1), (0.1, 7), (300, 0)])
def test_the_digits_split_on_disk_is_scikit_learns_bit_for_bit(tmp_path, monkeypatch, test_fraction, data_seed):
    """The split as computed, and as read back from disk, is the one gen made before it had the cache."""
    from gen.data import digits

    expected = sklearn_split(test_fraction, data_seed)
    computed = digits.split(test_fraction, data_seed)
    (stored,) = (tmp_path / "cache").glob("digits-split-*.npz")
    with monkeypatch.context() as patch:
        patch.setattr(digits, "compute_split", lambda *args: pytest.fail("split again, not read from disk"))
        read = digits.split(test_fraction, data_seed)
    for arrays in (computed, read):
        assert [a.dtype for a in arrays] == [a.dtype for a in expected]
        assert all(np.array_equal(a, b) for a, b in zip(arrays, expected))
    assert len(list((tmp_path / "cache").glob("digits-split-*.npz"))) == 1
    stored.write_bytes(b"not an npz")  # a damaged file is split again and replaced
    assert all(np.array_equal(a, b) for a, b in zip(digits.split(test_fraction, data_seed), expected))
    assert np.load(stored, allow_pickle=False)["y_test"].shape == expected[3].shape


def test_a_run_whose_digits_split_is_on_disk_does_not_import_scikit_learn(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO

    code = ("import sys; from gen.data import digits; digits.split(0.25, 0); "
            "print('sklearn' in sys.modules)")
    env = {**os.environ, "GEN_CACHE_DIR": str(tmp_path / "cache")}
    first, second = (subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                                    text=True, check=True).stdout.strip() for _ in range(2))
    assert (first, second) == ("True", "False")


def test_digits_split_without_a_disk_cache(tmp_path, monkeypatch):
    from gen.data import digits

    monkeypatch.setenv("GEN_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert all(np.array_equal(a, b) for a, b in zip(digits.split(0.25, 0), sklearn_split(0.25, 0)))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "xdg").exists()
    monkeypatch.delenv("GEN_CACHE_DIR")
    digits.split(0.25, 0)
    assert len(list((tmp_path / "xdg" / "gen").glob("digits-split-*.npz"))) == 1


def test_synthetic_mixture_is_balanced_and_centres_are_separation_apart():
    data = load(["dataset=synthetic", "dataset.num_train=20000", "dataset.num_test=10", "dataset.dim=50",
                 "dataset.num_classes=20", "dataset.separation=3.0"])
    assert data.x_train.shape == (20000, 50) and data.num_classes == 20
    assert (torch.bincount(data.y_train) == 1000).all()
    means = torch.stack([data.x_train[data.y_train == c].mean(0) for c in range(20)]).double()
    # Unit-variance clusters: within-class spread is 1 per coordinate.
    within = torch.cat([data.x_train[data.y_train == c] - means[c].float() for c in range(20)])
    assert abs(within.var().item() - 1) < 0.02
    # E|c_i − c_j|² = separation²; each class mean adds noise of variance dim/1000 per centre.
    squared = torch.pdist(means).pow(2).mean().item()
    assert abs(squared - (9.0 + 2 * 50 / 1000)) < 0.15 * 9.0


def test_sinusoid_hides_cos_cos_of_a_2d_point_in_a_rotated_scaled_space():
    data = load(["dataset=sinusoid", "dataset.f=0.75"])
    assert data.task == "regression" and data.num_classes == 0 and data.num_outputs == 1
    assert data.x_train.shape == (100, 10) and data.y_train.shape == (100, 1) and data.x_test.shape == (30, 10)
    # Rebuild Q the way the module draws it and undo the map: x = 10·Q·p  ⇒  p = Qᵀx / 10.
    q = sinusoid.random_orthogonal(10, torch.Generator().manual_seed(0))
    assert torch.allclose(q @ q.T, torch.eye(10, dtype=torch.float64), atol=1e-12)
    points = data.x_train.double() @ q / 10
    assert points[:, 2:].abs().max() < 1e-5                 # zero-padded
    assert points[:, :2].abs().max() <= 1 + 1e-5            # uniform on [−1, 1]²
    x, y = points[:, 0], points[:, 1]
    expected = torch.cos(2 * math.pi * 0.75 * x) * torch.cos(2 * math.pi * 0.75 * y)
    assert torch.allclose(data.y_train.squeeze(1).double(), expected, atol=1e-5)
    # train_size on a regression set: a seeded random subset of the points.
    subset = load(["dataset=sinusoid", "dataset.f=0.75", "dataset.train_size=40"])
    rows = {tuple(r) for r in data.x_train.tolist()}
    assert len(subset.x_train) == 40 and all(tuple(r) in rows for r in subset.x_train.tolist())


# ---- subsets and classes -----------------------------------------------------------------------
def test_stratified_quota_by_largest_remainder_worked_example():
    # Classes of sizes 5, 3, 2; choosing 5 gives exact shares 2.5, 1.5, 1.0: floors 2, 1, 1 and the
    # one left over goes to the largest remainder (a tie between classes 0 and 1: the lower, 0).
    labels = torch.tensor([0, 1, 0, 2, 0, 1, 0, 2, 1, 0])
    chosen = stratified_indices(labels, 5, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[chosen], minlength=3).tolist() == [3, 1, 1]
    assert torch.equal(chosen, chosen.sort().values) and len(chosen.unique()) == 5


@pytest.mark.parametrize("size", [1, 37, 500, 1346])
def test_stratified_subset_keeps_class_shares_within_one_sample(size):
    full, data = load(["dataset=digits"]), load(["dataset=digits", f"dataset.train_size={size}"])
    assert len(data.y_train) == size and len(data.x_test) == len(full.x_test)
    share = torch.bincount(full.y_train, minlength=10).double() * size / len(full.y_train)
    assert ((torch.bincount(data.y_train, minlength=10) - share).abs() < 1).all()
    # The subset is made of training samples (each image of the subset is one of the full set's).
    rows = {tuple(r) for r in full.x_train.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in data.x_train.flatten(1).tolist())


def test_train_size_is_seeded():
    a = load(["dataset=digits", "dataset.train_size=100"])
    b = load(["dataset=digits", "dataset.train_size=100"])
    c = load(["dataset=digits", "dataset.train_size=100", "dataset.data_seed=3"])
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)


def test_train_size_larger_than_the_data_names_the_maximum():
    with pytest.raises(ConfigError, match=r"dataset\.train_size=2000: at most 1347"):
        load(["dataset=digits", "dataset.train_size=2000"])


def test_classes_are_kept_and_relabelled_in_the_order_given():
    full = load(["dataset=digits"])
    data = load(["dataset=digits", "dataset.classes=[7,2]"])
    assert data.num_classes == 2 and data.num_outputs == 2
    assert torch.equal(data.x_train, full.x_train[(full.y_train == 7) | (full.y_train == 2)])
    assert torch.equal(data.y_train, (full.y_train[(full.y_train == 7) | (full.y_train == 2)] == 2).long())
    assert set(data.y_test.tolist()) == {0, 1}


@pytest.mark.parametrize("classes, message", [("[0,0]", "distinct"), ("[42]", r"0\.\.9"), ("[3,10]", r"0\.\.9"),
                                              ("[4]", "at least two")])
def test_bad_classes_are_one_clear_line(classes, message):
    with pytest.raises(ConfigError, match=message) as error:
        load(["dataset=digits", f"dataset.classes={classes}"])
    assert str(error.value).startswith("invalid config: dataset.classes=") and "\n" not in str(error.value)


def test_regression_has_no_classes_key():
    with pytest.raises(ConfigError, match="dataset.classes"):
        load(["dataset=sinusoid", "+dataset.classes=[0,1]"])


# ---- transforms --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 20])
def test_tensor_resize_matches_pil_resize_within_one_grey_level(size):
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    pil = np.stack([np.array(T.Resize(size)(Image.fromarray(a))) for a in images]).astype(int)
    ours = resize(torch.from_numpy(images).unsqueeze(1), size).squeeze(1).numpy().astype(int)
    assert np.abs(pil - ours).max() <= 1


@pytest.mark.parametrize("size, height", [(28, 32), (5, 31), (31, 31)])
def test_center_crop_matches_torchvision(size, height):
    x = torch.rand(2, 3, height, height)
    assert torch.equal(center_crop(x, size), T.CenterCrop(size)(x))


def test_crop_larger_than_the_image_is_rejected():
    with pytest.raises(ConfigError, match=r"dataset\.crop=9: at most the image size 8×8"):
        load(["dataset=digits", "dataset.crop=9"])


def test_normalize_with_computed_statistics_centres_the_training_split():
    data = load(["dataset=digits", "dataset.classes=[0,1,2]", "dataset.normalize=true"])
    x = data.x_train.double()
    assert abs(x.mean().item()) < 1e-6 and abs(x.std(correction=0).item() - 1) < 1e-6


def test_uint8_channel_statistics_from_histograms_match_float64_brute_force():
    x = torch.randint(0, 256, (50, 3, 5, 7), dtype=torch.uint8)
    x[:, 2] = 9                                                     # a constant channel: std 0
    mean, std = channel_stats(x)
    brute = x.double().transpose(0, 1).reshape(3, -1)
    assert torch.allclose(mean, brute.mean(1), rtol=1e-12) and torch.allclose(std, brute.std(1, correction=0), atol=1e-9)


def test_normalize_with_computed_statistics_on_a_uint8_set(tmp_path):
    fake.write_cifar10(tmp_path, n_train=300)
    data = load(["dataset=cifar10", f"dataset.root={tmp_path}", "dataset.normalize=true"])
    per_channel = data.x_train.double().transpose(0, 1).reshape(3, -1)
    assert per_channel.mean(1).abs().max() < 1e-5 and (per_channel.std(1, correction=0) - 1).abs().max() < 1e-5


def test_normalize_with_given_statistics_is_x_minus_mean_over_std():
    raw = load(["dataset=digits"])
    data = load(["dataset=digits", "dataset.normalize=true", "dataset.mean=[0.25]", "dataset.std=[0.5]"])
    assert torch.allclose(data.x_test, (raw.x_test - 0.25) / 0.5)


@pytest.mark.parametrize("overrides, key", [
    (["dataset.normalize=true", "dataset.mean=[0.1,0.2]", "dataset.std=[1,1]"], "dataset.mean"),
    (["dataset.normalize=true", "dataset.mean=[0.1]"], "dataset.std"),
    (["dataset.mean=[0.1]", "dataset.std=[0.3]"], "dataset.mean"),
    (["dataset.normalize=true", "dataset.mean=[0.1]", "dataset.std=[0]"], "dataset.std"),
])
def test_bad_normalisation_settings_are_rejected(overrides, key):
    with pytest.raises(ConfigError, match=f"invalid config: {key}="):
        load(["dataset=digits", *overrides])


# ---- the torchvision sets, from files in their real formats -----------------------------------
@pytest.mark.parametrize("name", sorted(VISION))
def test_torchvision_sets_load_from_real_format_files(name, tmp_path):
    written = VISION[name](tmp_path / "data")
    data = load([f"dataset={name}", f"dataset.root={tmp_path / 'data'}"])
    for split in ("train", "test"):
        images, labels = written[split]
        expected = as_nchw(name, images).float() / 255
        assert torch.equal(getattr(data, f"x_{split}"), expected)
        assert torch.equal(getattr(data, f"y_{split}"), torch.from_numpy(labels))
    assert data.num_classes == (100 if name == "cifar100" else 10)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64


def test_s1_mnist_preprocessing_matches_the_textbook_pipeline(tmp_path):
    written = fake.write_mnist(tmp_path, n_train=40, n_test=10)
    data = load(["dataset=mnist", f"dataset.root={tmp_path}", "dataset.resize=32", "dataset.normalize=true",
                 "dataset.mean=[0.1307]", "dataset.std=[0.3081]"])
    textbook = T.Compose([T.Resize(32), T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    expected = torch.stack([textbook(Image.fromarray(a)) for a in written["test"][0]])
    assert data.x_test.shape == (10, 1, 32, 32)
    assert (data.x_test - expected).abs().max() <= 1 / 255 / 0.3081 + 1e-6   # one grey level


def test_s5_cifar_airplane_vs_dog_and_s2_crop(tmp_path):
    written = fake.write_cifar10(tmp_path)
    data = load(["dataset=cifar10", f"dataset.root={tmp_path}", "dataset.classes=[0,5]", "dataset.crop=28"])
    labels = written["train"][1]
    assert data.x_train.shape == ((labels == 0).sum() + (labels == 5).sum(), 3, 28, 28)
    assert data.num_classes == 2 and torch.equal(data.y_train, torch.from_numpy(labels[np.isin(labels, [0, 5])] == 5).long())


def test_fc_builds_for_a_torchvision_set(tmp_path):
    fake.write_cifar10(tmp_path)
    config = compose_config(["model=fc", "dataset=cifar10", f"dataset.root={tmp_path}"])
    data = load_data(config.dataset, config.corruption, "cpu")
    model = build_model(config.model, *shape_of(data))
    assert model(data.x_test[:4]).shape == (4, 10)


def test_missing_files_say_where_and_that_download_needs_internet(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(["dataset=cifar10", f"dataset.root={tmp_path / 'nowhere'}"])
    message = str(error.value)
    assert "\n" not in message and message.startswith("invalid config: dataset.root=")
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message and "download=true" in message
    assert "internet" in message


def test_a_failed_download_says_it_needs_internet(tmp_path, monkeypatch):
    def offline(self):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(ConfigError, match=r"dataset\.download=true: downloading mnist into .* needs internet"):
        load(["dataset=mnist", f"dataset.root={tmp_path}", "dataset.download=true"])


def test_files_failing_torchvisions_checksum_are_one_clear_line(tmp_path, monkeypatch):
    fake.write_cifar10(tmp_path)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", check_integrity)   # the real check
    with pytest.raises(ConfigError, match=r"dataset\.root=.*torchvision could not load cifar10 .*corrupted"):
        load(["dataset=cifar10", f"dataset.root={tmp_path}"])


# ---- caches ------------------------------------------------------------------------------------
def test_the_disk_cache_gives_what_decoding_gives_and_skips_decoding(tmp_path, monkeypatch):
    fake.write_mnist(tmp_path / "data")
    overrides = ["dataset=mnist", f"dataset.root={tmp_path / 'data'}", "dataset.resize=16"]
    first = load(overrides, ["corruption=random_pixels"])
    assert len(list((tmp_path / "cache").glob("mnist-*.pt"))) == 1
    cache.clear_memory()

    def no_decoding(*args):
        raise AssertionError("decoded again despite the disk cache")

    monkeypatch.setattr(vision, "decode", no_decoding)
    second = load(overrides, ["corruption=random_pixels"])
    for key in ("x_train", "y_train", "x_test", "y_test", "corrupted"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key
    # A different transform is a different entry: it must decode.
    with pytest.raises(AssertionError, match="decoded again"):
        load(["dataset=mnist", f"dataset.root={tmp_path / 'data'}", "dataset.resize=20"])


def test_the_in_process_cache_skips_disk_and_decoding(tmp_path, monkeypatch):
    fake.write_svhn(tmp_path)
    overrides = ["dataset=svhn", f"dataset.root={tmp_path}"]
    first = load(overrides)
    monkeypatch.setattr(vision, "decode", lambda *a: pytest.fail("decoded again"))
    monkeypatch.setattr(cache, "from_disk", lambda *a: pytest.fail("read the disk again"))
    second = load([*overrides, "dataset.train_size=50", "dataset.normalize=true"])
    third = load(overrides)
    assert torch.equal(first.x_train, third.x_train)
    assert len(second.y_train) == 50
    # Runs get their own tensors: changing one never changes the next run's data.
    third.x_train.zero_()
    assert torch.equal(load(overrides).x_train, first.x_train)


def test_replacing_a_source_file_invalidates_the_cache(tmp_path):
    root = tmp_path / "data"
    fake.write_fashion_mnist(root, seed=0)
    first = load(["dataset=fashion_mnist", f"dataset.root={root}"])
    written = fake.write_fashion_mnist(root, n_train=60, seed=1)
    second = load(["dataset=fashion_mnist", f"dataset.root={root}"])
    assert len(second.y_train) == 60 and not torch.equal(first.y_test, second.y_test)
    assert torch.equal(second.y_test, torch.from_numpy(written["test"][1]))


@pytest.mark.parametrize("name", VISION)
def test_each_vision_sets_files_are_those_its_torchvision_class_reads(name, tmp_path):
    """gen writes the layout out (a cached run never imports torchvision); torchvision's classes say it."""
    import torchvision.datasets as tvd

    cls = vision.SETS[name].tv_class
    if issubclass(cls, tvd.MNIST):
        expected = [tmp_path / cls.__name__ / "raw" / Path(file).stem for file, _ in cls.resources]  # .gz unpacked
    elif issubclass(cls, tvd.CIFAR10):
        folder = tmp_path / cls.base_folder
        expected = [folder / file for file, _ in cls.train_list + cls.test_list] + [folder / cls.meta["filename"]]
    else:
        expected = [tmp_path / cls.split_list[split][1] for split in ("train", "test")]
    assert vision.SETS[name].files(tmp_path) == expected


def test_a_run_whose_vision_set_is_cached_does_not_import_torchvision(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO

    fake.write_mnist(tmp_path / "data")
    code = ("import sys; from helpers import compose_config; from gen.data import load_data; "
            f"cfg = compose_config(['dataset=mnist', 'dataset.root={tmp_path / 'data'}']); "
            "load_data(cfg.dataset, cfg.corruption, 'cpu'); print('torchvision' in sys.modules)")
    env = {**os.environ, "GEN_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO / "tests")}
    first, second = (subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                                    text=True, check=True).stdout.strip() for _ in range(2))
    assert (first, second) == ("True", "False")


def test_cache_location_defaults_to_the_root_and_can_be_turned_off(tmp_path, monkeypatch):
    root = tmp_path / "data"
    fake.write_mnist(root)
    monkeypatch.delenv("GEN_CACHE_DIR")
    load(["dataset=mnist", f"dataset.root={root}"])
    assert len(list((root / ".gen_cache").glob("mnist-*.pt"))) == 1
    cache.clear_memory()
    other = tmp_path / "other"
    fake.write_mnist(other)
    monkeypatch.setenv("GEN_CACHE_DIR", "off")
    load(["dataset=mnist", f"dataset.root={other}"])
    assert not (other / ".gen_cache").exists() and not (tmp_path / "cache").exists()


# ---- through launch.py -------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["dataset.classes=[42]"], ["dataset=cifar10", "dataset.root=missing_folder"]],
                         ids=["classes-out-of-range", "cifar10-missing-root"])
def test_bad_dataset_input_fails_with_one_line_and_records_nothing_completed(tmp_path, args):
    proc = launch([*args, "trainer.progress=false"], tmp_path)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and args[-1].split("=")[0] in errors[0], proc.stderr
    assert all('"completed"' not in path.read_text() for path in metrics_files(tmp_path))
