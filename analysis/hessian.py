"""The Hessian's spectral density of one finished run, on request:

    python -m analysis hessian RUN_DIR [--runs 10] [--steps 80] [--out DIR]

The run's trained weights (``model.pt``, so the run needs ``trainer.save_weights=true``, the default)
are loaded with ``weights_only=True``, its data and model rebuilt from the config its metrics.json
records, and the density of the Hessian of the training loss (on the run's measure subsample, w.r.t.
the BatchNorm-folded twin's parameters, as ``hessian_top_eig`` sees it) estimated by stochastic
Lanczos quadrature (gen.measures.hessian.spectral_density_nodes): ``runs`` Rademacher probes of
``steps`` Lanczos steps, each step one Hessian-vector product over the subsample.  Writes
``hessian_density.png`` (the density on a log scale, Gaussian-smoothed) and ``hessian_density.json``
(every probe's nodes θ and weights w, so the figure can be redrawn).
"""
import json
from pathlib import Path
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from analysis.figures import style

plt = style.plt
DENSITY_FILE, NODES_FILE = "hessian_density.png", "hessian_density.json"
GRID_POINTS = 2000


class RunUnusable(Exception):
    """The folder holds no completed run with saved weights (the message says which)."""


def load_run(run_dir: Path):
    """(model with the trained weights, data, config) of the completed run in ``run_dir``, on the CPU."""
    from gen import record
    from gen.data import load_data
    from gen.models import build_model
    from gen.run import FINAL_WEIGHTS

    found = record.read(run_dir)
    if found.status != record.COMPLETED:
        reason = f": {found.reason}" if found.reason else ""
        raise RunUnusable(f"{run_dir}: not a completed run ({found.status}{reason})")
    weights = Path(run_dir) / FINAL_WEIGHTS
    if not weights.is_file():
        raise RunUnusable(f"{run_dir}: no {FINAL_WEIGHTS} (the run was trained with trainer.save_weights=false)")
    cfg = OmegaConf.create(found.metrics["config"])
    data = load_data(cfg.dataset, cfg.corruption, "cpu")
    model = build_model(cfg.model, data.input_shape, data.num_outputs, f"dataset {data.name}", len(data.x_train))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model, data, cfg


def density_nodes(run_dir: Path, runs: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from gen.measures.context import MeasureContext, resolve_params
    from gen.measures.hessian import spectral_density_nodes

    model, data, cfg = load_run(run_dir)
    ctx = MeasureContext(model, None, data, SimpleNamespace(train_size=len(data.x_train)), resolve_params(cfg.measure))
    return spectral_density_nodes(ctx, runs, steps)


def draw(nodes: list[tuple[torch.Tensor, torch.Tensor]], path: Path, title: str) -> Path:
    """The smoothed density on a log axis, with the largest node marked."""
    from gen.measures.hessian import smoothed_density

    every = torch.cat([theta for theta, _ in nodes])
    low, high = every.min().item(), every.max().item()
    spread = max(high - low, 1e-12)
    sigma = spread / 200  # narrow enough to separate the outliers from the bulk at this axis' scale
    grid = torch.linspace(low - 0.05 * spread, high + 0.05 * spread, GRID_POINTS, dtype=torch.float64)
    density = smoothed_density(nodes, grid, sigma)
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    axis.semilogy(grid.numpy(), density.clamp_min(1e-12).numpy(), color="C0", lw=1.2)
    axis.axvline(high, color="C3", ls="--", lw=0.9, label=f"largest node λ ≈ {high:.4g}")
    axis.set_ylim(max(density.max().item() * 1e-8, 1e-12), density.max().item() * 3)
    axis.set_xlabel("eigenvalue λ of the training-loss Hessian")
    axis.set_ylabel("spectral density (log scale)")
    axis.set_title(title, fontsize=10)
    axis.legend(loc="upper center")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write(run_dir: Path, out: Path, runs: int, steps: int) -> list[Path]:
    nodes = density_nodes(run_dir, runs, steps)
    out.mkdir(parents=True, exist_ok=True)
    table = out / NODES_FILE
    table.write_text(json.dumps({"runs": runs, "steps": steps, "probes": [
        {"nodes": theta.tolist(), "weights": weights.tolist()} for theta, weights in nodes]}, indent=1))
    title = f"{Path(run_dir).name}: Hessian spectral density (SLQ, {runs} probes × {steps} steps)"
    return [draw(nodes, out / DENSITY_FILE, title), table]
