"""The certified PAC-Bayes bound (gen/measures/certified_bound.py) against closed forms and brute force, and the
binary label mapping (dataset.binary) it is reproduced on."""
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gen.config import ConfigError, validate
from gen.data import load_data
from gen.measures import certified_bound as cb
from gen.sweeps.run_id import IDENTITY_CHANGES, run_id
from tests.helpers import CONF, compose_config, measure_context, measure_value, relu_mlp


# ---- kl and its inverse ---------------------------------------------------------------------------------
def brute_force_kl_inverse(q: float, c: float, points: int = 2_000_001) -> float:
    """The largest p of a fine grid on [q, 1] with kl(q‖p) ≤ c (vectorised, float64)."""
    p = np.linspace(q, 1.0, points)[:-1]   # p = 1 excluded: kl is infinite there unless q = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(q > 0, q * np.log(q / p), 0.0) + np.where(q < 1, (1 - q) * np.log((1 - q) / (1 - p)), 0.0)
    return float(p[kl <= c].max())


@pytest.mark.parametrize("q", [0.0, 0.01, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("c", [1e-3, 0.05, 0.5])
def test_kl_inverse_is_the_brute_force_scan(q, c):
    assert cb.kl_inverse(q, c) == pytest.approx(brute_force_kl_inverse(q, c), abs=2e-6)


@pytest.mark.parametrize("c", [1e-4, 0.01, 0.3, 2.0])
def test_kl_inverse_at_zero_error_is_one_minus_exp_minus_c(c):
    """kl(0‖p) = −log(1 − p), so kl⁻¹(0, c) = 1 − e^{−c}."""
    assert cb.kl_inverse(0.0, c) == pytest.approx(1 - math.exp(-c), rel=1e-12)


def test_kl_inverse_errs_upwards_only_and_by_little():
    for q, c in [(0.03, 0.004), (0.4, 0.2), (0.001, 1e-5)]:
        p = cb.kl_inverse(q, c)
        assert cb.kl_bernoulli(q, p) >= c                   # never below the exact inverse
        assert cb.kl_bernoulli(q, p - 1e-12) <= c * (1 + 1e-9)


def test_kl_inverse_edges():
    # kl(q‖p) ≈ (p − q)²/2q(1 − q) near q: float64's ~1e-17 rounding of kl moves the inverse by ~1e-9, upwards
    assert 0.3 <= cb.kl_inverse(0.3, 0.0) < 0.3 + 1e-8
    assert cb.kl_inverse(0.3, 100.0) == 1.0                  # kl(0.3‖1) = ∞, yet every p < 1 qualifies
    assert cb.kl_inverse(1.0, 0.1) == 1.0
    with pytest.raises(ValueError):
        cb.kl_inverse(1.5, 0.1)


def test_kl_bernoulli_by_hand():
    assert cb.kl_bernoulli(0.5, 0.25) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75))
    assert cb.kl_bernoulli(0.0, 0.5) == pytest.approx(math.log(2))
    assert cb.kl_bernoulli(0.2, 0.0) == math.inf


# ---- the Gaussian KL -----------------------------------------------------------------------------------------
def test_gaussian_kl_by_hand():
    """Two coordinates, Q = N((1, 0), diag(0.5, 2)), P = N(0, I):
    ½[(0.5 + 1 − 1 − log 0.5) + (2 + 0 − 1 − log 2)] = ½[1.5] = 0.75."""
    kl = cb.gaussian_kl(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64),
                        torch.zeros(2, dtype=torch.float64), 1.0)
    assert kl.item() == pytest.approx(0.75, rel=1e-12)


def test_gaussian_kl_is_torch_distributions_kl():
    g = torch.Generator().manual_seed(0)
    mq, mp = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    vq = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    prior_variance = 0.37
    ours = cb.gaussian_kl(mq, vq, mp, prior_variance).item()
    theirs = torch.distributions.kl_divergence(torch.distributions.Normal(mq, vq.sqrt()),
                                               torch.distributions.Normal(mp, math.sqrt(prior_variance))).sum().item()
    assert ours == pytest.approx(theirs, rel=1e-12)


# ---- the prior grid and its union bound --------------------------------------------------------------------------
def test_prior_grid_round_trip_and_penalty():
    b, c = 100, 0.1
    for j in (1, 7, 600):
        assert cb.prior_index(cb.prior_variance(j, b, c), b, c) == pytest.approx(j, rel=1e-12)
        assert cb.union_penalty(j) == pytest.approx(2 * math.log(j))
    assert cb.prior_variance(600, b, c) == pytest.approx(0.1 * math.exp(-6))
    with pytest.raises(ValueError):
        cb.union_penalty(0.5)


