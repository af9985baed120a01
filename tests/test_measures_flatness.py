"""Flatness measures against values computed another way: the exact Hessian of a tiny net
(torch.func.hessian), the AM–GM closed form of minimum sharpness, closed-form expected sharpness of
a linear model, and an independent Monte-Carlo check of the PAC-Bayes σ search."""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, hessian

from gen.measures.hessian import (gauss_newton_diagonal, hessian_vector_product, hutchinson_trace,
                                  lanczos_top_eigenvalue, per_sample_gauss_newton)
from gen.measures.min_sharpness import apply_rescaling, layer_costs, minimise, rescalings
from gen.measures.pacbayes import bisect, mean_drop, random_search, worst_case_search
from gen.measures.registry import NotApplicable
from gen.measures.sharpness import ascend
from gen.training.objective import Objective
from tests.helpers import measure_context, measure_value as value, relu_mlp as relu_net





def data(n: int, dim: int, classes: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=generator), torch.randint(0, classes, (n,), generator=generator)


def exact_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  kind: str = "cross_entropy") -> tuple[torch.Tensor, list[tuple[str, int]]]:
    """The Hessian of the mean loss over (x, y) w.r.t. every parameter, flattened in
    named_parameters order, and (name, size) of each block."""
    named = [(name, p.detach()) for name, p in model.named_parameters()]
    sizes = [(name, p.numel()) for name, p in named]
    flat = torch.cat([p.flatten() for _, p in named])

    def loss(vector):
        params, start = {}, 0
        for (name, p), (_, size) in zip(named, sizes):
            params[name] = vector[start:start + size].reshape(p.shape)
            start += size
        return Objective(kind).loss(functional_call(model, params, (x,)), y)

    return hessian(loss)(flat), sizes


def diagonal_sums(h: torch.Tensor, sizes: list[tuple[str, int]]) -> dict[str, float]:
    """Σ diag(H) over each parameter tensor."""
    sums, start = {}, 0
    for name, size in sizes:
        sums[name] = h.diagonal()[start:start + size].sum().item()
        start += size
    return sums


# ---- minimum sharpness -------------------------------------------------------------------------------
def test_gauss_newton_costs_equal_the_exact_hessian_diagonal_of_a_relu_net():
    # A ReLU net is linear in each single weight (the others fixed), so ∂²z/∂θ_i² = 0 and the
    # Hessian's diagonal is exactly its Gauss–Newton diagonal.
    model = relu_net([3, 4, 3], bias=True)
    x, y = data(12, 3, 3)
    h, sizes = exact_hessian(model, x, y)
    ctx = measure_context(model, x, y)
    costs = layer_costs(ctx)
    for name, want in diagonal_sums(h, sizes).items():
        assert costs[name] == pytest.approx(want, rel=1e-4, abs=1e-7), name


def small_conv_net(outputs: int) -> nn.Sequential:
    torch.manual_seed(8)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 2, 2, stride=2),
                         nn.ReLU(), nn.Flatten(), nn.Linear(2, outputs))


@pytest.mark.parametrize("kind,outputs", [("cross_entropy", 3), ("binary", 1), ("mse", 2)])
def test_both_gauss_newton_paths_equal_the_exact_hessian_diagonal_of_a_relu_conv_net(kind, outputs):
    model = small_conv_net(outputs)
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(10, 2, 4, 4, generator=generator)
    y = (torch.randn(10, outputs, generator=generator) if kind == "mse"
         else torch.randint(0, max(outputs, 2), (10,), generator=generator))
    h, sizes = exact_hessian(model, x, y, kind)
    exact, start = {}, 0
    for name, size in sizes:
        exact[name] = h.diagonal()[start:start + size]
        start += size
    ctx = measure_context(model, x, y, batch_size=4)  # chunks of 4, 4, 2 add up
    assert ctx.objective.kind == kind
    layerwise = gauss_newton_diagonal(ctx)
    per_sample = per_sample_gauss_newton(ctx, list(exact))
    for name, want in exact.items():
        assert torch.allclose(layerwise[name], want.reshape(layerwise[name].shape), rtol=1e-4, atol=1e-7), name
        assert torch.allclose(per_sample[name], want.reshape(per_sample[name].shape), rtol=1e-4, atol=1e-7), name


