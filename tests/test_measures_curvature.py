"""Curvature checked against independent implementations on the same network and batch: the exact
Hessian (torch.func.hessian) eigendecomposed, on networks small enough to form it (an MLP, a conv net
with BatchNorm and max-pooling, a smooth net); hessian-eigenthings' Lanczos and Hutch++ on a network
too large to form it (the `reference` extra); and stochastic Lanczos quadrature's moments against
the exact spectrum's."""
import pytest
import torch
import torch.nn as nn

from gen.measures.hessian import (hessian_vector_product, lanczos_tridiagonal, smoothed_density,
                                  spectral_density_nodes)
from gen.training.objective import Objective
from tests.helpers import measure_context, measure_value
from tests.test_measures_flatness import exact_hessian


def conv_bn_net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(40, 1, 4, 4)
    model.train()
    with torch.no_grad():
        model(x)  # BatchNorm statistics that are not the identity
    model.eval()
    return model, x, torch.arange(40) % 3


def mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    return model, torch.randn(50, 5), torch.arange(50) % 4


def smooth_net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 3))
    return model, torch.randn(30, 4), torch.arange(30) % 3


NETWORKS = {"mlp": mlp, "conv_bn": conv_bn_net, "tanh": smooth_net}


def twin_hessian(ctx) -> torch.Tensor:
    """The exact Hessian of the mean loss over the subsample w.r.t. the folded twin's parameters."""
    x, y = ctx.sample
    h = exact_hessian(ctx.twin, x, y)[0].double()
    return (h + h.T) / 2  # float32 second derivatives are symmetric only to rounding


@pytest.mark.parametrize("network", list(NETWORKS))
def test_the_top_eigenvalue_is_the_exact_hessians(network):
    model, x, y = NETWORKS[network]()
    ctx = measure_context(model, x, y, power_tolerance=1e-8)
    eigenvalues = torch.linalg.eigvalsh(twin_hessian(ctx))
    largest = eigenvalues[eigenvalues.abs().argmax()].item()
    assert measure_value(ctx, "hessian_top_eig") == pytest.approx(largest, rel=1e-4)


@pytest.mark.parametrize("network", ["mlp", "conv_bn"])
def test_the_trace_of_a_piecewise_linear_net_is_the_exact_hessians(network):
    model, x, y = NETWORKS[network]()
    ctx = measure_context(model, x, y)
    assert measure_value(ctx, "hessian_trace") == pytest.approx(twin_hessian(ctx).trace().item(), rel=1e-4)


def off_diagonal_error(a: torch.Tensor, probes: int) -> float:
    """The standard error of the mean of vᵀAv over ``probes`` Rademacher v: Var(vᵀAv) = 2 Σ_{i≠j} A_ij²."""
    return (2 * (a.pow(2).sum() - a.diagonal().pow(2).sum()) / probes).sqrt().item()


def test_hutchinsons_trace_of_a_smooth_net_is_within_its_own_error_of_the_exact_one():
    model, x, y = smooth_net()
    probes = 60
    ctx = measure_context(model, x, y, hessian_probes=probes)
    h = twin_hessian(ctx)
    assert abs(measure_value(ctx, "hessian_trace") - h.trace().item()) < 4 * off_diagonal_error(h, probes)


# ---- stochastic Lanczos quadrature -----------------------------------------------------------------
@pytest.mark.parametrize("network", list(NETWORKS))
def test_each_probes_quadrature_reproduces_the_exact_moments_along_that_probe(network):
    """Σ_k w_k θ_k^p = qᵀHᵖq for p < 2·steps (Gauss quadrature), q the normalised probe."""
    model, x, y = NETWORKS[network]()
    ctx = measure_context(model, x, y)
    h = twin_hessian(ctx)
    generator = ctx.generator("probe")
    q = (torch.randint(0, 2, (h.shape[0],), generator=generator).double() * 2 - 1)
    q /= q.norm()
    theta, weights = lanczos_tridiagonal(lambda v: h @ v, q, steps=6)
    assert weights.sum().item() == pytest.approx(1.0, rel=1e-12)
    power = q.clone()
    for p in range(1, 12):
        power = h @ power
        assert (weights * theta ** p).sum().item() == pytest.approx(torch.dot(q, power).item(), rel=1e-8, abs=1e-12)