def test_the_union_bound_spends_exactly_delta():
    """δ_j = δ·exp(−penalty(j))·6/π² summed over j = 1, 2, … is δ (Σ 1/j² = π²/6)."""
    delta, total = 0.025, 0.0
    for j in range(1, 200_001):
        total += math.exp(-(cb.union_penalty(j) + math.log(math.pi ** 2 / (6 * delta))))
    assert total == pytest.approx(delta, rel=1e-5)


def test_kl_budget_by_hand():
    kl, m, delta, j = 5000.0, 55000, 0.025, 391
    expected = (5000 + 2 * math.log(391) + math.log(math.pi ** 2 * 55000 / (6 * 0.025))) / 54999
    assert cb.kl_budget(kl, m, delta, j) == pytest.approx(expected, rel=1e-14)


# ---- the sample-convergence bound ---------------------------------------------------------------------------------
def test_sample_convergence_bound_at_zero_error():
    """kl⁻¹(0, log(2/δ′)/n) = 1 − (δ′/2)^{1/n}."""
    assert cb.sample_convergence_bound(0.0, 150_000, 0.01) == pytest.approx(1 - 0.005 ** (1 / 150_000), rel=1e-9)


def test_sample_convergence_bound_fails_at_most_delta_prime_of_the_time():
    """Draws of a stochastic network with error 0.1: the bound lies below 0.1 in at most δ′ of 20,000 trials."""
    rng = np.random.default_rng(0)
    n, error, delta_prime = 40, 0.1, 0.05
    means = rng.binomial(n, error, size=20_000) / n
    bounds = {mean: cb.sample_convergence_bound(mean, n, delta_prime) for mean in set(means.tolist())}
    failures = np.mean([bounds[mean] < error for mean in means.tolist()])
    assert failures <= delta_prime
    assert cb.sample_convergence_bound(0.1, n, delta_prime) > 0.1