def test_parameters_outside_linear_and_conv_layers_fall_back_to_per_sample_jacobians():
    torch.manual_seed(10)
    # A BatchNorm after a ReLU before a padded conv stays unfolded: its γ and β are trainable parameters too.
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2), nn.Conv2d(2, 2, 3, padding=1),
                          nn.Flatten(), nn.Linear(8, 3)).eval()
    x, y = torch.randn(9, 1, 4, 4), torch.randint(0, 3, (9,))
    ctx = measure_context(model, x, y)
    assert ctx.folded.unfolded
    mixed = gauss_newton_diagonal(ctx)
    names = [name for name, _ in ctx.parameters()]
    assert any("weight" in n and mixed[n].shape == (2,) for n in names)  # the BatchNorm's γ is among them
    per_sample = per_sample_gauss_newton(ctx, names)
    for name in names:
        assert torch.allclose(mixed[name], per_sample[name], rtol=1e-4, atol=1e-8), name


def test_min_sharpness_of_a_bias_free_relu_net_is_the_am_gm_closed_form():
    model = relu_net([3, 4, 4, 3], bias=False)
    x, y = data(15, 3, 3)
    h, sizes = exact_hessian(model, x, y)
    traces = list(diagonal_sums(h, sizes).values())   # T_l, one per layer
    d = len(traces)
    closed_form = d * math.prod(traces) ** (1 / d)
    ctx = measure_context(model, x, y)
    assert value(ctx, "min_sharpness") == pytest.approx(closed_form, rel=1e-4)
    assert closed_form < sum(traces)  # the rescaling did lower the trace


def test_the_minimising_rescaling_preserves_the_loss_and_reaches_the_minimum():
    model = relu_net([3, 4, 4, 3], bias=True, seed=2)
    x, y = data(15, 3, 3)
    ctx = measure_context(model, x, y)
    plan = rescalings(ctx.folded)
    minimum, a = minimise(layer_costs(ctx), plan, 200)
    rescaled = copy.deepcopy(ctx.twin)
    apply_rescaling(rescaled, plan, a)
    assert a.abs().max() > 0.01  # a real rescaling, not the identity
    with torch.no_grad():
        assert torch.allclose(rescaled(x), ctx.twin(x), atol=1e-5)
        assert F.cross_entropy(rescaled(x), y).item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    # The Hessian trace of the rescaled net (computed from scratch) is the minimum found.
    h, _ = exact_hessian(rescaled, x, y)
    assert h.diagonal().sum().item() == pytest.approx(minimum, rel=1e-4)
    assert minimum <= torch.diagonal(exact_hessian(ctx.twin, x, y)[0]).sum().item() + 1e-9


