"""The PGDL winners' measures: the Davies–Bouldin index against scikit-learn's davies_bouldin_score on
the same features, label-wise mixup and the normalised margins on hand-worked networks."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import stats
from sklearn.metrics import davies_bouldin_score

from gen.measures import compute_measures, pgdl
from tests.helpers import measure_context, measure_value

PGDL = ["davies_bouldin", "mixup_accuracy", "db_mixup", "mixup_margin", "augment_margin"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_davies_bouldin_index_equals_scikit_learns(seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (200,), generator=generator)
    features = torch.randn(200, 7, generator=generator) + 2 * torch.nn.functional.one_hot(labels, 7)[:, :7].float()
    expected = davies_bouldin_score(features.double().numpy(), labels.numpy())  # in float64, as gen
    assert pgdl.davies_bouldin_index(features, labels) == pytest.approx(expected, rel=1e-10)


def test_the_measure_reads_the_penultimate_features_and_agrees_with_scikit_learn():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 6), nn.ReLU())
    model = nn.Sequential(body, nn.Linear(6, 3))
    x = torch.randn(90, 1, 5, 5)
    y = torch.arange(90) % 3
    with torch.no_grad():
        features = body(x)
    expected = davies_bouldin_score(features.numpy(), y.numpy())
    assert measure_value(measure_context(model, x, y), "davies_bouldin") == pytest.approx(expected, rel=1e-6)


def test_labelwise_partners_are_a_permutation_within_each_label():
    labels = torch.tensor([2, 0, 1, 0, 2, 2, 1, 0, 0, 2])
    partner = pgdl.labelwise_partners(labels, torch.Generator().manual_seed(5))
    assert sorted(partner.tolist()) == list(range(len(labels)))
    assert torch.equal(labels[partner], labels)
    draws = {tuple(pgdl.labelwise_partners(labels, torch.Generator().manual_seed(s)).tolist()) for s in range(20)}
    assert len(draws) > 1  # the pairing is drawn, not fixed


def identity_net() -> nn.Module:
    """logits = x: two Linear layers fixed to the identity (h, the first layer's output, is x)."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        for layer in model:
            layer.weight.copy_(torch.eye(2))
    return model


def test_mixup_accuracy_and_db_mixup_on_a_hand_worked_network():
    # Class 0: a = (4, 0) is right, b = (−2, 0) is wrong (logit 1 wins); their mean (1, 0) is right.
    # Class 1: c = (0, 3) and d = (0, 1) are right, and so is any mean of them.
    x = torch.tensor([[4.0, 0.0], [-2.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    ctx = measure_context(identity_net(), x, y)
    partner = pgdl.labelwise_partners(y, ctx.generator("labelwise_mixup"))
    swapped = partner[0].item() == 1
    expected = 1.0 if swapped else 3 / 4  # paired with each other, a and b both give (1, 0)
    assert measure_value(ctx, "mixup_accuracy") == expected
    # Davies–Bouldin by hand: centroids (1, 0), (0, 2); spreads 3 and 1; distance √5.
    assert measure_value(ctx, "davies_bouldin") == pytest.approx(4 / 5 ** 0.5)
    assert measure_value(ctx, "db_mixup") == pytest.approx(4 / 5 ** 0.5 * (1 - expected))


def hand_margin_complexity(h: np.ndarray, y: np.ndarray) -> float:
    """The winners' recipe for logits = h: d = (h_y − h_other)/√2 (∇_h of the margin is e_y − e_other),
    over √(trimmed mean variance of h), summarised by the fences and quartiles."""
    d = (h[np.arange(len(y)), y] - h[np.arange(len(y)), 1 - y]) / np.sqrt(2)
    d = d / np.sqrt(stats.trim_mean(h.var(axis=0), 0.05))
    q1, q2, q3 = np.percentile(d, [25, 50, 75])
    lower = d[d < q1 - 1.5 * (q3 - q1)]
    upper = d[d > q3 + 1.5 * (q3 - q1)]
    fences = [lower.max() if lower.size else d.min(), upper.min() if upper.size else d.max()]
    return -np.mean([fences[0], q1, q2, q3, fences[1]])


def test_the_mixup_margin_on_a_hand_worked_network_with_an_outlier_and_a_misclassified_sample():
    x = torch.tensor([[4.0, 0.0], [-2.0, 0.0], [3.0, 1.0], [40.0, 0.0],
                      [0.0, 3.0], [0.0, 1.0], [1.0, 2.0], [0.5, 2.5]])
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    ctx = measure_context(identity_net(), x, y)
    mixed, _ = pgdl.mixed_sample(ctx)
    expected = hand_margin_complexity(mixed.double().numpy(), y.numpy())
    assert measure_value(ctx, "mixup_margin") == pytest.approx(expected, rel=1e-6)


def test_the_augment_margin_of_constant_images_is_their_plain_margin():
    """A constant image is its own flip and zoom: the augmented margin is the clean one, by hand."""
    levels = torch.tensor([3.0, -1.0, 0.5, 2.0, -4.0, 1.5, 0.2, -0.7])
    x = levels.view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    y = torch.tensor([0, 1, 0, 0, 1, 1, 0, 1])
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.full((16,), 1 / 16), torch.full((16,), -1 / 16)]))
        model[2].weight.copy_(torch.eye(2))
    ctx = measure_context(model, x, y)
    augmented, _ = pgdl.augmented_sample(ctx)
    assert torch.allclose(augmented, x, atol=1e-6)
    h = torch.stack([levels, -levels], dim=1).double().numpy()
    assert measure_value(ctx, "augment_margin") == pytest.approx(hand_margin_complexity(h, y.numpy()), rel=1e-5)


def test_augmentation_flips_and_zooms_about_half_the_images():
    images = torch.arange(64.0).view(1, 1, 8, 8).expand(400, 1, 8, 8).clone()
    out = pgdl.augment(images, torch.Generator().manual_seed(0))
    flipped = (out - images.flip(-1)).abs().flatten(1).max(1).values < 1e-4
    untouched = (out - images).abs().flatten(1).max(1).values < 1e-4
    zoomed = ~flipped & ~untouched
    assert 0.15 < flipped.float().mean() < 0.35 and 0.15 < untouched.float().mean() < 0.35  # ¼ each
    assert 0.4 < zoomed.float().mean() < 0.6                                                # ½
    centre = out[zoomed][:, 0, 3:5, 3:5].mean((1, 2))  # a central zoom keeps the centre's mean
    assert torch.allclose(centre, images[0, 0, 3:5, 3:5].mean().expand_as(centre), atol=0.6)


def test_regression_has_no_pgdl_measures_and_says_why():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    ctx = measure_context(model, x, y)
    results = compute_measures({"names": PGDL}, model, None, ctx.data, None)
    assert all(results.values[name] is None for name in PGDL)
    assert all(any(note.startswith(f"{name}:") and "classification" in note for note in results.notes) for name in PGDL)
