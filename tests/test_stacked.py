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
], ids=["fc", "mlp", "no bias, nested"])
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
    outputs = StackedChain(members[0], chain_of(members[0]))(stacked, x)
    F.cross_entropy(outputs.flatten(0, 1), y.flatten(), reduction="none").view(3, -1).mean(1).sum().backward()
    for k, member in enumerate(members):
        out = member(x[k])
        torch.testing.assert_close(outputs[k], out, rtol=1e-12, atol=1e-12)
        F.cross_entropy(out, y[k]).backward()
        for p, s in zip(member.parameters(), stacked):
            torch.testing.assert_close(s.grad[k], p.grad, rtol=1e-12, atol=1e-12)
