"""gen.training.stacked: K members of a chain of Linear layers as batched products, checked against
the same K networks run one by one as nn.Modules (their outputs and autograd's gradients)."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gen.models.alexnet import AlexNetSmall
from gen.models.fc import FullyConnected
from gen.models.mlp import MLP
from gen.training.objective import Objective
from gen.training.stacked import StackedChain, chain_of


class OwnForward(nn.Sequential):
    def forward(self, x):  # not the chain its modules list: it must not be stacked
        return super().forward(x) * 2


@pytest.mark.parametrize("model, stackable", [
    (FullyConnected((1, 4, 4), 3, 5), True),
    (MLP((6,), 2, depth=3, width=4), True),
    (nn.Sequential(nn.Linear(4, 3, bias=False), nn.Sequential(nn.Tanh(), nn.Linear(3, 2))), True),
    (OwnForward(nn.Linear(4, 2)), False),
    (nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.Linear(3, 2)), False),
    (nn.Sequential(nn.Flatten(start_dim=2), nn.Linear(4, 2)), False),
    (AlexNetSmall((1, 8, 8), 2, channels=[2, 2], hidden=[4]), False),
])
def test_only_chains_of_linear_layers_and_activations_are_stacked(model, stackable):
    assert (chain_of(model) is not None) == stackable


@pytest.mark.parametrize("model", [
    FullyConnected((1, 4, 4), 3, 5),
    MLP((6,), 2, depth=2, width=4),
    nn.Sequential(nn.Linear(6, 5, bias=False), nn.Tanh(), nn.Sequential(nn.Linear(5, 3), nn.GELU())),
    nn.Sequential(nn.Linear(6, 5), nn.ReLU(inplace=True), nn.Linear(5, 5), nn.LeakyReLU(0.1, inplace=True),
                  nn.Linear(5, 5), nn.ELU(), nn.Linear(5, 5), nn.SiLU(), nn.Linear(5, 5), nn.Sigmoid(),
                  nn.Linear(5, 5), nn.Softplus(beta=2.0), nn.Identity(), nn.Linear(5, 3)),
], ids=["fc", "mlp", "no bias, nested", "every activation"])
def test_stacked_outputs_and_gradients_equal_each_members_own(model):
    torch.manual_seed(0)
    members = [copy.deepcopy(model).double() for _ in range(3)]
    for m in members[1:]:
        for p in m.parameters():
            nn.init.normal_(p)   # every member its own weights
    input_shape = (6,) if isinstance(model[0], nn.Linear) or isinstance(model, MLP) else (1, 4, 4)
    x = torch.randn(3, 7, *input_shape, dtype=torch.float64)
    y = torch.randint(0, members[0](x[0]).shape[-1], (3, 7))
    stacked = [torch.stack(same).detach().requires_grad_() for same in zip(*[list(m.parameters()) for m in members])]
    chain = StackedChain(members[0], chain_of(members[0]))
    outputs, tape = chain.forward(stacked, x)
    outputs.requires_grad_()
    loss = F.cross_entropy(outputs.flatten(0, 1), y.flatten(), reduction="none").view(3, -1).mean(1).sum()
    for s, grad in zip(stacked, chain.backward(stacked, tape, torch.autograd.grad(loss, outputs)[0])):
        s.grad = grad
    for k, member in enumerate(members):
        out = member(x[k])
        torch.testing.assert_close(outputs[k], out, rtol=1e-12, atol=1e-12)
        F.cross_entropy(out, y[k]).backward()
        for p, s in zip(member.parameters(), stacked):
            torch.testing.assert_close(s.grad[k], p.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["cross_entropy", "squared", "binary", "mse"])
def test_each_members_loss_and_its_gradient_equal_its_own_loss_through_autograd(kind):
    """Objective.member_losses_and_grad (cross-entropy by hand, the rest by autograd) against each
    member's own mean loss and autograd's gradient of it: cross-entropy bit for bit in float32 (as a run
    trains), the others to a float's rounding (their graph takes the mean over the batch in another place)."""
    torch.manual_seed(0)
    members, batch, classes = 3, 7, 1 if kind in ("binary", "mse") else 5
    outputs = torch.randn(members, batch, classes) * 3
    targets = torch.randint(0, 2 if classes == 1 else classes, (members, batch))
    if kind == "mse":
        targets = torch.randn(members, batch, 1)  # regression: one output, targets [N, 1]
    objective = Objective(kind)
    losses, grad = objective.member_losses_and_grad(outputs, targets)
    for k in range(members):
        own = outputs[k].detach().requires_grad_()
        loss = objective.loss(own, targets[k])
        loss.backward()
        torch.testing.assert_close(losses[k], loss.detach(), rtol=1e-6, atol=0)
        exact = kind == "cross_entropy"
        torch.testing.assert_close(grad[k], own.grad, rtol=0 if exact else 1e-6, atol=0 if exact else 1e-9)
