"""The optimizer zoo: every optimizer, with and without SAM, trains; SAM and the schedules match
their closed forms on tiny examples; bad settings are one-line errors."""
import pytest
import pytorch_optimizer
import torch
import torch.nn as nn

from gen.config.overrides import check_group_choices, options
from gen.training.adashift import AdaShift
from gen.training.optimizers import build_optimizer, build_scheduler, uses_sam
from gen.config import ConfigError, validate
from gen.config.base import check_node
from gen.config.trainer import TrainerConfig
from tests.helpers import CONF, compose_config

OPTIMIZERS = options("optimizer")


def optimizer_cfg(*overrides):
    return compose_config(list(overrides)).optimizer


def tiny_regression():
    """y = X w* + noise on 32 samples of 5 features, and a linear model."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(32, 1, generator=g)
    torch.manual_seed(0)
    return x, y, nn.Linear(5, 1)


def train_steps(optimizer, model, x, y, steps: int, sam: bool) -> tuple[list[float], int]:
    """The training loop's protocol; returns the losses seen and how often the loss was evaluated."""
    evaluations = 0

    def closure():
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad(set_to_none=True)
        loss = 0.5 * (model(x) - y).pow(2).mean()
        loss.backward()
        return loss

    losses = []
    for _ in range(steps):
        losses.append(closure().item())
        optimizer.step(closure) if sam else optimizer.step()
    return losses, evaluations


def test_the_zoo_is_complete():
    assert {"sgd", "momentum", "nesterov", "adam", "adamw", "adagrad", "adabound", "adashift"} <= set(OPTIMIZERS)


@pytest.mark.parametrize("sam", [False, True], ids=["plain", "sam"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_lowers_the_training_loss(name, sam):
    cfg = optimizer_cfg(f"optimizer={name}", f"optimizer.sam.enabled={str(sam).lower()}")
    validate(compose_config([f"optimizer={name}", f"optimizer.sam.enabled={str(sam).lower()}"]))
    x, y, model = tiny_regression()
    optimizer = build_optimizer(cfg, model)
    assert uses_sam(cfg) == sam and isinstance(optimizer, pytorch_optimizer.SAM) == sam
    steps = 40  # AdaShift makes no update until it holds keep_num = 10 gradients
    losses, evaluations = train_steps(optimizer, model, x, y, steps, sam)
    assert evaluations == (2 if sam else 1) * steps  # SAM: once at w, once at the perturbed w
    with torch.no_grad():
        final = 0.5 * (model(x) - y).pow(2).mean().item()
    assert final < 0.95 * losses[0], (losses[0], final)


def test_sam_step_matches_closed_form():
    # f(w) = ½‖w‖², so ∇f(w) = w.  SAM with SGD: e = ρ w/‖w‖, then w ← w − η ∇f(w + e) = w − η (w + e).
    w0 = torch.tensor([3.0, -4.0])
    w = nn.Parameter(w0.clone())
    rho, lr = 0.5, 0.1
    optimizer = pytorch_optimizer.SAM([w], torch.optim.SGD, rho=rho, lr=lr)

    def closure():
        optimizer.zero_grad()
        loss = 0.5 * w.pow(2).sum()
        loss.backward()
        return loss

    closure()
    optimizer.step(closure)
    e = rho * w0 / w0.norm()
    torch.testing.assert_close(w.detach(), w0 - lr * (w0 + e))


def test_asam_step_matches_closed_form():
    # ASAM scales the perturbation by w²: e = ρ w² ⊙ g / ‖|w| ⊙ g‖ with g = w.
    w0 = torch.tensor([1.0, -2.0, 0.5])
    w = nn.Parameter(w0.clone())
    rho, lr = 0.3, 0.1
    cfg = optimizer_cfg("optimizer=sgd", f"optimizer.lr={lr}", "optimizer.sam.enabled=true",
                        f"optimizer.sam.rho={rho}", "optimizer.sam.adaptive=true")
    holder = nn.Module()
    holder.w = w
    optimizer = build_optimizer(cfg, holder)

    def closure():
        optimizer.zero_grad()
        loss = 0.5 * w.pow(2).sum()
        loss.backward()
        return loss

    closure()
    optimizer.step(closure)
    e = rho * w0.pow(2) * w0 / (w0.abs() * w0).norm()
    torch.testing.assert_close(w.detach(), w0 - lr * (w0 + e))


def test_sam_keeps_the_base_optimizer_settings():
    cfg = optimizer_cfg("optimizer=momentum", "optimizer.sam.enabled=true", "optimizer.weight_decay=0.001")
    optimizer = build_optimizer(cfg, nn.Linear(2, 1))
    assert isinstance(optimizer.base_optimizer, torch.optim.SGD)
    group = optimizer.base_optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["rho"]) == (0.01, 0.8, 0.001, 0.05)


# ---- schedules ----------------------------------------------------------------------------------

def lrs_over_epochs(cfg, epochs: int, max_epochs: int = 10) -> list[float]:
    optimizer = build_optimizer(cfg, nn.Linear(2, 1))
    scheduler = build_scheduler(cfg, optimizer, max_epochs)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_no_schedule_is_none():
    cfg = optimizer_cfg("optimizer=sgd")
    assert build_scheduler(cfg, build_optimizer(cfg, nn.Linear(2, 1)), 10) is None


def test_exponential_schedule_is_zhangs_095_per_epoch():
    lrs = lrs_over_epochs(optimizer_cfg("optimizer=sgd", "optimizer/schedule=exponential"), 5)
    assert lrs == pytest.approx([0.01 * 0.95 ** k for k in range(5)])


def test_s5_decay_is_a_factor_ten_every_50_epochs():
    cfg = optimizer_cfg("optimizer=sgd", "optimizer.lr=0.0025", "optimizer/schedule=s5_decay")
    lrs = lrs_over_epochs(cfg, 101)
    assert lrs[50] == pytest.approx(0.00025) and lrs[100] == pytest.approx(0.000025)


def test_step_schedule():
    cfg = optimizer_cfg("optimizer=sgd", "optimizer/schedule=step", "optimizer.schedule.step_size=2",
                        "optimizer.schedule.gamma=0.5")
    assert lrs_over_epochs(cfg, 5) == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


def test_cosine_schedule_reaches_zero_at_max_epochs():
    lrs = lrs_over_epochs(optimizer_cfg("optimizer=sgd", "optimizer/schedule=cosine"), 11, max_epochs=10)
    assert lrs[5] == pytest.approx(0.005) and lrs[10] == pytest.approx(0.0, abs=1e-12)


def test_schedule_moves_the_sam_base_optimizer_and_survives_a_checkpoint():
    cfg = optimizer_cfg("optimizer=adam", "optimizer.sam.enabled=true", "optimizer/schedule=exponential")
    x, y, model = tiny_regression()
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, 10)
    train_steps(optimizer, model, x, y, 2, sam=True)
    scheduler.step()
    assert optimizer.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.001 * 0.95)
    # A resumed run: fresh objects, state loaded, same next learning rate and optimizer state.
    resumed_opt = build_optimizer(cfg, model)
    resumed_sched = build_scheduler(cfg, resumed_opt, 10)
    resumed_opt.load_state_dict(optimizer.state_dict())
    resumed_sched.load_state_dict(scheduler.state_dict())
    for sched in (scheduler, resumed_sched):
        sched.step()
    assert resumed_opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.001 * 0.95 ** 2)
    state, resumed_state = optimizer.state[model.weight], resumed_opt.base_optimizer.state[model.weight]
    torch.testing.assert_close(resumed_state["exp_avg"], state["exp_avg"])


