"""The randomization tests (gen/data/corruption.py): each corruption does exactly what Zhang et al. mean."""
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import compose_config
from gen.data.corruption import corrupt
from gen.data import load_data
from gen.data.bundle import DataBundle
from gen.models.fc import FullyConnected
from gen.config import ConfigError, validate

CORRUPTIONS = sorted(p.stem for p in (Path(__file__).parent.parent / "conf" / "corruption").glob("*.yaml"))
K = 10


def bundle(n_train=4000, n_test=500, shape=(3, 4, 4), seed=0) -> DataBundle:
    """Images whose every value is distinct and tells its place: value = image·10³ + channel·10² + position.
    (Exact in float32 below 2^24 ≈ 1.7·10⁷: fine for these sizes.)  Labels uniform over K classes."""
    g = torch.Generator().manual_seed(seed)

    def images(n, offset):
        c, h, w = shape
        index = torch.arange(n).view(n, 1, 1) * 1_000 + torch.arange(c).view(1, c, 1) * 100 + torch.arange(h * w)
        return (index + offset).float().view(n, *shape)

    return DataBundle("fake", "classification", images(n_train, 0), torch.randint(0, K, (n_train,), generator=g),
                      images(n_test, 5_000_000), torch.randint(0, K, (n_test,), generator=g), num_classes=K,
                      corrupted=torch.zeros(n_train, dtype=torch.bool))


def cfg(name, **keys):
    defaults = {"none": {}, "labels": {"prob": 0.5, "exclude_true": False},
                "random_labels": {"prob": 1.0, "exclude_true": False}}.get(name, {"prob": 1.0})
    return OmegaConf.create({"name": name, "apply_to": "train", "seed": 0, **defaults, **keys})


def within(observed: float, expected: float, n: int, sigmas: float = 4.0) -> bool:
    """|observed − expected| within ``sigmas`` binomial standard errors."""
    return abs(observed - expected) <= sigmas * math.sqrt(max(expected * (1 - expected), 1e-12) / n)


def positions(x: torch.Tensor) -> torch.Tensor:
    """The original position each value came from, per image and channel: ``[N, C, H·W]``."""
    return (x.reshape(len(x), x.shape[1], -1) % 100).long()


# ---- labels -----------------------------------------------------------------------------------
@pytest.mark.parametrize("prob", [0.1, 0.5, 0.9])
def test_exclude_true_changes_each_chosen_label_to_a_uniform_other_class(prob):
    data = bundle()
    out = corrupt(data, cfg("labels", prob=prob, exclude_true=True))
    n = len(data.y_train)
    assert torch.equal(out.corrupted, out.y_train != data.y_train)      # corrupted ⇔ label differs
    assert within(out.corrupted.float().mean().item(), prob, n)
    # The shift (new − old) mod K is uniform over 1..K−1 among changed labels.
    shift = ((out.y_train - data.y_train) % K)[out.corrupted]
    counts = torch.bincount(shift, minlength=K)
    assert counts[0] == 0
    m = len(shift)
    assert all(within(c / m, 1 / (K - 1), m) for c in counts[1:].tolist())


@pytest.mark.parametrize("prob", [0.2, 0.7])
def test_zhang_labels_redraw_from_all_classes(prob):
    data = bundle()
    out = corrupt(data, cfg("labels", prob=prob, exclude_true=False))
    n = len(data.y_train)
    # A chosen label keeps its class with chance 1/K: the changed fraction is p·(1 − 1/K).
    assert within(out.corrupted.float().mean().item(), prob * (1 - 1 / K), n)
    assert torch.equal(out.corrupted, out.y_train != data.y_train)


def test_random_labels_are_uniform_and_independent_of_the_truth():
    data = bundle()
    out = corrupt(data, cfg("random_labels"))
    n = len(data.y_train)
    counts = torch.bincount(out.y_train, minlength=K)
    assert all(within(c / n, 1 / K, n) for c in counts.tolist())
    assert within((out.y_train == data.y_train).float().mean().item(), 1 / K, n)
    assert torch.equal(out.x_train, data.x_train)


def test_label_corruption_needs_classes():
    data = DataBundle("sinusoid", "regression", torch.zeros(4, 10), torch.zeros(4, 1), torch.zeros(2, 10),
                      torch.zeros(2, 1), num_classes=0, corrupted=torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ConfigError, match="classification"):
        corrupt(data, cfg("labels"))


