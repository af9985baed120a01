"""Forward passes that measures share: outputs, loss and accuracy in big batches, loss gradients,
and temporary perturbations of the parameters."""
import contextlib

import torch
import torch.nn as nn

from gen.training.objective import Objective


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).float()


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, objective: Objective,
                      batch_size: int) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) of ``model`` on (x, y)."""
    return loss_and_accuracy_of(outputs(model, x, batch_size), y, objective)


def loss_and_accuracy_of(out: torch.Tensor, y: torch.Tensor, objective: Objective) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) of outputs already computed."""
    correct = objective.correct(out, y)
    accuracy = correct.float().mean().item() if correct is not None else None
    return objective.loss(out, y).item(), accuracy


def loss_and_gradient(model: nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                      objective: Objective, batch_size: int) -> tuple[float, list[torch.Tensor], float | None]:
    """Mean loss over (x, y), its gradient with respect to ``params`` (accumulated over batches) and
    the accuracy of the same forward pass (None for regression)."""
    total = torch.zeros((), device=x.device)
    right, counted = torch.zeros((), device=x.device), True
    grads = [torch.zeros_like(p) for p in params]
    for i in range(0, len(x), batch_size):
        with torch.enable_grad():
            out = model(x[i:i + batch_size]).float()
            loss = objective.loss(out, y[i:i + batch_size], reduction="sum")
            batch_grads = torch.autograd.grad(loss, params, allow_unused=True)
        total += loss.detach()
        correct = objective.correct(out.detach(), y[i:i + batch_size])
        if correct is None:
            counted = False
        else:
            right += correct.float().sum()
        for g, b in zip(grads, batch_grads):
            if b is not None:
                g += b
    n = len(x)
    return total.item() / n, [g / n for g in grads], right.item() / n if counted else None


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