# ---- AdaShift's weight decay --------------------------------------------------------------------

def test_adashift_weight_decay_is_decoupled():
    # With zero gradients AdaShift's own update is zero, so only the decay moves p: p (1 − lr·wd)^k.
    p = nn.Parameter(torch.tensor([2.0, -1.0]))
    optimizer = AdaShift([p], lr=0.1, weight_decay=0.5, keep_num=2)
    for _ in range(4):
        p.grad = torch.zeros_like(p)
        optimizer.step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.0, -1.0]) * (1 - 0.1 * 0.5) ** 4)


def test_adashift_without_decay_is_the_library_optimizer():
    x, y, ours = tiny_regression()
    _, _, theirs = tiny_regression()
    train_steps(AdaShift(ours.parameters(), lr=0.01, keep_num=3), ours, x, y, 8, sam=False)
    train_steps(pytorch_optimizer.AdaShift(theirs.parameters(), lr=0.01, keep_num=3), theirs, x, y, 8, sam=False)
    torch.testing.assert_close(ours.weight, theirs.weight)


# ---- bad input ----------------------------------------------------------------------------------

def test_negative_rho_is_a_one_line_error():
    with pytest.raises(ConfigError) as err:
        validate(compose_config(["optimizer.sam.rho=-1"]))
    assert str(err.value) == "invalid config: optimizer.sam.rho=-1: must be > 0"


def test_optimizer_argument_errors_become_config_errors():
    cfg = optimizer_cfg("optimizer=nesterov", "optimizer.momentum=0")
    with pytest.raises(ConfigError, match="^invalid config: optimizer=nesterov: Nesterov momentum requires"):
        build_optimizer(cfg, nn.Linear(2, 1))


def test_an_unknown_optimizer_lists_the_options_and_explains_sam():
    with pytest.raises(ConfigError) as caught:
        check_group_choices(["optimizer=sam"])
    line = str(caught.value)
    assert "\n" not in line and line.startswith("invalid config: optimizer=sam: ")
    assert all(f"'{name}'" in line for name in sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml")))
    assert "SAM is not an optimizer: add optimizer.sam.enabled=true" in line


# ---- study presets ------------------------------------------------------------------------------

STUDY_TRAINERS = {  # the studies' own protocols (the presets' comments, conf/trainer/)
    "s1": dict(batch_size=64, max_epochs=1000, rule="train_error", threshold=0.01),
    "s2": dict(batch_size=128, rule="interpolation"),
    "s4": dict(max_epochs=200, rule="train_loss", threshold=0.01, checkpoint_every=50),
    "s5_mlp": dict(batch_size=1, max_epochs=3000, rule="none"),
    "s5_cnn": dict(batch_size=1, max_epochs=100, rule="none"),
}


@pytest.mark.parametrize("preset", sorted(STUDY_TRAINERS))
def test_study_trainer_presets(preset):
    trainer = compose_config([f"trainer={preset}"]).trainer
    check_node(trainer, TrainerConfig, "trainer")  # every key known and in range
    assert trainer.name == preset
    for key, value in STUDY_TRAINERS[preset].items():
        actual = trainer.stop[key] if key in ("rule", "threshold") else trainer[key]
        assert actual == value, key
