"""Norm-based measures against values computed another way: brute-force path enumeration, explicit
convolution matrices, the capacity and bound formulas evaluated directly on the weights, numpy
percentiles for the margin, and hand-folded twins of BatchNorm nets."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from gen.measures import compute_measures
from gen.measures.folding import fold_batchnorm
from gen.measures.layers import fft_conv_spectral_norm
from gen.measures.margin import margins
from gen.measures.path_norms import path_sum
from gen.measures.registry import NotApplicable
from tests.helpers import measure_context, measure_value as value, relu_mlp as mlp





def self_labelled(model: nn.Module, n: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and the labels the model itself predicts, so every margin is positive."""
    generator = torch.Generator().manual_seed(seed)
    first = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    shape = (first.in_features,) if isinstance(first, nn.Linear) else (first.in_channels, 4, 4)
    x = torch.randn(n, *shape, generator=generator)
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


def weights(model: nn.Module) -> list[torch.Tensor]:
    """W_1 … W_d as matrices, in forward order, straight from the modules."""
    return [m.weight.detach().double().reshape(m.weight.shape[0], -1) for m in model.modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))]


def brute_force_path_sum(matrices: list[torch.Tensor], p: float) -> float:
    """Σ over every input→output path (j_0, …, j_d) of Π_i |W_i[j_i, j_{i−1}]|^p."""
    sizes = [matrices[0].shape[1]] + [w.shape[0] for w in matrices]
    total = 0.0
    for path in itertools.product(*(range(s) for s in sizes)):
        term = 1.0
        for i, w in enumerate(matrices):
            term *= abs(w[path[i + 1], path[i]].item()) ** p
        total += term
    return total


# ---- path norms ------------------------------------------------------------------------------------
@pytest.mark.parametrize("widths", [[3, 2, 4], [2, 4, 3, 2], [4, 3, 3, 2]], ids=str)
def test_path_sums_equal_brute_force_enumeration_of_all_paths(widths):
    model = mlp(widths, bias=True)  # biases are left out of path sums: they must not count
    x, y = self_labelled(model)
    ctx = measure_context(model, x, y)
    matrices = weights(model)
    for p in (1, 2):
        assert path_sum(ctx, p) == pytest.approx(brute_force_path_sum(matrices, p), rel=1e-10)


def test_s1_path_capacities_and_plain_forms_follow_from_the_enumerated_sums():
    model = mlp([3, 4, 2, 3])
    x, y = self_labelled(model)
    ctx = measure_context(model, x, y, margin_percentile=5)
    matrices = weights(model)
    gamma = ctx.margin
    assert gamma > 0
    # (1/γ²)·(Σ_paths Π_i 2|W_i|)²: each of the d factors of a path carries a 2.
    l1 = sum(math.prod(2 * abs(w[path[i + 1], path[i]].item()) for i, w in enumerate(matrices))
             for path in itertools.product(range(3), range(4), range(2), range(3)))
    assert value(ctx, "l1_path") == pytest.approx(l1 ** 2 / gamma ** 2, rel=1e-9)
    # (1/γ²)·Σ_paths Π_i 4·h_i·W_i², h_i the output width of layer i.
    widths = [4, 2, 3]
    l2 = sum(math.prod(4 * widths[i] * w[path[i + 1], path[i]].item() ** 2 for i, w in enumerate(matrices))
             for path in itertools.product(range(3), range(4), range(2), range(3)))
    assert value(ctx, "l2_path") == pytest.approx(l2 / gamma ** 2, rel=1e-9)
    assert value(ctx, "l1_path_plain") == pytest.approx(brute_force_path_sum(matrices, 1) / gamma, rel=1e-9)
    assert value(ctx, "l2_path_plain") == pytest.approx(math.sqrt(brute_force_path_sum(matrices, 2)) / gamma, rel=1e-9)
    assert value(ctx, "path_norm") == pytest.approx(brute_force_path_sum(matrices, 2), rel=1e-9)
    assert value(ctx, "path_norm_over_margin") == pytest.approx(brute_force_path_sum(matrices, 2) / gamma ** 2,
                                                                rel=1e-9)


