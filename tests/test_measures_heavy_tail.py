"""Heavy-tailed self-regularization against WeightWatcher 0.7.7's analyze() on the same weights (gen's
fc, an MLP, a conv net), and the power-law fit against a plain loop over Clauset et al.'s formulas and
against samples of a known power law.

Tolerance: every value agrees to 1e-9 relative (measured here: 2e-14 at most).  Both take the same
float64 SVD of the same float32 weights, run the same fits (mp_softrank: the same residual minimised by
scipy's brute + Nelder–Mead), so only rounding differs; 1e-9 leaves room for another LAPACK or for
scikit-learn's KD-tree density estimate (WeightWatcher's) against gen's direct sum moving the
Nelder–Mead polish.
"""
import contextlib
import io
import logging

import numpy as np
import pytest
import torch
import torch.nn as nn

from gen.measures import compute_measures, heavy_tail
from gen.models.fc import FullyConnected
from tests.helpers import measure_context, measure_value, relu_mlp

TOLERANCE = 1e-9
METRICS = ["alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "log_alpha_norm", "stable_rank",
           "mp_softrank"]


def heavy_tailed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Student-t (3 degrees of freedom) weights: ESDs with power-law tails, like trained layers'."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            normal = torch.randn(p.shape, generator=generator)
            chi2 = torch.randn((3, *p.shape), generator=generator).pow(2).sum(0)
            p.copy_(normal / (chi2 / 3).sqrt() / p.shape[-1] ** 0.5)
    return model


def conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 24, 3, padding=1), nn.ReLU(), nn.Conv2d(24, 40, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(160, 30), nn.ReLU(), nn.Linear(30, 10))


NETWORKS = {"fc": lambda: FullyConnected(input_shape=(1, 28, 28), num_outputs=10, hidden_units=96),
            "mlp": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 120), nn.ReLU(), nn.Linear(120, 60), nn.ReLU(),
                                         nn.Linear(60, 10)),
            "conv": conv_net}


def context(model):
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    return measure_context(model, x, torch.tensor([0, 1, 2, 0, 1, 2]))


def weightwatcher_details(model):
    ww = pytest.importorskip("weightwatcher", reason="WeightWatcher is in the `reference` extra: "
                                                     "pip install -e '.[reference]'")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):  # its small-sample fit prints
        return ww.WeightWatcher(model=model).analyze(mp_fit=True)


@pytest.mark.parametrize("network", list(NETWORKS))
def test_every_layer_agrees_with_weightwatcher_analyze_on_the_same_weights(network):
    model = heavy_tailed(NETWORKS[network]())
    details = weightwatcher_details(model)
    spectra = heavy_tail.spectra(context(model))
    assert len(details) == len(spectra)
    fitted = 0
    for (_, row), spectrum in zip(details.iterrows(), spectra):
        assert row["num_evals"] == len(spectrum.eigenvalues)
        ours = spectrum.metrics()
        for metric in ("log_norm", "log_spectral_norm", "stable_rank"):
            assert ours[metric] == pytest.approx(row[metric], rel=TOLERANCE), (spectrum.name, metric)
        if spectrum.fit is None:  # WeightWatcher fits it with its small-sample variant; gen leaves it out
            assert (spectrum.eigenvalues > heavy_tail.EIGENVALUE_FLOOR).sum() < heavy_tail.MIN_FIT_EIGENVALUES
            continue
        fitted += 1
        assert spectrum.fit.alpha == pytest.approx(row["alpha"], rel=TOLERANCE)
        assert spectrum.fit.x_min == pytest.approx(row["xmin"], rel=TOLERANCE)
        assert spectrum.fit.ks_distance == pytest.approx(row["D"], rel=TOLERANCE)
        assert spectrum.fit.tail_size == row["num_pl_spikes"]
        for metric in ("alpha_weighted", "log_alpha_norm"):
            assert ours[metric] == pytest.approx(row[metric], rel=TOLERANCE), (spectrum.name, metric)
        assert ours["mp_softrank"] == pytest.approx(row["mp_softrank"], rel=TOLERANCE), spectrum.name
    assert fitted >= 1


@pytest.mark.parametrize("network", list(NETWORKS))
def test_the_network_value_is_the_mean_over_the_layers_weightwatcher_fits_too(network):
    model = heavy_tailed(NETWORKS[network](), seed=1)
    details = weightwatcher_details(model)
    ctx = context(model)
    fitted = [s.fit is not None for s in heavy_tail.spectra(ctx)]
    for metric in METRICS:
        column = details[metric].to_numpy()
        expected = column.mean() if metric in ("log_norm", "log_spectral_norm", "stable_rank") \
            else column[fitted].mean()
        assert measure_value(ctx, metric) == pytest.approx(expected, rel=TOLERANCE), metric


