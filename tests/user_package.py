"""A researcher's own package and config folder, written into a temporary folder outside the repository:
what tests/test_user_code.py runs gen on (a model, a dataset, a corruption, an optimizer, measures, and
broken variants of each)."""
import textwrap
from pathlib import Path

PACKAGE = "labpkg"

FILES = {
    "labpkg/__init__.py": "",
    "labpkg/nets.py": '''
        import math
        import torch.nn as nn

        class TwoLayer(nn.Module):
            def __init__(self, input_shape, num_outputs, hidden: int = 16):
                super().__init__()
                self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                                         nn.Linear(hidden, num_outputs))

            def forward(self, x):
                return self.net(x)

        class NoShape(nn.Module):          # breaks the contract: gen passes input_shape and num_outputs
            def __init__(self, hidden: int = 16):
                super().__init__()

        class NeedsDepth(TwoLayer):        # a required parameter the YAML does not give
            def __init__(self, input_shape, num_outputs, depth: int, hidden: int = 16):
                super().__init__(input_shape, num_outputs, hidden)

        class WrongWidth(TwoLayer):        # one score too many
            def __init__(self, input_shape, num_outputs, hidden: int = 16):
                super().__init__(input_shape, num_outputs + 1, hidden)
    ''',
    "labpkg/data.py": '''
        import torch

        def blobs(num_train: int, num_test: int, dim: int = 6, data_seed: int = 0):
            g = torch.Generator().manual_seed(data_seed)
            centres = 3 * torch.randn(3, dim, generator=g)
            def draw(n):
                y = torch.arange(n) % 3
                return centres[y] + torch.randn(n, dim, generator=g), y
            (x_train, y_train), (x_test, y_test) = draw(num_train), draw(num_test)
            return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

        def not_tensors(num_train: int = 10):
            return [1, 2, 3]
    ''',
    "labpkg/corrupt.py": '''
        import dataclasses
        import torch

        def shift_labels(data, count: int = 5, seed: int = 0):
            """The first ``count`` training labels moved to the next class."""
            y = data.y_train.clone()
            y[:count] = (y[:count] + 1) % data.num_classes
            return dataclasses.replace(data, y_train=y, corrupted=y != data.y_train)
    ''',
    "labpkg/optim.py": '''
        import torch

        class SignSGD(torch.optim.Optimizer):
            def __init__(self, params, lr: float = 0.01):
                super().__init__(params, {"lr": lr})

            @torch.no_grad()
            def step(self, closure=None):
                for group in self.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.add_(p.grad.sign(), alpha=-group["lr"])
    ''',
    "labpkg/measures.py": '''
        import torch
        from gen.measures import MeasureContext, NotApplicable, measure

        @measure("lab_abs_sum")
        def lab_abs_sum(ctx: MeasureContext) -> float:
            """Σ|w| over the trained network's parameters."""
            return sum(p.detach().abs().sum() for p in ctx.model.parameters()).item()

        @measure("lab_fails")
        def lab_fails(ctx):
            raise RuntimeError("boom")

        @measure("lab_none")
        def lab_none(ctx):
            return None

        @measure("lab_string")
        def lab_string(ctx):
            return "0.5"

        @measure("lab_vector")
        def lab_vector(ctx):
            return torch.ones(3)

        @measure("lab_scalar_tensor")
        def lab_scalar_tensor(ctx):
            return torch.tensor([2.5])

        @measure("lab_not_here")
        def lab_not_here(ctx):
            raise NotApplicable("not for this network")
    ''',
    "labpkg/clash.py": '''
        from gen.measures import measure

        @measure("margin")
        def my_margin(ctx):
            return 1.0
    ''',
    "labpkg/broken.py": '''
        import a_dependency_nobody_installed
    ''',
    "conf/model/lab_net.yaml": "_target_: labpkg.nets.TwoLayer\nname: lab_net\nhidden: 16\n",
    "conf/model/lab_noshape.yaml": "_target_: labpkg.nets.NoShape\nname: lab_noshape\nhidden: 16\n",
    "conf/model/lab_needs_depth.yaml": "_target_: labpkg.nets.NeedsDepth\nname: lab_needs_depth\nhidden: 16\n",
    "conf/model/lab_wrong_width.yaml": "_target_: labpkg.nets.WrongWidth\nname: lab_wrong_width\nhidden: 16\n",
    "conf/model/lab_missing.yaml": "_target_: labpkg.nets.Missing\nname: lab_missing\n",
    "conf/dataset/lab_blobs.yaml": "_target_: labpkg.data.blobs\nname: lab_blobs\nnum_train: 90\nnum_test: 60\n"
                                   "data_seed: 0\ntrain_size: null\n",
    "conf/dataset/lab_not_tensors.yaml": "_target_: labpkg.data.not_tensors\nname: lab_not_tensors\n",
    "conf/corruption/lab_shift.yaml": "_target_: labpkg.corrupt.shift_labels\nname: lab_shift\ncount: 5\nseed: 0\n",
    "conf/optimizer/lab_sign.yaml": "_target_: labpkg.optim.SignSGD\n_partial_: true\nname: lab_sign\nlr: 0.01\n",
    "conf/measure/lab.yaml": "defaults:\n  - params: default\n  - _self_\nname: lab\nmodules: [labpkg.measures]\n"
                             "names: [num_params, margin, l2_path, distance_from_init, lab_abs_sum]\n",
}


def write_user_package(root: Path) -> Path:
    """The package (``root/labpkg``, to put on PYTHONPATH) and its config folder (``root/conf``)."""
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root