def unrolled_conv(conv: nn.Conv2d, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """The explicit matrix of a convolution: its output on each basis vector is one column."""
    n = math.prod(input_shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *input_shape)
    with torch.no_grad():
        columns = conv.double()(basis).reshape(n, -1)
    conv.float()
    return columns.T


def test_path_sum_of_a_conv_net_equals_enumeration_over_its_unrolled_matrices():
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 2, 2, bias=False)           # 2×3×3 input → 2×2×2 output
    linear = nn.Linear(8, 2, bias=False)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), linear)
    x = torch.randn(10, 2, 3, 3)
    y = model(x).argmax(1).detach()
    ctx = measure_context(model, x, y)
    # No padding and no wrap-around: each entry of the unrolled matrix is one kernel tap (or 0).
    matrices = [unrolled_conv(conv, (2, 3, 3)), linear.weight.detach().double()]
    for p in (1, 2):
        assert path_sum(ctx, p) == pytest.approx(brute_force_path_sum(matrices, p), rel=1e-10)


def test_path_norms_of_a_non_homogeneous_net_are_null_with_a_reason():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(20, 3)
    y = model(x).argmax(1).detach()
    ctx = measure_context(model, x, y)
    with pytest.raises(NotApplicable, match="positively homogeneous"):
        value(ctx, "path_norm")


# ---- spectral norms ------------------------------------------------------------------------------
def test_spectral_norms_of_linear_layers_equal_torch_matrix_norm():
    model = mlp([5, 4, 3, 2])
    x, y = self_labelled(model)
    ctx = measure_context(model, x, y)
    expected = math.prod(torch.linalg.matrix_norm(w, ord=2).item() for w in weights(model))
    assert value(ctx, "spectral_product") == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("stride,dilation,groups", [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2)],
                         ids=["plain", "stride2", "dilation2", "groups2"])
def test_fft_conv_operator_norm_equals_the_largest_singular_value_of_the_explicit_matrix(stride, dilation, groups):
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 4, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups,
                     padding_mode="circular", bias=False)
    input_shape = (2, 6, 4)
    explicit = torch.linalg.svdvals(unrolled_conv(conv, input_shape)).max().item()
    fft = fft_conv_spectral_norm(conv.weight.detach(), input_shape[1:], (stride, stride), (dilation, dilation),
                                 groups)
    assert fft == pytest.approx(explicit, rel=1e-9)


def small_conv_net():
    """A seeded 2→3-channel 3×3 conv, ReLU and a linear head on 5×5 inputs, 12 inputs labelled by its own
    predictions: (model, x, y)."""
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 2, bias=False))
    x = torch.randn(12, 2, 5, 5)
    return model, x, model(x).argmax(1).detach()


def conv_norms(kernel: torch.Tensor) -> tuple[float, float]:
    """(exact operator norm on the 5×5 circular torus, reshaped-kernel norm) of a 2→3-channel 3×3 kernel."""
    circular = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", bias=False)
    circular.weight.data = kernel.float().clone()
    exact = torch.linalg.svdvals(unrolled_conv(circular, (2, 5, 5))).max().item()
    return exact, torch.linalg.matrix_norm(kernel.double().reshape(3, -1), ord=2).item()


def test_conv_spectral_measure_uses_the_fft_norm_on_the_layer_input_size_or_the_reshaped_kernel():
    model, x, y = small_conv_net()
    conv_norm, reshaped = conv_norms(model[0].weight.detach())
    linear_norm = torch.linalg.matrix_norm(model[3].weight.detach().double(), ord=2).item()
    fft_ctx = measure_context(model, x, y, conv_spectral="fft")
    assert value(fft_ctx, "spectral_product") == pytest.approx(conv_norm * linear_norm, rel=1e-9)
    reshape_ctx = measure_context(model, x, y, conv_spectral="reshape")
    assert value(reshape_ctx, "spectral_product") == pytest.approx(reshaped * linear_norm, rel=1e-9)


# ---- S1 capacities, J's norm family, bounds ------------------------------------------------------
@pytest.fixture
def trained_pair():
    """A 3-layer net, its weights at 'initialisation' (a perturbed copy) and a positive-margin sample."""
    model = mlp([4, 5, 3, 3], bias=True, seed=7)
    init = {k: v + 0.1 * torch.randn_like(v) for k, v in model.state_dict().items()}
    x, y = self_labelled(model, n=50)
    return model, init, x, y