# ---- pixels -----------------------------------------------------------------------------------
def test_shuffled_pixels_use_one_permutation_for_every_image_train_and_test():
    data = bundle()
    out = corrupt(data, cfg("shuffled_pixels", apply_to="both"))
    train, test = positions(out.x_train), positions(out.x_test)
    permutation = train[0, 0]
    assert not torch.equal(permutation, torch.arange(len(permutation)))
    assert (train == permutation).all() and (test == permutation).all()   # every image, every channel
    assert out.corrupted.all()


def test_random_pixels_use_a_new_permutation_per_image_shared_across_channels():
    data = bundle()
    out = corrupt(data, cfg("random_pixels", apply_to="both"))
    for x in (out.x_train, out.x_test):
        pos = positions(x)
        assert (pos == pos[:, :1]).all()                  # the same permutation in each channel
        distinct = torch.unique(pos[:, 0], dim=0)
        assert len(distinct) > 0.99 * len(x)              # 16! permutations: collisions are rare
    # Each test permutation comes from its own stream, not the training one.
    assert not torch.equal(positions(out.x_train)[:len(out.x_test)], positions(out.x_test))


@pytest.mark.parametrize("name", ["shuffled_pixels", "random_pixels"])
def test_pixel_permutations_keep_each_images_pixel_multiset(name):
    data = bundle()
    out = corrupt(data, cfg(name, apply_to="both"))
    for before, after in ((data.x_train, out.x_train), (data.x_test, out.x_test)):
        sort = lambda x: x.reshape(len(x), x.shape[1], -1).sort(dim=2).values
        assert torch.equal(sort(before), sort(after))


def test_gaussian_matches_the_training_sets_per_channel_mean_and_std():
    g = torch.Generator().manual_seed(1)
    means, stds = torch.tensor([0.2, -1.0, 3.0]), torch.tensor([0.1, 1.0, 2.5])
    x = torch.rand(3000, 3, 6, 6, generator=g) * stds.view(1, 3, 1, 1) * math.sqrt(12) + means.view(1, 3, 1, 1)
    data = DataBundle("u", "classification", x, torch.zeros(3000, dtype=torch.long), x[:100].clone(),
                      torch.zeros(100, dtype=torch.long), 2, torch.zeros(3000, dtype=torch.bool))
    out = corrupt(data, cfg("gaussian"))
    # Targets computed another way: numpy over the clean training set, per channel.
    clean = data.x_train.numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    noise = out.x_train.transpose(0, 1).reshape(3, -1).double()
    count = noise.shape[1]
    for c in range(3):
        assert abs(noise[c].mean().item() - clean[c].mean()) < 5 * clean[c].std() / math.sqrt(count)
        assert abs(noise[c].std().item() / clean[c].std() - 1) < 5 / math.sqrt(2 * count)
    # Gaussian, not the clean data rearranged: an unbounded tail and no shared values.
    assert (out.x_train[:, 0] > means[0] + stds[0] * math.sqrt(3)).any()
    assert torch.equal(out.x_test, data.x_test)


@pytest.mark.parametrize("name", ["shuffled_pixels", "random_pixels", "gaussian"])
@pytest.mark.parametrize("prob", [0.3, 0.8])
def test_pixel_corruptions_change_a_prob_fraction_of_images(name, prob):
    data = bundle()
    out = corrupt(data, cfg(name, prob=prob))
    n = len(data.x_train)
    changed = (out.x_train != data.x_train).flatten(1).any(dim=1)
    assert torch.equal(changed, out.corrupted)
    assert within(changed.float().mean().item(), prob, n)
    assert torch.equal(out.y_train, data.y_train)


