"""The measures gen takes from the peers' code, against values computed another way: S1's code's
ℓ_{p,q} and Schatten products, its L1.5-path norm and its three older bounds (loops over rows and
paths, numpy's SVD); J's eq. 29-30 and its unsquared vector norms (the weights flattened by hand);
both spectral families of a conv net (its explicit matrix and its reshaped kernel)."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from gen.measures.margin import margins
from tests.helpers import measure_context, measure_value as value, relu_mlp as mlp
from tests.test_measures_norms import brute_force_path_sum, conv_norms, self_labelled, weights


@pytest.fixture
def net():
    """A 3-layer net with biases, a perturbed copy as its initialisation and a positive-margin sample."""
    model = mlp([4, 5, 3, 3], bias=True, seed=11)
    generator = torch.Generator().manual_seed(12)
    init = {k: v + 0.1 * torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}
    x, y = self_labelled(model, n=50)
    gamma = np.percentile(margins(model(x).detach(), y).numpy(), 10)
    assert gamma > 0
    return model, init, x, y, gamma


def row_norm(w: torch.Tensor, p: float, q: float) -> float:
    """‖W‖_{p,q} by loops: the ℓ_p norm of each row, then the ℓ_q norm of those (q = ∞: the largest)."""
    rows = [sum(abs(v) ** p for v in row.tolist()) ** (1 / p) for row in w]
    return max(rows) if q == math.inf else sum(r ** q for r in rows) ** (1 / q)


def schatten_by_numpy(w: torch.Tensor, p: float) -> float:
    singular = np.linalg.svd(w.numpy(), compute_uv=False)
    return float((singular ** p).sum() ** (1 / p))


def test_s1_code_products_of_lpq_and_schatten_norms_equal_loops_and_numpy_svd(net):
    model, _, x, y, gamma = net
    ctx = measure_context(model, x, y)
    ws = weights(model)
    products = {
        "l1_inf_product": math.prod(row_norm(w, 1, math.inf) for w in ws),
        "l3_15_product": math.prod(row_norm(w, 3, 1.5) for w in ws),
        "schatten_15_product": math.prod(schatten_by_numpy(w, 1.5) for w in ws),
        "trace_norm_product": math.prod(schatten_by_numpy(w, 1) for w in ws),
    }
    for name, want in products.items():
        assert value(ctx, name) == pytest.approx(want, rel=1e-9), name
        plain = name.replace("_product", "_plain")
        assert value(ctx, plain) == pytest.approx(want / gamma, rel=1e-6), plain


def test_l15_path_norm_equals_the_enumerated_path_sum(net):
    model, _, x, y, gamma = net
    ctx = measure_context(model, x, y)
    total = brute_force_path_sum(weights(model), 1.5)
    assert value(ctx, "l15_path_plain") == pytest.approx(total ** (1 / 1.5) / gamma, rel=1e-6)


def test_the_2002_and_2015_bounds_are_s1_codes_formulas(net):
    model, _, x, y, gamma = net
    ctx = measure_context(model, x, y)
    ws, m = weights(model), len(x)
    alpha = math.sqrt(len(ws) + math.log(4))  # d = 3 layers, input dimension 4
    l1_inf = math.prod(row_norm(w, 1, math.inf) for w in ws)
    fro = math.prod(math.sqrt((w ** 2).sum().item()) for w in ws)
    l3 = math.prod(row_norm(w, 3, 1.5) for w in ws)
    assert value(ctx, "bartlett_mendelson2002") == pytest.approx(alpha * l1_inf / gamma / math.sqrt(m), rel=1e-6)
    assert value(ctx, "neyshabur2015_frobenius") == pytest.approx(alpha * fro / gamma / math.sqrt(m), rel=1e-6)
    assert value(ctx, "neyshabur2015_l3_15") == pytest.approx(alpha * l3 / gamma / m ** (1 / 3), rel=1e-6)


def test_jiang_equations_29_30_and_unsquared_vector_norms(net):
    model, init, x, y, gamma = net
    ctx = measure_context(model, x, y, init_state=init)
    ws = weights(model)
    init_ws = [init[f"{i}.weight"].double().reshape(w.shape) for i, w in zip((0, 2, 4), ws)]
    spec2 = [torch.linalg.matrix_norm(w, ord=2).item() ** 2 for w in ws]
    fro2 = [(w ** 2).sum().item() for w in ws]
    dist2 = [((w - w0) ** 2).sum().item() for w, w0 in zip(ws, init_ws)]
    log_spec_over_margin = math.log(math.prod(spec2) / gamma ** 2)
    assert value(ctx, "log_spec_init_main") == pytest.approx(
        log_spec_over_margin + math.log(sum(d / s for d, s in zip(dist2, spec2))), rel=1e-6)
    assert value(ctx, "log_spec_orig_main") == pytest.approx(
        log_spec_over_margin + math.log(sum(f / s for f, s in zip(fro2, spec2))), rel=1e-6)
    vector = torch.cat([w.flatten() for w in ws])       # J's w_vec: the weights, no biases
    vector0 = torch.cat([w.flatten() for w in init_ws])
    assert value(ctx, "l2_norm") == pytest.approx(torch.linalg.vector_norm(vector).item(), rel=1e-9)
    assert value(ctx, "l2_distance") == pytest.approx(torch.linalg.vector_norm(vector - vector0).item(), rel=1e-9)


@pytest.fixture
def conv_net():
    torch.manual_seed(13)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 2, bias=False))
    init = {k: v + 0.1 * torch.randn_like(v) for k, v in model.state_dict().items()}
    x = torch.randn(12, 2, 5, 5)
    y = model(x).argmax(1).detach()
    return model, init, x, y


def test_both_spectral_families_of_a_conv_net_side_by_side(conv_net):
    model, init, x, y = conv_net
    ctx = measure_context(model, x, y, init_state=init)
    linear = model[3].weight.detach().double()
    exact, reshaped = conv_norms(model[0].weight.detach())
    linear_norm = torch.linalg.matrix_norm(linear, ord=2).item()
    assert exact != pytest.approx(reshaped, rel=1e-3)  # the two families differ on this net
    for suffix, conv_norm in (("_fft", exact), ("_reshaped", reshaped)):
        assert value(ctx, "log_prod_spec" + suffix) == pytest.approx(
            math.log(conv_norm ** 2 * linear_norm ** 2), rel=1e-9)
    dist_exact, dist_reshaped = conv_norms(model[0].weight.detach() - init["0.weight"])
    dist_linear = torch.linalg.matrix_norm(linear - init["3.weight"].double(), ord=2).item()
    # (rel 1e-6: the test subtracts in float32, gen in float64)
    assert value(ctx, "spectral_distance_from_init_fft") == pytest.approx(dist_exact ** 2 + dist_linear ** 2,
                                                                          rel=1e-6)
    assert value(ctx, "spectral_distance_from_init_reshaped") == pytest.approx(
        dist_reshaped ** 2 + dist_linear ** 2, rel=1e-6)
    # Unsuffixed: gen's default (fft), or what conv_spectral says.
    assert value(ctx, "log_prod_spec") == pytest.approx(value(ctx, "log_prod_spec_fft"), rel=1e-12)
    reshape_ctx = measure_context(model, x, y, init_state=init, conv_spectral="reshape")
    assert value(reshape_ctx, "fro_over_spec") == pytest.approx(value(ctx, "fro_over_spec_reshaped"), rel=1e-12)
    assert value(ctx, "fro_over_spec") != pytest.approx(value(ctx, "fro_over_spec_reshaped"), rel=1e-3)