def test_s1_capacity_forms_equal_the_formulas_on_the_weights(trained_pair):
    model, init, x, y = trained_pair
    ctx = measure_context(model, x, y, init_state=init, margin_percentile=5)
    ws = weights(model)
    with torch.no_grad():
        out = model(x)
    gamma = np.percentile(margins(out, y).numpy(), 5)
    fro = [w.norm().item() for w in ws]
    spec = [torch.linalg.matrix_norm(w, ord=2).item() for w in ws]
    widths = [w.shape[0] for w in ws]
    assert value(ctx, "margin") == pytest.approx(gamma, rel=1e-6)
    assert value(ctx, "l2") == pytest.approx(math.prod(4 * f ** 2 for f in fro) / gamma ** 2, rel=1e-6)
    assert value(ctx, "spectral") == pytest.approx(math.prod(h * s ** 2 for h, s in zip(widths, spec)) / gamma ** 2,
                                                   rel=1e-6)
    assert value(ctx, "l2_plain") == pytest.approx(math.prod(fro) / gamma, rel=1e-6)
    assert value(ctx, "spectral_plain") == pytest.approx(math.prod(spec) / gamma, rel=1e-6)
    assert value(ctx, "frobenius_product") == pytest.approx(math.prod(fro), rel=1e-9)
    assert value(ctx, "inverse_margin") == pytest.approx(1 / gamma ** 2, rel=1e-6)
    assert value(ctx, "num_params") == 4 * 5 + 5 + 5 * 3 + 3 + 3 * 3 + 3


def test_jiang_norm_family_equals_the_formulas_on_the_weights(trained_pair):
    model, init, x, y = trained_pair
    ctx = measure_context(model, x, y, init_state=init)
    ws = weights(model)
    init_ws = [init[f"{i}.weight"].double() for i in (0, 2, 4)]
    gamma = np.percentile(margins(model(x).detach(), y).numpy(), 10)
    fro2 = [w.norm().item() ** 2 for w in ws]
    spec2 = [torch.linalg.matrix_norm(w, ord=2).item() ** 2 for w in ws]
    d = len(ws)
    expected = {
        "param_norm": sum(fro2),
        "fro_over_spec": sum(f / s for f, s in zip(fro2, spec2)),
        "distance_from_init": sum((w - w0).norm().item() ** 2 for w, w0 in zip(ws, init_ws)),
        "spectral_distance_from_init": sum(torch.linalg.matrix_norm(w - w0, ord=2).item() ** 2
                                           for w, w0 in zip(ws, init_ws)),
        "log_prod_spec": math.log(math.prod(spec2)),
        "log_prod_spec_over_margin": math.log(math.prod(spec2) / gamma ** 2),
        "log_sum_spec": math.log(d * math.prod(spec2) ** (1 / d)),
        "log_sum_spec_over_margin": math.log(d * (math.prod(spec2) / gamma ** 2) ** (1 / d)),
        "log_prod_fro": math.log(math.prod(fro2)),
        "log_prod_fro_over_margin": math.log(math.prod(fro2) / gamma ** 2),
        "log_sum_fro": math.log(d * math.prod(fro2) ** (1 / d)),
        "log_sum_fro_over_margin": math.log(d * (math.prod(fro2) / gamma ** 2) ** (1 / d)),
    }
    for name, want in expected.items():
        assert value(ctx, name) == pytest.approx(want, rel=1e-6), name