def test_the_density_of_a_network_matches_its_exact_spectrum():
    model, x, y = smooth_net()
    ctx = measure_context(model, x, y)
    h = twin_hessian(ctx)
    n = h.shape[0]
    exact = torch.linalg.eigvalsh(h)
    # With as many steps as parameters, the probe's nodes are exact eigenvalues.
    (theta, weights), = spectral_density_nodes(ctx, runs=1, steps=n)
    heavy = theta[weights > 1e-6]
    assert (heavy[:, None] - exact[None, :]).abs().min(dim=1).values.max() < 1e-4 * exact.abs().max()
    # Few steps, several probes: the quadrature's moments estimate tr(Hᵖ)/n within the probes' error.
    runs = 8
    nodes = spectral_density_nodes(ctx, runs=runs, steps=6)
    power = torch.eye(n, dtype=torch.float64)
    for p in (1, 2, 3):
        power = power @ h
        estimate = sum((w * t ** p).sum().item() for t, w in nodes) / runs
        assert abs(estimate - power.trace().item() / n) < 4 * off_diagonal_error(power, runs) / n + 1e-6, p


def test_the_smoothed_density_integrates_to_one_and_peaks_at_the_nodes():
    nodes = [(torch.tensor([0.0, 2.0], dtype=torch.float64), torch.tensor([0.25, 0.75], dtype=torch.float64))]
    grid = torch.linspace(-3, 5, 8001, dtype=torch.float64)
    density = smoothed_density(nodes, grid, sigma=0.1)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, rel=1e-6)
    assert grid[density.argmax()].item() == pytest.approx(2.0, abs=1e-3)
    assert density[grid.sub(0).abs().argmin()].item() == pytest.approx(0.25 / (0.1 * (2 * torch.pi) ** 0.5), rel=1e-3)


# ---- hessian-eigenthings on a network too large to form its Hessian --------------------------------
def test_the_top_eigenvalue_and_trace_agree_with_hessian_eigenthings():
    eigenthings = pytest.importorskip("hessian_eigenthings", reason="hessian-eigenthings is in the `reference` "
                                                                     "extra: pip install -e '.[reference]'")
    torch.manual_seed(11)
    model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 10))  # 2.9k
    x, y = torch.randn(100, 20), torch.arange(100) % 10
    ctx = measure_context(model, x, y, power_tolerance=1e-8)
    twin = ctx.twin
    loss = eigenthings.supervised_loss(lambda out, target: Objective("cross_entropy").loss(out.float(), target))
    operator = eigenthings.HessianOperator(twin, [ctx.sample], loss)
    top = eigenthings.lanczos(operator, k=1, max_iter=50, reorthogonalize=True, seed=0).eigenvalues[0].item()
    assert measure_value(ctx, "hessian_top_eig") == pytest.approx(top, rel=1e-4)
    trace = eigenthings.trace(operator, num_matvecs=60, seed=0)
    assert abs(measure_value(ctx, "hessian_trace") - trace.estimate) < 4 * trace.stderr + 1e-3 * abs(trace.estimate)
    # gen's Hessian-vector product is the same operator as theirs
    v = torch.randn(operator.size, generator=torch.Generator().manual_seed(1))
    params = [p for _, p in ctx.parameters()]
    split, start = [], 0
    for p in params:
        split.append(v[start:start + p.numel()].reshape(p.shape))
        start += p.numel()
    ours = torch.cat([t.flatten() for t in hessian_vector_product(ctx, tuple(split))])
    assert torch.allclose(ours, operator.matvec(v), rtol=1e-4, atol=1e-6)
