"""model=zhang_expressivity: Zhang et al. 2017's Theorem 1 network, built in closed form, fits any labelling."""
import pytest
import torch

from gen.models.expressivity import ZhangExpressivity, fit, interpolate, parameter_count
from gen.config import ConfigError
from tests.helpers import launch, read_metrics


def built(x: torch.Tensor, outputs: int, directions: int = 16, seed: int = 0) -> ZhangExpressivity:
    torch.manual_seed(seed)
    return ZhangExpressivity(tuple(x.shape[1:]), outputs, hidden_units=len(x), directions=directions)


def image_like(n: int, seed: int = 0) -> torch.Tensor:
    """Random 28×28 images on MNIST's 256 grey levels: distinct, but their projections crowd together."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=generator).float() / 255


def test_the_network_has_d_plus_n_plus_n_per_class_weights_zhangs_2n_plus_d_for_one_output():
    x = torch.zeros(300, 1, 8, 8)
    assert sum(p.numel() for p in built(x, 10).parameters()) == 64 + 300 + 300 * 10 == parameter_count(64, 300, 10)
    assert sum(p.numel() for p in built(x, 1).parameters()) == 2 * 300 + 64


def test_the_biases_interleave_the_projections_and_solve_the_lower_triangular_system():
    z = torch.sort(torch.rand(200, dtype=torch.float64)).values
    targets = torch.randn(200, 3, dtype=torch.float64)
    biases, weights = interpolate(z, targets)
    assert bool((biases < z).all()) and bool((z[:-1] < biases[1:]).all())
    system = torch.relu(z[:, None] - biases[None, :])                  # A_ij = max(z_i − b_j, 0)
    assert torch.equal(system, torch.tril(system)) and bool((system.diagonal() > 0).all())
    assert torch.allclose(system @ weights, targets, atol=1e-9)


@pytest.mark.parametrize("n", [1000, 3000])
def test_random_labels_on_n_points_are_fitted_exactly(n):
    x = image_like(n, seed=n)
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1))
    model = built(x, 10)
    fit(model, x, labels)
    assert torch.equal(model(x).argmax(1), labels)
    assert model(x).dtype == torch.float32


def test_real_valued_targets_are_reproduced_to_float64_rounding():
    x = torch.randn(1500, 20)
    targets = torch.randn(1500, 1)
    model = built(x, 1)
    fit(model, x, targets)
    assert (model(x.double()).double() - targets.double()).abs().max() < 1e-6


def test_duplicate_inputs_with_one_label_share_a_unit_and_with_two_labels_are_refused():
    x = image_like(400)
    x[10], x[20] = x[5], x[5]
    labels = torch.randint(0, 10, (400,), generator=torch.Generator().manual_seed(2))
    labels[10] = labels[20] = labels[5]
    model = built(x, 10)
    fit(model, x, labels)
    assert torch.equal(model(x).argmax(1), labels)

    labels[20] = (labels[5] + 1) % 10
    with pytest.raises(ConfigError, match=r"model=zhang_expressivity: training samples 5 and 20 are the same input "
                                          r"with different labels"):
        fit(built(x, 10), x, labels)


@pytest.mark.slow
def test_a_run_builds_it_evaluates_and_records_it_like_any_run(tmp_path):
    args = ["model=zhang_expressivity", "corruption=random_labels", "trainer.max_epochs=0", "trainer.progress=false",
            "measure=norms", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = launch(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = read_metrics(tmp_path / "run" / "metrics.json")
    assert metrics["status"] == "completed" and metrics["final"]["train_acc"] == 1.0
    assert metrics["final"]["epochs"] == 0 and len(metrics["history"]) == 1 and metrics["interpolation"]["reached"]
    assert 0.0 < metrics["final"]["test_acc"] < 0.3                                  # random labels: chance
    n = metrics["data"]["train_size"]
    assert metrics["model"]["num_params"] == parameter_count(64, n, 10)
    assert metrics["measures"]["margin"] > 0 and "l2: the network has no Linear or Conv layers" in metrics["notes"]
    again = launch(args[:-1] + [f"hydra.run.dir={tmp_path / 'again'}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_metrics(tmp_path / "again" / "metrics.json")["final"] == metrics["final"]


@pytest.mark.slow
@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=5", "trainer.max_epochs=5: model=zhang_expressivity is built in closed form"),
    ("trainer.precision=bf16", "trainer.precision=bf16: model=zhang_expressivity computes in float64")])
def test_training_it_or_autocasting_it_is_one_line_exit_2_and_nothing_written(override, message, tmp_path):
    epochs = [] if override.startswith("trainer.max_epochs") else ["trainer.max_epochs=0"]
    proc = launch(["model=zhang_expressivity", override, *epochs, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert f"invalid config: {message}" in proc.stderr
    assert not (tmp_path / "run").exists()