def test_bartlett2017_and_neyshabur2018_equal_direct_evaluation(trained_pair):
    model, init, x, y = trained_pair
    ctx = measure_context(model, x, y, init_state=init)
    ws = weights(model)
    init_ws = [init[f"{i}.weight"].double() for i in (0, 2, 4)]
    gamma = np.percentile(margins(model(x).detach(), y).numpy(), 10)
    spec = [torch.linalg.matrix_norm(w, ord=2).item() for w in ws]
    # ‖Aᵀ‖_{2,1}: the sum over output units (rows of A) of their ℓ2 norms.
    two_one = [sum((w - w0)[j].norm().item() for j in range(w.shape[0])) for w, w0 in zip(ws, init_ws)]
    bartlett = math.prod(spec) * sum((a / s) ** (2 / 3) for a, s in zip(two_one, spec)) ** 1.5 / gamma
    assert value(ctx, "bartlett2017") == pytest.approx(bartlett, rel=1e-6)
    d, widths = len(ws), [w.shape[0] for w in ws]
    fro_dist = [(w - w0).norm().item() for w, w0 in zip(ws, init_ws)]
    ratios = sum(h * f ** 2 / s ** 2 for h, f, s in zip(widths, fro_dist, spec))
    neyshabur = d * math.prod(spec) * math.sqrt(ratios) / gamma
    assert value(ctx, "neyshabur2018") == pytest.approx(neyshabur, rel=1e-6)


def test_include_bias_appends_the_bias_as_a_column(trained_pair):
    model, _, x, y = trained_pair
    ctx = measure_context(model, x, y, include_bias=True)
    layers = [m for m in model if isinstance(m, nn.Linear)]
    expected = sum(m.weight.detach().double().norm().item() ** 2 + m.bias.detach().double().norm().item() ** 2
                   for m in layers)
    assert value(ctx, "param_norm") == pytest.approx(expected, rel=1e-9)


def test_include_bias_distances_use_the_bias_difference(trained_pair):
    model, init, x, y = trained_pair
    ctx = measure_context(model, x, y, init_state=init, include_bias=True)
    differences = [torch.cat([model[i].weight.detach() - init[f"{i}.weight"],
                              (model[i].bias.detach() - init[f"{i}.bias"])[:, None]], 1).double() for i in (0, 2, 4)]
    assert value(ctx, "distance_from_init") == pytest.approx(sum(d.norm().item() ** 2 for d in differences), rel=1e-6)
    assert value(ctx, "spectral_distance_from_init") == pytest.approx(
        sum(torch.linalg.matrix_norm(d, ord=2).item() ** 2 for d in differences), rel=1e-6)


def test_size_adjusted_forms_follow_jiangs_rule(trained_pair):
    model, init, x, y = trained_pair
    ctx = measure_context(model, x, y, init_state=init)
    m = len(x)
    names = ["param_norm", "log_prod_spec", "num_params"]
    cfg = {"names": names + [n + "_size_adjusted" for n in names], "params": {}}
    got = compute_measures(cfg, model, init, ctx.data, None).values
    assert got["param_norm_size_adjusted"] == pytest.approx(math.sqrt(got["param_norm"] / m))
    assert got["num_params_size_adjusted"] == pytest.approx(math.sqrt(got["num_params"] / m))
    assert got["log_prod_spec_size_adjusted"] == pytest.approx(0.5 * (got["log_prod_spec"] - math.log(m)))


# ---- margin ---------------------------------------------------------------------------------------------
def test_margin_is_the_qth_percentile_of_hand_computed_margins():
    model = nn.Linear(3, 3, bias=False)  # the identity: outputs are the inputs themselves
    model.weight.data = torch.eye(3)
    x = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 2.5], [1.0, 1.0, 4.0], [0.0, 0.5, 0.0], [2.0, 0.0, 1.0]])
    y = torch.tensor([0, 1, 2, 1, 2])
    hand = [3 - 1, 2 - 2.5, 4 - 1, 0.5 - 0, 1 - 2]  # f(x)[y] − max_{j≠y} f(x)[j], row by row
    for q in (0, 5, 10, 50, 100):
        ctx = measure_context(model, x, y, margin_percentile=q)
        assert ctx.margin == pytest.approx(np.percentile(hand, q), abs=1e-6), q


def test_one_logit_margin_is_the_signed_logit():
    logits = torch.tensor([[1.5], [-0.5], [2.0]])
    assert margins(logits, torch.tensor([1, 0, 0])).tolist() == [1.5, 0.5, -2.0]


