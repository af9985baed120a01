"""S5's trajectory measures on an SGD run worked out by hand, the local Lipschitz estimate against
‖W_2 S W_1‖ from the activation pattern, J's optimisation measures on a known history, and the
watch's absence when no trajectory measure is configured."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from gen.measures.registry import MEASURES, NotApplicable
from gen.measures.trajectory import BiasWatch, watch_trajectory
from gen.training.objective import Objective
from tests.helpers import CONF, measure_context


def value(ctx, name: str) -> float:
    return float(MEASURES[name].compute(ctx))


def hand_net() -> nn.Sequential:
    """ŷ = W_2 (W_1 x + b), W_1 = I, b = 0, W_2 = [3, 4]: the first-layer bias is ``0.bias``."""
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
        model[1].weight.copy_(torch.tensor([[3.0, 4.0]]))
    return model


def sgd_step(model, optimiser, watch, x, y, lr):
    """One step as the training loop takes it: loss ½(ŷ − y)², SGD, then the watch."""
    for group in optimiser.param_groups:
        group["lr"] = lr
    optimiser.zero_grad()
    outputs = model(x)
    Objective("mse").loss(outputs, y).backward()
    optimiser.step()
    watch.after_step(model, lr, outputs.detach(), y)


# Worked by hand for x = (1, 0), y = 0, with learning rates 0.1, 0.05 (epoch 1) and 0.05 (epoch 2).
# Step 1: ŷ = 3, ε = 3, ∇b = W_2ᵀ·3 = (9, 12): b_1 = (−0.9, −1.2); W_2 ← (2.7, 4); W_1 ← [[0.1, 0], [−1.2, 1]].
# Step 2: h = W_1 x + b_1 = (−0.8, −2.4), ŷ = −11.76 = −ε, ∇b = (2.7, 4)·(−11.76):
#         b_2 = b_1 + 0.05·11.76·(2.7, 4) = (0.6876, 1.152);
#         W_2 ← (2.7, 4) − 0.05·(−11.76)·(−0.8, −2.4) = (2.2296, 2.5888).
# Each term ‖b_t − b_{t−1}‖ / (η ε) is ‖W_2‖ before the step: 5, then √(2.7² + 4²) = √23.29;
# step 3: √(2.2296² + 2.5888²).
# Epoch-1 mean bias b̄ = (−0.1062, −0.024); ‖b_1 − b̄‖² = ‖b_2 − b̄‖² = 0.7938² + 1.176² = 2.01309444,
# so its variance is (2.01309444/0.1² + 2.01309444/0.05²)/2 = 503.27361.  Epoch 2 has one step: variance 0.
EPOCH1_LENGTH = 5 + math.sqrt(23.29)
EPOCH1_VARIANCE = 503.27361
EPOCH2_LENGTH = math.sqrt(2.2296 ** 2 + 2.5888 ** 2)
DISTANCE_AFTER_EPOCH1 = math.sqrt(0.6876 ** 2 + 1.152 ** 2)


def test_trajectory_measures_of_a_two_step_sgd_run_equal_the_values_worked_out_by_hand():
    model = hand_net()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0]])
    watch = watch_trajectory({"names": ["bias_trajectory", "bias_variance"]}, model)
    assert watch.name == "0.bias"
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    sgd_step(model, optimiser, watch, x, y, 0.1)
    sgd_step(model, optimiser, watch, x, y, 0.05)
    assert model[0].bias.tolist() == pytest.approx([0.6876, 1.152], rel=1e-5)
    row = watch.end_epoch()
    assert row["bias_trajectory_epoch"] == pytest.approx(EPOCH1_LENGTH, rel=1e-6)
    assert row["bias_variance_epoch"] == pytest.approx(EPOCH1_VARIANCE, rel=1e-5)
    ctx = measure_context(model, x, y, init_state=init, record=SimpleNamespace(trajectory=watch, train_size=1))
    assert value(ctx, "bias_distance_init") == pytest.approx(DISTANCE_AFTER_EPOCH1, rel=1e-6)

    sgd_step(model, optimiser, watch, x, y, 0.05)
    assert watch.end_epoch()["bias_variance_epoch"] == pytest.approx(0.0, abs=1e-9)
    assert value(ctx, "bias_trajectory") == pytest.approx(EPOCH1_LENGTH + EPOCH2_LENGTH, rel=1e-5)
    assert value(ctx, "bias_variance") == pytest.approx(EPOCH1_VARIANCE / 2, rel=1e-5)


def test_a_resumed_tracker_continues_exactly_where_it_stopped():
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0]])
    model = hand_net()
    watch = BiasWatch(model)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    sgd_step(model, optimiser, watch, x, y, 0.1)
    resumed = BiasWatch(hand_net())
    resumed.load_state_dict(watch.state_dict())
    sgd_step(model, optimiser, resumed, x, y, 0.05)
    assert resumed.end_epoch()["bias_trajectory_epoch"] == pytest.approx(EPOCH1_LENGTH, rel=1e-6)


def test_trajectory_measures_without_a_watch_are_null_with_a_reason():
    model = hand_net()
    ctx = measure_context(model, torch.ones(3, 2), torch.zeros(3, 1), record=SimpleNamespace(trajectory=None))
    with pytest.raises(NotApplicable, match="per-step tracking"):
        value(ctx, "bias_trajectory")


@pytest.mark.parametrize("measure_set", ["none", "default", "norms", "sharpness", "neyshabur2017", "jiang2020"])
def test_no_tracker_and_so_no_cost_when_no_trajectory_measure_is_configured(measure_set):
    cfg = OmegaConf.load(CONF / "measure" / f"{measure_set}.yaml")
    assert watch_trajectory(cfg, hand_net()) is None


def test_a_tracker_exactly_when_a_trajectory_measure_is_configured():
    for measure_set in ("trajectory", "all"):
        cfg = OmegaConf.load(CONF / "measure" / f"{measure_set}.yaml")
        assert isinstance(watch_trajectory(cfg, hand_net()), BiasWatch)
    assert watch_trajectory(None, hand_net()) is None
    assert watch_trajectory({"names": ["bias_distance_init", "lipschitz"]}, hand_net()) is None  # computed at the end


@pytest.mark.parametrize("inputs, outputs", [(2, 2), (4, 2), (2, 5)], ids=["square", "wide", "tall"])
def test_lipschitz_is_the_mean_and_max_of_the_activation_pattern_products(inputs, outputs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(inputs, 3), nn.ReLU(), nn.Linear(3, outputs))
    x = torch.randn(12, inputs)
    y = torch.arange(12) % outputs
    w1, b1, w2 = model[0].weight.detach(), model[0].bias.detach(), model[2].weight.detach()
    norms = []
    for point in x:
        pattern = torch.diag((w1 @ point + b1 > 0).float())  # S: which hidden units are on at x
        norms.append(torch.linalg.matrix_norm(w2 @ pattern @ w1, ord=2).item())
    ctx = measure_context(model, x, y)
    assert value(ctx, "lipschitz") == pytest.approx(sum(norms) / len(norms), rel=1e-5)
    assert value(ctx, "lipschitz_max") == pytest.approx(max(norms), rel=1e-5)


# ---- J's optimisation measures -----------------------------------------------------------------------------
HISTORY = [{"step": 0, "train_loss": 2.3}, {"step": 40, "train_loss": 0.4}, {"step": 80, "train_loss": 0.09},
           {"step": 120, "train_loss": 0.02}, {"step": 160, "train_loss": 0.004}]


def test_steps_to_cross_entropy_thresholds_are_read_from_the_history():
    model = nn.Linear(2, 3)
    ctx = measure_context(model, torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]),
                          record=SimpleNamespace(history=HISTORY, trajectory=None))
    assert value(ctx, "steps_to_ce_0.1") == 80
    assert value(ctx, "steps_ce_0.1_to_0.01") == 160 - 80


def test_one_logit_nets_train_on_bce_halved_so_their_cross_entropy_is_twice_the_loss():
    model = nn.Linear(2, 1)
    ctx = measure_context(model, torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1]),
                          record=SimpleNamespace(history=HISTORY, trajectory=None))
    assert value(ctx, "steps_to_ce_0.1") == 120       # 2 × 0.09 = 0.18 is not below 0.1; 2 × 0.02 is
    assert value(ctx, "steps_ce_0.1_to_0.01") == 160 - 120


def test_steps_measures_are_null_when_the_threshold_is_never_crossed():
    ctx = measure_context(nn.Linear(2, 3), torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]),
                          record=SimpleNamespace(history=HISTORY[:4], trajectory=None))
    with pytest.raises(NotApplicable, match="never fell below 0.01"):
        value(ctx, "steps_ce_0.1_to_0.01")