# ---- the measure on a tiny network --------------------------------------------------------------------------------
def tiny_task(seed: int = 0):
    """A trained 2–16–2 ReLU net on 300 separable points, its weights at initialisation, the data."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(300, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model = relu_mlp([2, 16, 2], seed=seed)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model, init, x, y


def certificate(steps: int, **params):
    model, init, x, y = tiny_task()
    ctx = measure_context(model, x, y, init_state=init, certified_steps=steps, certified_mc_draws=200, **params)
    return ctx, cb.certify(ctx)


def test_optimising_the_posterior_lowers_the_bound():
    _, before = certificate(0)
    _, after = certificate(400, certified_lr=0.01)
    assert after.bound < before.bound - 0.05
    assert after.objective_end < after.objective_start


def test_the_bound_is_recomputed_from_its_parts():
    ctx, cert = certificate(100, certified_lr=0.01)
    p = ctx.params
    upper = cb.kl_inverse(cert.train_error, math.log(2 / p.certified_delta_prime) / p.certified_mc_draws)
    assert cert.train_error_bound == pytest.approx(upper, rel=1e-12)
    assert cert.prior_variance == pytest.approx(cb.prior_variance(cert.j, p.certified_prior_b, p.certified_prior_c))
    assert cert.bound == pytest.approx(cb.kl_inverse(upper, cb.kl_budget(cert.kl, 300, p.certified_delta, cert.j)))
    assert cert.m == 300 and 0 <= cert.train_error <= cert.train_error_bound <= cert.bound <= 1
    for name, value in [("certified_bound", cert.bound), ("certified_kl", cert.kl),
                        ("certified_stochastic_train_error", cert.train_error),
                        ("certified_prior_variance", cert.prior_variance)]:
        assert measure_value(ctx, name) == value
    assert any("δ = 0.025" in note and "δ′ = 0.01" in note and "m = 300" in note for note in ctx.notes)


def test_the_kl_is_the_closed_form_of_the_posterior_it_certifies():
    """With no optimisation, Q = N(w, diag w²) and P = N(w⁰, λ_j I): the KL by hand from the weights."""
    model, init, x, y = tiny_task()
    ctx = measure_context(model, x, y, init_state=init, certified_steps=0, certified_mc_draws=5)
    cert = cb.certify(ctx)
    w = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    w0 = torch.cat([init[k].flatten() for k in model.state_dict()]).double()
    lam = cert.prior_variance
    by_hand = 0.5 * float((w ** 2 / lam + (w - w0) ** 2 / lam - 1 - torch.log(w ** 2 / lam)).sum())
    assert cert.kl == pytest.approx(by_hand, rel=1e-7)   # s is stored as a float32 log: exp(log|w|) ≠ |w| at 1e-7


def test_regression_has_no_certified_bound():
    x = torch.randn(20, 3)
    ctx = measure_context(relu_mlp([3, 4, 1]), x, torch.randn(20, 1), init_state=relu_mlp([3, 4, 1]).state_dict())
    from gen.measures.registry import NotApplicable
    with pytest.raises(NotApplicable, match="classification"):
        cb.certify(ctx)


# ---- dataset.binary ----------------------------------------------------------------------------------------------
def load(overrides):
    config = compose_config(overrides)
    validate(config)
    return load_data(config.dataset, config.corruption, "cpu")


def test_ge5_maps_digits_five_to_nine_to_one():
    full, binary = load(["dataset=digits"]), load(["dataset=digits", "dataset.binary=ge5"])
    assert binary.num_classes == 2 and binary.num_outputs == 2
    assert torch.equal(binary.x_train, full.x_train)
    assert torch.equal(binary.y_train, (full.y_train >= 5).long())
    assert torch.equal(binary.y_test, (full.y_test >= 5).long())


def test_random_labels_after_ge5_are_random_binary_labels():
    data = load(["dataset=digits", "dataset.binary=ge5", "corruption=random_labels"])
    assert set(data.y_train.tolist()) == {0, 1}
    clean = load(["dataset=digits", "dataset.binary=ge5"])
    assert 0.4 < (data.y_train != clean.y_train).float().mean() < 0.6   # half change: uniform over two classes


def test_ge5_subset_is_stratified_by_the_binary_label():
    data = load(["dataset=digits", "dataset.binary=ge5", "dataset.train_size=200"])
    full = load(["dataset=digits", "dataset.binary=ge5"])
    assert abs(data.y_train.float().mean() - full.y_train.float().mean()) < 0.01


@pytest.mark.parametrize("overrides, message", [
    (["dataset.binary=ge5", "dataset.classes=[0,5]"], "classes=null"),
    (["dataset=synthetic", "dataset.binary=ge5"], "more than 5 classes"),
    (["dataset.binary=odd"], "one of"),
])
def test_bad_binary_is_one_clear_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        load(overrides)
    assert str(error.value).startswith("invalid config: dataset.binary=") and "\n" not in str(error.value)


def test_binary_at_its_default_leaves_the_run_id_alone():
    config = compose_config([])
    without = OmegaConf.to_container(config)
    del without["dataset"]["binary"]
    assert run_id(config) == run_id(OmegaConf.create(without))
    assert run_id(compose_config(["dataset.binary=ge5"])) != run_id(config)


def test_certified_params_at_their_defaults_leave_the_run_id_alone():
    from gen.sweeps.run_id import legacy_run_id

    defaults = OmegaConf.to_container(OmegaConf.load(CONF / "measure" / "params" / "default.yaml"))
    in_table = {c.path.removeprefix("measure.params."): c.before for c in IDENTITY_CHANGES if "certified_" in c.path}
    assert in_table == {k: v for k, v in defaults.items() if k.startswith("certified_")}
    for convention in ("gen", "jiang2020"):
        config = compose_config([f"measure.params.convention={convention}"])
        without = OmegaConf.to_container(config)
        for key in in_table:
            del without["measure"]["params"][key]
        assert legacy_run_id(config) == legacy_run_id(OmegaConf.create(without))  # gen.migrate's ids of 0.5 runs
    assert legacy_run_id(compose_config(["measure.params.certified_steps=7"])) != legacy_run_id(compose_config([]))
    assert run_id(compose_config(["measure.params.certified_steps=7"])) == run_id(compose_config([]))  # 0.6: not in the id


def test_the_written_out_rmsprop_is_torch_optims():
    g = torch.Generator().manual_seed(1)
    ours = [torch.randn(5, 3, generator=g), torch.randn(4, generator=g)]
    theirs = [t.clone().requires_grad_(True) for t in ours]
    averages = [torch.zeros_like(t) for t in ours]
    optimiser = torch.optim.RMSprop(theirs, lr=0.003)
    for _ in range(20):
        gradients = [torch.randn(t.shape, generator=g) for t in ours]
        for t, gradient in zip(theirs, gradients):
            t.grad = gradient.clone()
        optimiser.step()
        cb.rmsprop_step(ours, gradients, averages, 0.003)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b.detach())   # the same operations in the same order: bit for bit
