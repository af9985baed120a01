"""Forward passes that measures share: outputs, loss and accuracy in big batches, loss gradients,
and temporary perturbations of the parameters."""
import contextlib

import torch
import torch.nn as nn

from gen.objective import Objective


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).float()


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, objective: Objective,
                      batch_size: int) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) of ``model`` on (x, y)."""
    out = outputs(model, x, batch_size)
    correct = objective.correct(out, y)
    accuracy = correct.float().mean().item() if correct is not None else None
    return objective.loss(out, y).item(), accuracy


def loss_and_gradient(model: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                      objective: Objective, batch_size: int) -> tuple[float, list[torch.Tensor]]:
    """Mean loss over (x, y) and its gradient with respect to ``params``, accumulated over batches."""
    total = torch.zeros((), device=x.device)
    grads = [torch.zeros_like(p) for p in params]
    for i in range(0, len(x), batch_size):
        with torch.enable_grad():
            loss = objective.loss(model(x[i:i + batch_size]).float(), y[i:i + batch_size], reduction="sum")
            batch_grads = torch.autograd.grad(loss, params, allow_unused=True)
        total += loss.detach()
        for g, b in zip(grads, batch_grads):
            if b is not None:
                g += b
    n = len(x)
    return total.item() / n, [g / n for g in grads]


def trainable_parameters(model: nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@contextlib.contextmanager
def perturbed(params: list[torch.Tensor], deltas: list[torch.Tensor]):
    """Parameters moved by ``deltas`` inside the block, restored exactly after it."""
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p, d in zip(params, deltas):
                p.add_(d)
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