# ---- where it applies, determinism ------------------------------------------------------------
@pytest.mark.parametrize("name", ["labels", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"])
def test_apply_to_train_leaves_the_test_set_alone_and_both_changes_it(name):
    data = bundle()
    train_only = corrupt(data, cfg(name, apply_to="train"))
    both = corrupt(data, cfg(name, apply_to="both"))
    assert torch.equal(train_only.x_test, data.x_test) and torch.equal(train_only.y_test, data.y_test)
    assert not (torch.equal(both.x_test, data.x_test) and torch.equal(both.y_test, data.y_test))
    # The training set is corrupted the same way in both cases.
    assert torch.equal(train_only.x_train, both.x_train) and torch.equal(train_only.y_train, both.y_train)


@pytest.mark.parametrize("name", ["labels", "random_pixels", "gaussian", "shuffled_pixels"])
def test_same_seed_gives_bit_identical_data_whatever_the_training_seed(name):
    data = bundle(n_train=500, n_test=100)
    torch.manual_seed(1)
    first = corrupt(data, cfg(name, seed=7, apply_to="both"))
    torch.manual_seed(2)                               # a different training seed: no effect
    torch.rand(10)
    second = corrupt(data, cfg(name, seed=7, apply_to="both"))
    other = corrupt(data, cfg(name, seed=8, apply_to="both"))
    for key in ("x_train", "y_train", "x_test", "y_test", "corrupted"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key
    assert not (torch.equal(first.x_train, other.x_train) and torch.equal(first.y_train, other.y_train))


def test_the_input_bundle_is_not_modified():
    data = bundle(n_train=300, n_test=50)
    copy = {k: getattr(data, k).clone() for k in ("x_train", "y_train", "x_test", "y_test")}
    for name in ("labels", "random_pixels", "shuffled_pixels", "gaussian"):
        corrupt(data, cfg(name, apply_to="both"))
    assert all(torch.equal(getattr(data, k), v) for k, v in copy.items())


def test_lower_prob_corrupts_a_subset_of_what_higher_prob_corrupts():
    data = bundle()
    low, high = corrupt(data, cfg("labels", prob=0.2)), corrupt(data, cfg("labels", prob=0.5))
    assert not (low.corrupted & ~high.corrupted).any()
    assert torch.equal(low.y_train[low.corrupted], high.y_train[low.corrupted])


# ---- configs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_option_composes_validates_and_loads(name):
    config = compose_config([f"corruption={name}", "dataset.train_size=200"])
    validate(config)
    assert config.corruption.name == name
    data = load_data(config.dataset, config.corruption, "cpu")
    assert data.corrupted.dtype == torch.bool and len(data.corrupted) == 200
    assert data.corrupted.any() == (name != "none")


@pytest.mark.parametrize("overrides, key", [
    (["corruption=labels", "corruption.prob=1.5"], "corruption.prob"),
    (["corruption=labels", "corruption.prob=-0.1"], "corruption.prob"),
    (["corruption=gaussian", "corruption.prob=1.5"], "corruption.prob"),
    (["corruption=random_labels", "corruption.prob=0.5"], "corruption.prob"),
    (["corruption=labels", "corruption.apply_to=sometimes"], "corruption.apply_to"),
    (["corruption=random_pixels", "corruption.seed=-1"], "corruption.seed"),
])
def test_bad_corruption_settings_are_rejected_with_one_line(overrides, key):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(overrides))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"invalid config: {key}=")


# ---- the memorization result ------------------------------------------------------------------
def _fit(data: DataBundle, max_steps: int = 1000) -> tuple[float, float]:
    """Full-batch Adam on an MLP until the training set is fitted; (train acc, test acc)."""
    torch.manual_seed(0)
    model = FullyConnected(data.input_shape, data.num_outputs, hidden_units=512)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(max_steps):
        outputs = model(data.x_train)
        train_acc = (outputs.argmax(1) == data.y_train).float().mean().item()
        if train_acc == 1.0:
            break
        loss = torch.nn.functional.cross_entropy(outputs, data.y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test_acc = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    return train_acc, test_acc


def test_an_mlp_memorizes_random_labels_and_generalizes_at_chance():
    config = compose_config(["dataset=digits", "dataset.train_size=300", "corruption=random_labels"])
    data = load_data(config.dataset, config.corruption, "cpu")
    train_acc, test_acc = _fit(data)
    assert train_acc == 1.0                         # every random label fitted
    # Chance is 1/10; over 450 test digits the standard error is 1.4 points.
    assert abs(test_acc - 0.1) < 0.06, test_acc
    # The same network on the true labels does generalize.
    clean = compose_config(["dataset=digits", "dataset.train_size=300", "corruption=none"])
    _, clean_test_acc = _fit(load_data(clean.dataset, clean.corruption, "cpu"))
    assert clean_test_acc > 0.85