def clauset_loop(x: np.ndarray) -> tuple[float, float, float, int]:
    """Clauset et al.'s fit written out one candidate x_min at a time."""
    x = np.sort(x)
    best = None
    for i in range(len(x) - 1):
        tail = x[i:]
        n = len(tail)
        alpha = 1 + n / np.sum(np.log(tail / x[i]))
        if alpha <= 1:
            continue
        fitted = 1 - (tail / x[i]) ** (1 - alpha)
        empirical = np.arange(n) / n
        distance = np.max(np.abs(fitted - empirical))
        if best is None or distance < best[2]:
            best = (alpha, x[i], distance, n)
    return best


def test_the_vectorised_fit_equals_the_loop_in_every_chunk_size(monkeypatch):
    rng = np.random.default_rng(0)
    x = np.sort(np.concatenate([rng.gamma(2.0, 1.0, 300), rng.pareto(1.5, 40) + 5]))
    expected = clauset_loop(x)
    for chunk in (2 ** 22, 1000, 7):
        monkeypatch.setattr(heavy_tail, "_KS_CHUNK", chunk)
        fit = heavy_tail.fit_power_law(x)
        assert (fit.alpha, fit.x_min, fit.ks_distance, fit.tail_size) == pytest.approx(expected, rel=1e-12)


def test_the_fit_recovers_the_exponent_of_a_pure_power_law():
    rng = np.random.default_rng(1)
    alpha, x_min = 2.5, 0.3
    samples = x_min * (1 - rng.random(20000)) ** (-1 / (alpha - 1))  # inverse CDF of p(x) ∝ x^(−α), x ≥ x_min
    fit = heavy_tail.fit_power_law(np.sort(samples))
    assert fit.alpha == pytest.approx(alpha, abs=0.05)  # the MLE's standard error is (α−1)/√n ≈ 0.01
    assert fit.ks_distance < 0.02


def test_a_conv_kernel_is_its_taps_pooled_and_halved():
    conv = nn.Conv2d(5, 7, 3)
    layer = heavy_tail.WeightLayer("conv", conv, (8, 8))
    values, q = heavy_tail.eigenvalues(layer)
    w = conv.weight.detach().double()
    expected = np.sort(np.concatenate([np.linalg.svd(w[:, :, i, j].numpy(), compute_uv=False) ** 2 / 2
                                       for i in range(3) for j in range(3)]))
    assert np.allclose(values, expected, rtol=1e-12) and q == 7 / 5


def test_small_layers_are_left_out_of_the_fits_with_a_note_and_the_fits_are_recorded():
    model = heavy_tailed(relu_mlp([40, 30, 3]))
    x = torch.randn(10, 40, generator=torch.Generator().manual_seed(0))
    ctx = measure_context(model, x, torch.arange(10) % 3)
    results = compute_measures({"names": METRICS}, model, None, ctx.data, None)
    assert all(results.values[m] is not None for m in METRICS)
    assert any("heavy-tail fits leave out 2" in note for note in results.notes)
    layers = results.details["heavy_tail"]
    assert list(layers) == ["0", "2"] and layers["2"]["alpha"] is None
    assert set(layers["0"]) == {"eigenvalues", "alpha", "x_min", "ks_distance", "tail_size"}


def test_a_network_without_a_layer_large_enough_has_no_alpha_and_says_why():
    model = relu_mlp([6, 5, 3])
    ctx = measure_context(model, torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))
    results = compute_measures({"names": ["alpha", "log_norm"]}, model, None, ctx.data, None)
    assert results.values["alpha"] is None and results.values["log_norm"] is not None
    assert any(note.startswith("alpha:") and "eigenvalues" in note for note in results.notes)


def test_an_all_zero_layer_is_left_out_with_a_note():
    model = heavy_tailed(relu_mlp([40, 30, 25, 3]))
    with torch.no_grad():
        model[2].weight.zero_()
    x = torch.randn(10, 40, generator=torch.Generator().manual_seed(0))
    ctx = measure_context(model, x, torch.arange(10) % 3)
    results = compute_measures({"names": ["log_norm", "alpha"]}, model, None, ctx.data, None)
    spectra = heavy_tail.spectra(ctx)
    assert results.values["log_norm"] == pytest.approx(np.mean([spectra[0].metrics()["log_norm"],
                                                                spectra[2].metrics()["log_norm"]]))
    assert results.values["alpha"] == pytest.approx(spectra[0].fit.alpha)
    assert any("all-zero weights" in note for note in results.notes)