class Branches(nn.Module):
    """conv → ReLU → [conv, conv] concatenated → ReLU → avg-pool → Linear: concatenation ties the
    scales of the two branches."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.left, self.right = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 3, 3, padding=1)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(torch.cat([self.left(x), self.right(x)], dim=1))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_every_rescaling_of_a_branching_net_leaves_its_outputs_unchanged():
    torch.manual_seed(0)
    model = Branches()
    x = torch.randn(6, 1, 4, 4)
    folded = measure_context(model, x, torch.zeros(6, dtype=torch.long)).folded
    plan = rescalings(folded)
    # Four layers with a free α each; the concatenation and the fixed output scale remove two.
    assert plan.layers == ["stem", "left", "right", "head"] and plan.basis.shape == (4, 2)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        a = plan.basis @ torch.randn(plan.basis.shape[1], generator=generator, dtype=torch.float64)
        rescaled = copy.deepcopy(folded.module)
        apply_rescaling(rescaled, plan, a)
        assert not torch.allclose(rescaled.stem.weight, folded.module.stem.weight)
        with torch.no_grad():
            assert torch.allclose(rescaled(x), folded.module(x), atol=1e-5)


def test_min_sharpness_is_null_for_a_net_that_is_not_positively_homogeneous():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    x, y = data(8, 3, 2)
    with pytest.raises(NotApplicable, match="Sigmoid"):
        value(measure_context(model, x, y), "min_sharpness")


# ---- Hessian trace and top eigenvalue -------------------------------------------------------------------
@pytest.fixture
def tiny_classifier():
    model = relu_net([3, 4, 3], bias=True, seed=3)
    x, y = data(20, 3, 3, seed=4)
    return model, x, y


def test_hessian_vector_products_equal_the_exact_hessian_times_the_vector(tiny_classifier):
    model, x, y = tiny_classifier
    h, _ = exact_hessian(model, x, y)
    ctx = measure_context(model, x, y, batch_size=7)  # batches of 7, 7, 6 add up
    params = [p for _, p in ctx.parameters()]
    v = tuple(torch.randn_like(p) for p in params)
    got = torch.cat([t.flatten() for t in hessian_vector_product(ctx, v)])
    assert torch.allclose(got, h @ torch.cat([t.flatten() for t in v]), atol=1e-5)


def test_hutchinson_trace_approaches_the_exact_trace(tiny_classifier):
    model, x, y = tiny_classifier
    h, _ = exact_hessian(model, x, y)
    probes = 300
    # Rademacher probes: the variance of vᵀHv is 2·Σ_{i≠j} H_ij², so the mean's standard error is known.
    off_diagonal = h.pow(2).sum() - h.diagonal().pow(2).sum()
    standard_error = math.sqrt(2 * off_diagonal.item() / probes)
    estimate = hutchinson_trace(measure_context(model, x, y), probes)
    assert abs(estimate - h.trace().item()) < 4 * standard_error + 1e-6


def test_lanczos_finds_the_exact_top_eigenvalue(tiny_classifier):
    model, x, y = tiny_classifier
    eigenvalues = torch.linalg.eigvalsh(exact_hessian(model, x, y)[0].double())
    largest = eigenvalues[eigenvalues.abs().argmax()].item()
    got = lanczos_top_eigenvalue(measure_context(model, x, y), iterations=3000, tolerance=1e-12)
    assert got == pytest.approx(largest, rel=1e-4)
    # With the default tolerance it stops well before the 31 products that span the whole space.
    assert value(measure_context(model, x, y), "hessian_top_eig") == pytest.approx(largest, rel=1e-3)


def test_hessian_trace_is_exact_on_a_relu_net_and_hutchinson_elsewhere(tiny_classifier):
    model, x, y = tiny_classifier
    exact = exact_hessian(model, x, y)[0].trace().item()
    assert value(measure_context(model, x, y), "hessian_trace") == pytest.approx(exact, rel=1e-4)
    torch.manual_seed(0)
    smooth = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))  # not piecewise linear
    ctx = measure_context(smooth, x, y, hessian_probes=7)
    assert value(ctx, "hessian_trace") == pytest.approx(hutchinson_trace(measure_context(smooth, x, y), 7),
                                                        rel=1e-9)


# ---- S1's sharpness ------------------------------------------------------------------------------------------
def fit_blob_classifier():
    """A small ReLU net trained to fit 60 points of three Gaussian blobs: (model, x, y)."""
    torch.manual_seed(5)
    centres = torch.randn(3, 4) * 3
    y = torch.arange(60) % 3
    x = centres[y] + 0.5 * torch.randn(60, 4)
    model = relu_net([4, 8, 3], bias=True, seed=6)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(200):
        optimiser.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimiser.step()
    assert (model(x).argmax(1) == y).all()
    return model, x, y


@pytest.fixture(scope="module")
def fitted_classifier():
    return fit_blob_classifier()


def test_worst_case_sharpness_is_non_negative_and_grows_with_alpha(fitted_classifier):
    model, x, y = fitted_classifier
    values = [value(measure_context(model, x, y, sharpness_alpha=alpha), "sharpness_worst")
              for alpha in (1e-4, 1e-3, 1e-2, 1e-1)]
    assert all(v >= 0 for v in values)
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_worst_case_sharpness_beats_random_points_of_its_box(fitted_classifier):
    model, x, y = fitted_classifier
    alpha = 1e-2
    ctx = measure_context(model, x, y, sharpness_alpha=alpha)
    base = F.cross_entropy(model(x), y).item()
    generator = torch.Generator().manual_seed(0)
    random_best = 0.0
    for _ in range(20):  # random corners of the box |ν| ≤ α(|w| + 1)
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p in moved.parameters():
                p += alpha * (p.abs() + 1) * (2 * torch.randint(0, 2, p.shape, generator=generator) - 1)
        random_best = max(random_best, (F.cross_entropy(moved(x), y).item() - base) / (1 + base))
    assert value(ctx, "sharpness_worst") >= random_best


def test_the_ascent_reports_the_accuracy_at_its_worst_point_as_a_fresh_forward_pass_gives_it(fitted_classifier):
    model, x, y = fitted_classifier
    ctx = measure_context(model, x, y, batch_size=25)  # several batches: the counts add up
    params = [p for _, p in ctx.parameters()]
    boxes = [torch.full_like(p, 0.3) for p in params]
    ascent = ascend(ctx, params, boxes, [torch.zeros_like(p) for p in params], 5)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for p, d in zip(moved.parameters(), ascent.deltas):
            p += d
    assert ascent.accuracy == pytest.approx((moved(x).argmax(1) == y).float().mean().item(), abs=1e-12)
    assert ascent.accuracy < 1.0  # the box is large enough to cost some accuracy
    assert ascent.lowest_accuracy <= ascent.accuracy


def test_an_ascent_told_where_to_stop_stops_at_the_first_point_below_it(fitted_classifier, monkeypatch):
    import gen.measures.sharpness as sharpness
    model, x, y = fitted_classifier
    ctx = measure_context(model, x, y)
    params = [p for _, p in ctx.parameters()]
    boxes = [torch.full_like(p, 0.3) for p in params]
    accuracies = []
    passes = sharpness.loss_and_gradient

    def counted(*args):
        loss, grads, accuracy = passes(*args)
        accuracies.append(accuracy)
        return loss, grads, accuracy
    monkeypatch.setattr(sharpness, "loss_and_gradient", counted)
    full = ascend(ctx, params, boxes, [torch.zeros_like(p) for p in params], 10)
    seen, accuracies[:] = list(accuracies), []
    assert min(seen) < seen[0] and full.lowest_accuracy <= min(seen)
    threshold = (seen[0] + min(seen)) / 2   # met after the first point
    stopped = ascend(ctx, params, boxes, [torch.zeros_like(p) for p in params], 10, stop_below=threshold)
    first_below = next(i for i, a in enumerate(seen) if a < threshold)
    assert accuracies == seen[:first_below + 1] and len(accuracies) < len(seen)
    assert stopped.lowest_accuracy == seen[first_below]


def test_expected_sharpness_of_a_linear_regression_equals_its_closed_form():
    # f(x) = Wx + b fitted exactly, loss ½‖f(x) − y‖²: E_ν[L(w + ν)] − L(w) = ½σ²·k·(mean‖x‖² + 1)
    # for ν ~ N(0, σ²) on every weight and bias, k outputs.
    torch.manual_seed(7)
    model = nn.Linear(5, 2)
    x = torch.randn(64, 5)
    with torch.no_grad():
        y = model(x)
    sigma = 0.05
    ctx = measure_context(model, x, y, expected_sigma=sigma, expected_samples=400)
    closed_form = 0.5 * sigma ** 2 * 2 * (x.pow(2).sum(1).mean().item() + 1)
    assert value(ctx, "sharpness_expected") == pytest.approx(closed_form, rel=0.05)
    # S1's rule: σ_t = 5e-4·(10·|mean w_t| + 1), one σ per tensor.
    rule = [5e-4 * (10 * p.mean().abs().item() + 1) for p in (model.weight, model.bias)]
    rule_form = 0.5 * 2 * (rule[0] ** 2 * x.pow(2).sum(1).mean().item() + rule[1] ** 2)
    ruled = measure_context(model, x, y, expected_samples=400)
    assert value(ruled, "sharpness_expected") == pytest.approx(rule_form, rel=0.05)


def test_expected_sharpness_grows_with_sigma(fitted_classifier):
    model, x, y = fitted_classifier
    values = [value(measure_context(model, x, y, expected_sigma=s, expected_samples=20), "sharpness_expected")
              for s in (0.01, 0.05, 0.2, 0.5)]
    assert all(a < b for a, b in zip(values, values[1:])), values


# ---- J's PAC-Bayes search ---------------------------------------------------------------------------------
def monte_carlo_accuracy_drop(model, x, y, std_of, draws: int, seed: int) -> float:
    """The mean train-accuracy drop under parameter noise of std ``std_of(w)``, by our own sampling."""
    generator = torch.Generator().manual_seed(seed)
    base = (model(x).argmax(1) == y).float().mean().item()
    accuracies = []
    for _ in range(draws):
        noisy = copy.deepcopy(model)
        with torch.no_grad():
            for p in noisy.parameters():
                p += std_of(p) * torch.randn(p.shape, generator=generator)
            accuracies.append((noisy(x).argmax(1) == y).float().mean().item())
    return base - sum(accuracies) / draws


@pytest.mark.parametrize("magnitude", [False, True], ids=["plain", "magnitude_aware"])
def test_pacbayes_sigma_search_lands_on_the_target_accuracy_drop(fitted_classifier, magnitude):
    model, x, y = fitted_classifier
    ctx = measure_context(model, x, y, flatness_mc_samples=100)  # the search's own estimate: ±0.01
    found = random_search(ctx, magnitude)
    assert found.within_tolerance and abs(found.drop - 0.1) < 0.01
    sigma, eps = found.scale, ctx.params.magnitude_eps
    std_of = (lambda w: torch.sqrt(sigma ** 2 * w ** 2 + eps ** 2)) if magnitude else (lambda w: sigma)
    # Fresh draws, more of them: the drop at the σ found is the target, up to Monte-Carlo error.
    assert monte_carlo_accuracy_drop(model, x, y, std_of, draws=200, seed=11) == pytest.approx(0.1, abs=0.035)
    assert monte_carlo_accuracy_drop(model, x, y, lambda w: std_of(w) * 0.5, 100, 12) < 0.07
    assert monte_carlo_accuracy_drop(model, x, y, lambda w: std_of(w) * 2.0, 100, 13) > 0.13


def test_bisection_stops_once_the_bracket_is_tight_around_a_jump():
    calls = []

    def jump(s, band):  # the drop leaps from 0 to 0.5 at s = 0.0123: the target 0.1 ± 0.01 is never met
        calls.append(s)
        return 0.5 if s > 0.0123 else 0.0
    full = bisect(jump, 0.1, 0.01, 2.0, 15)
    early = bisect(jump, 0.1, 0.01, 2.0, 15, bracket=0.01)
    assert not full.within_tolerance and full.steps == 15 and len(calls) == 15 + early.steps
    assert early.steps < 15
    assert early.scale == pytest.approx(0.0123, rel=0.02) and full.scale == pytest.approx(0.0123, rel=5e-3)


def test_a_monte_carlo_mean_stops_once_the_draws_to_come_cannot_bring_it_into_the_band():
    band = (0.09, 0.11)
    drawn = []

    def draws(values):
        for v in values:
            drawn.append(v)
            yield v
    # base 0.9, accuracies 0.1: after 2 of 10 draws the mean drop is at least 0.9 − (0.2 + 8)/10 = 0.08;
    # after 3 at least 0.9 − (0.3 + 7)/10 = 0.17 > 0.11, whatever the other 7 draws give.
    assert mean_drop(0.9, draws([0.1] * 10), 10, band) == pytest.approx(0.17) and len(drawn) == 3
    drawn.clear()  # draws at the base accuracy: a last draw of 0 would still put the drop in the band
    assert mean_drop(0.95, draws([0.95] * 10), 10, band) == pytest.approx(0.0) and len(drawn) == 10
    drawn.clear()  # inside the band: every draw counts, and the mean is the plain mean
    values = [0.8, 0.82, 0.79, 0.81, 0.8, 0.78, 0.8, 0.8, 0.8, 0.8]
    assert mean_drop(0.9, draws(values), 10, band) == 0.9 - sum(values) / 10 and len(drawn) == 10


def _full_evaluations(monkeypatch):
    """Evaluations that never decide early: every Monte-Carlo draw, every ascent step."""
    import gen.measures.pacbayes as pacbayes
    ascend_fully = pacbayes.ascend

    def every_draw(base, accuracies, draws, band):
        values = list(accuracies)
        return base - sum(values) / draws
    monkeypatch.setattr(pacbayes, "mean_drop", every_draw)
    monkeypatch.setattr(pacbayes, "ascend", lambda *args, stop_below=None: ascend_fully(*args))


def _counting_forward_passes(monkeypatch) -> list:
    import gen.measures.evaluation as evaluation
    import gen.measures.sharpness as sharpness
    import gen.measures.pacbayes as pacbayes
    calls = []
    for module, name in ((pacbayes, "loss_and_accuracy"), (sharpness, "loss_and_accuracy"),
                         (sharpness, "loss_and_gradient")):
        original = getattr(evaluation, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, **k: calls.append(1) or _f(*a, **k))
    return calls


@pytest.mark.parametrize("search", [random_search, worst_case_search], ids=["random", "worst_case"])
@pytest.mark.parametrize("magnitude", [False, True], ids=["plain", "magnitude_aware"])
def test_deciding_early_finds_the_scale_full_evaluations_find_in_fewer_passes(fitted_classifier, monkeypatch,
                                                                               search, magnitude):
    model, x, y = fitted_classifier
    with monkeypatch.context() as patch:
        calls = _counting_forward_passes(patch)
        early = search(measure_context(model, x, y), magnitude)
        early_passes = len(calls)
    with monkeypatch.context() as patch:
        calls = _counting_forward_passes(patch)
        _full_evaluations(patch)
        full = search(measure_context(model, x, y), magnitude)
        full_passes = len(calls)
    assert early.within_tolerance and full.within_tolerance
    assert (early.scale, early.drop, early.steps) == (full.scale, full.drop, full.steps)
    assert early_passes < full_passes, (early_passes, full_passes)


@pytest.mark.parametrize("name", ["pacbayes_mag_flatness", "sharpness_mag_flatness"])
def test_a_magnitude_floor_that_alone_drops_the_accuracy_too_far_gives_null_with_the_reason(fitted_classifier,
                                                                                           name):
    from gen.measures import compute_measures
    model, x, y = fitted_classifier
    data = measure_context(model, x, y).data
    result = compute_measures({"names": [name, "pacbayes_flatness"], "params": {"magnitude_eps": 3.0}},
                              model, None, data, None)  # ε = 3 alone: the blobs are lost
    assert result.values[name] is None, result.values
    assert result.values["pacbayes_flatness"] is not None
    assert any("magnitude_eps = 3 alone drops the train accuracy" in note for note in result.notes), result.notes


def test_pacbayes_bounds_are_jiangs_formulas_at_the_sigma_found(fitted_classifier):
    model, x, y = fitted_classifier
    init = {k: v + 0.05 * torch.randn_like(v) for k, v in model.state_dict().items()}
    ctx = measure_context(model, x, y, init_state=init)
    sigma = random_search(ctx, False).scale
    w = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    w0 = torch.cat([init[k].flatten() for k, _ in model.named_parameters()]).double()
    m = len(x)
    assert value(ctx, "pacbayes_flatness") == pytest.approx(1 / sigma ** 2)
    assert value(ctx, "pacbayes_init") == pytest.approx((w - w0).pow(2).sum().item() / (4 * sigma ** 2)
                                                        + math.log(m / sigma) + 10)
    assert value(ctx, "pacbayes_orig") == pytest.approx(w.pow(2).sum().item() / (4 * sigma ** 2)
                                                        + math.log(m / sigma) + 10)
    mag = random_search(ctx, True).scale
    eps, omega = 1e-3, w.numel()
    mag_init = 0.25 * torch.log((eps ** 2 + (mag ** 2 + 1) * (w - w0).pow(2).sum() / omega)
                                / (eps ** 2 + mag ** 2 * (w - w0).pow(2))).sum().item() + math.log(m / mag) + 10
    assert value(ctx, "pacbayes_mag_init") == pytest.approx(mag_init)
    assert value(ctx, "pacbayes_mag_flatness") == pytest.approx(1 / mag ** 2)


def test_worst_case_search_drops_the_accuracy_more_at_larger_alpha(fitted_classifier):
    model, x, y = fitted_classifier
    ctx = measure_context(model, x, y)
    found = worst_case_search(ctx, False)
    assert found.within_tolerance and abs(found.drop - 0.1) < 0.01
    alpha, m = found.scale, len(x)
    w = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    expected = w.pow(2).sum().item() * math.log(2 * w.numel()) / (4 * alpha ** 2) + math.log(m / alpha) + 10
    assert value(ctx, "sharpness_orig") == pytest.approx(expected)
    assert value(ctx, "sharpness_flatness") == pytest.approx(1 / alpha ** 2)


def test_magnitude_aware_bounds_are_jiangs_formulas_at_the_scale_found(fitted_classifier):
    model, x, y = fitted_classifier
    init = {k: v + 0.05 * torch.randn_like(v) for k, v in model.state_dict().items()}
    ctx = measure_context(model, x, y, init_state=init)
    w = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    w0 = torch.cat([init[k].flatten() for k, _ in model.named_parameters()]).double()
    eps, omega, m = 1e-3, w.numel(), len(x)

    def bound(reference, scale, inflation):
        # Dziugaite et al.'s code: ‖reference‖ in the numerator, (w − w⁰)_i in the denominator.
        numerator = eps ** 2 + (scale ** 2 + inflation) * reference.pow(2).sum() / omega
        denominator = eps ** 2 + scale ** 2 * (w - w0) ** 2
        return 0.25 * (numerator / denominator).log().sum().item() + math.log(m / scale) + 10

    sigma = random_search(ctx, True).scale
    assert value(ctx, "pacbayes_mag_orig") == pytest.approx(bound(w, sigma, 1.0))
    alpha = worst_case_search(ctx, True).scale
    inflation = 4 * math.log(2 * omega)
    assert value(ctx, "sharpness_mag_init") == pytest.approx(bound(w - w0, alpha, inflation))
    assert value(ctx, "sharpness_mag_orig") == pytest.approx(bound(w, alpha, inflation))
    assert value(ctx, "sharpness_mag_flatness") == pytest.approx(1 / alpha ** 2)


def test_a_search_that_ends_outside_the_band_notes_which_side_its_last_drop_bounds(fitted_classifier):
    model, x, y = fitted_classifier
    ctx = measure_context(model, x, y, flatness_search_max=1e-6, flatness_search_depth=3)  # too small a range
    found = random_search(ctx, False)
    assert not found.within_tolerance and found.drop < 0.09
    assert any(f"accuracy drop ≤ {found.drop:.4f}" in note for note in ctx.notes), ctx.notes