def test_capacity_forms_are_null_with_a_reason_when_the_margin_is_not_positive():
    model = nn.Linear(2, 2, bias=False)
    x = torch.randn(10, 2)
    y = (1 - model(x).argmax(1)).detach()  # every sample misclassified
    cfg = {"names": ["margin", "l2", "bartlett2017"], "params": {}}
    results = compute_measures(cfg, model, None, measure_context(model, x, y).data, None)
    assert results.values["margin"] < 0
    assert results.values["l2"] is None and results.values["bartlett2017"] is None
    assert any(note.startswith("l2: the margin") for note in results.notes)


# ---- BatchNorm folding -----------------------------------------------------------------------------------
def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
            m.weight.data = 0.5 + torch.rand(n, generator=generator)  # positive: may pass a max-pool
            m.bias.data = torch.randn(n, generator=generator)
    return model.eval()


def test_folding_leaves_the_outputs_equal_and_removes_every_batchnorm():
    torch.manual_seed(0)
    model = randomise_batchnorm(nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),     # folds into the conv before
        nn.MaxPool2d(2), nn.BatchNorm2d(3), nn.Conv2d(3, 4, 2),           # after ReLU: folds into the conv after
        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 1 * 1, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(),
        nn.BatchNorm1d(5), nn.Linear(5, 3)))
    x = torch.randn(16, 2, 4, 4)
    folded = fold_batchnorm(model, x)
    assert folded.unfolded == [] and folded.notes == []
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.module.modules())
    with torch.no_grad():
        assert torch.allclose(folded.module(x), model(x), atol=1e-5, rtol=0)
    assert all(not m.training for m in model.modules()) and model[1].running_mean.abs().sum() > 0  # untouched


def hand_folded(model: nn.Sequential) -> nn.Sequential:
    """Linear → BN1d → ReLU → Linear folded by hand: W ← s·W, b ← s·b + t, s = γ/√(var+eps), t = β − s·mean."""
    linear, bn, _, last = model
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    t = bn.bias - s * bn.running_mean
    first = nn.Linear(linear.in_features, linear.out_features)
    first.weight.data = (s[:, None] * linear.weight).detach()
    first.bias.data = (s * linear.bias + t).detach()
    second = nn.Linear(last.in_features, last.out_features)
    second.load_state_dict(last.state_dict())
    return nn.Sequential(first, nn.ReLU(), second).eval()


def test_measures_of_a_batchnorm_net_equal_those_of_its_hand_folded_twin():
    torch.manual_seed(2)
    bn_net = randomise_batchnorm(nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)))
    twin = hand_folded(bn_net)
    init_bn = randomise_batchnorm(nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)), 1)
    init_twin = hand_folded(init_bn)
    x = torch.randn(30, 4)
    y = bn_net(x).argmax(1).detach()
    names = ["margin", "l2", "spectral", "l1_path", "l2_path", "distance_from_init", "bartlett2017",
             "neyshabur2018", "fro_over_spec", "sharpness_worst", "hessian_trace", "hessian_top_eig",
             "min_sharpness", "lipschitz"]
    cfg = {"names": names, "params": {"hessian_probes": 5, "power_iterations": 20}}
    data = measure_context(bn_net, x, y).data
    on_bn = compute_measures(cfg, bn_net, init_bn.state_dict(), data, None)
    on_twin = compute_measures(cfg, twin, init_twin.state_dict(), data, None)
    for name in names:
        assert on_bn.values[name] is not None, (name, on_bn.notes)
        assert on_bn.values[name] == pytest.approx(on_twin.values[name], rel=1e-4), name


def test_a_batchnorm_that_cannot_be_folded_makes_layer_norms_null_with_a_reason():
    torch.manual_seed(0)
    # BN after a ReLU whose next layer zero-pads: it fits neither neighbour.
    model = randomise_batchnorm(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2),
                                              nn.Conv2d(2, 2, 3, padding=1), nn.Flatten(), nn.Linear(8, 2)))
    x = torch.randn(10, 1, 4, 4)
    y = model(x).argmax(1).detach()
    ctx = measure_context(model, x, y)
    with pytest.raises(NotApplicable, match="could not be folded"):
        value(ctx, "param_norm")
    assert ctx.margin == pytest.approx(np.percentile(margins(model(x).detach(), y).numpy(), 10), rel=1e-5)
