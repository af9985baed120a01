"""Zhang et al. 2017's finite-sample expressivity construction (their Theorem 1), built in closed form.

A depth-2 ReLU network c(x) = Σ_j w_j · max(a·x − b_j, 0) with one hidden unit per training sample
fits any labelling of n distinct points in d dimensions: project every x onto a direction a so that
the projections z_i = a·x_i are distinct, sort them, put the biases between them
(b_1 < z_1 < b_2 < z_2 < … < b_n < z_n), and the matrix A_ij = max(z_i − b_j, 0) is lower triangular
with a positive diagonal, so A w = y has a solution.  Weights: a (d), b (n), w (n) — Zhang's 2n + d
for one output.  Classes: one output per class, fitted to one-hot targets with the same a and b, so
d + n + n·C weights; the prediction is the argmax, 100 % train accuracy on any labelling.

Nothing is trained: :func:`fit` computes the weights from (x_train, y_train), once, before the run's
evaluation (gen.run; ``trainer.max_epochs=0``), and the run is recorded like any other.

Precision.  n points on a line have gaps down to ~ range / n², so the slopes of c reach ~ n² / range
and c(x) is a sum of large terms that cancel: the network computes in float64 (its weights are
float64; inputs are cast in, outputs cast back).  Of ``directions`` seeded random directions the one
whose smallest gap between projections, relative to their range, is largest is used.  Each bias sits
a quarter of the way into its gap (b_{i+1} = z_i + ¼(z_{i+1} − z_i)): the triangular solve then
becomes the recurrence s_{i+1} = Δy_i / (¾ g_i) − ⅓ s_i for the slope s_i = Σ_{j≤i} w_j, in which an
error shrinks by ⅓ per point instead of growing (midpoints would give factor −1: a zigzag that
accumulates).  A is never formed (n² numbers); the recurrence is its forward substitution.
"""
import math

import torch
import torch.nn as nn

from gen.config import ConfigError

NAME = "zhang_expressivity"
KNOT_FRACTION = 0.25   # where each bias sits inside its gap (see the module docstring)
FIT_TOLERANCE = 1e-6   # the largest error on a training target the construction accepts
_DAMPING = KNOT_FRACTION / (1 - KNOT_FRACTION)
_RECURRENCE_TERMS = math.ceil(math.log(2.0 ** -80) / math.log(_DAMPING))  # beyond: below float64's resolution


class ZhangExpressivity(nn.Module):
    """c(x) = max(a·x − b, 0) @ w, in float64; ``hidden_units`` is the training set's size (gen.models)."""
    sized_by_train_set = True

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, hidden_units: int, directions: int):
        super().__init__()
        dim = math.prod(input_shape)
        self.direction = nn.Parameter(torch.randn(dim, dtype=torch.float64) / math.sqrt(dim))     # a
        self.bias = nn.Parameter(torch.zeros(hidden_units, dtype=torch.float64))                  # b
        self.output = nn.Parameter(torch.zeros(hidden_units, num_outputs, dtype=torch.float64))   # w
        # further seeded directions for fit() to choose from; not weights, so not in the state dict
        self.candidates = torch.randn(directions - 1, dim, dtype=torch.float64) / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).double() @ self.direction
        out = torch.relu(z[:, None] - self.bias) @ self.output
        return out.to(x.dtype if x.is_floating_point() else torch.float32)


@torch.no_grad()
def fit(model: ZhangExpressivity, x_train: torch.Tensor, y_train: torch.Tensor) -> None:
    """Set ``model``'s weights so that it reproduces every training target (one-hot for classes).
    ConfigError where two samples are the same input with different labels: no function fits them."""
    inputs = x_train.flatten(1).double()
    targets = _targets(y_train, model.output.shape[1])
    distinct, first = _distinct_inputs(inputs, targets)
    direction = _best_direction(torch.cat([model.direction[None], model.candidates.to(inputs.device)]), distinct)
    z = distinct @ direction
    order = torch.argsort(z)
    biases, weights = interpolate(z[order], targets[first][order])
    count = len(biases)
    model.direction.copy_(direction)
    model.bias[:count] = biases
    model.bias[count:] = z.max() + 1      # hidden units left over by duplicate inputs: never active
    model.output[:count] = weights
    model.output[count:] = 0
    _check_fit(model, inputs, targets)


def interpolate(z: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Biases b and output weights w of Σ_j w_j max(z − b_j, 0) through (z_i, targets_i), z sorted
    and distinct (float64)."""
    gaps = torch.diff(z)
    first_gap = gaps.mean() if len(gaps) else z.new_tensor(1.0)
    widths = torch.cat([first_gap[None], gaps])                           # the gap below each z_i
    biases = z - (1 - KNOT_FRACTION) * widths                              # z_i − b_i = ¾ of its gap
    steps = torch.diff(targets, dim=0, prepend=torch.zeros_like(targets[:1]))
    drive = steps / ((1 - KNOT_FRACTION) * widths[:, None])
    slopes = torch.zeros_like(drive)                                       # s_i = drive_i − ⅓ s_{i−1}
    for m in range(min(_RECURRENCE_TERMS, len(z))):
        slopes[m:] += (-_DAMPING) ** m * drive[:len(z) - m]
    weights = torch.diff(slopes, dim=0, prepend=torch.zeros_like(slopes[:1]))
    return biases, weights


def parameter_count(input_dim: int, train_size: int, outputs: int) -> int:
    """d + n + n·C: a, b and w; Zhang's 2n + d for one output."""
    return input_dim + train_size + train_size * outputs


def check_trainer(trainer_cfg) -> None:
    """No gradient steps, and no bf16 autocast around a network that needs float64 (see the docstring)."""
    if trainer_cfg.max_epochs != 0:
        raise ConfigError("trainer.max_epochs", trainer_cfg.max_epochs,
                          f"model={NAME} is built in closed form for its training set and takes no gradient "
                          f"steps: set trainer.max_epochs=0")
    if trainer_cfg.precision != "32":
        raise ConfigError("trainer.precision", trainer_cfg.precision, f"model={NAME} computes in float64: use "
                                                                      f"trainer.precision=32")


def _targets(y: torch.Tensor, outputs: int) -> torch.Tensor:
    if y.is_floating_point():                                              # regression: [N, 1]
        return y.double().view(len(y), -1)
    return torch.nn.functional.one_hot(y, outputs).double()


def _distinct_inputs(inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct inputs, and the index of each one's first sample."""
    distinct, inverse = torch.unique(inputs, dim=0, return_inverse=True)
    samples = torch.arange(len(inputs), device=inputs.device)
    first = torch.full((len(distinct),), len(inputs), device=inputs.device).scatter_reduce(0, inverse, samples, "amin")
    conflicting = (targets != targets[first[inverse]]).any(1).nonzero().flatten()
    if len(conflicting):
        other = int(conflicting[0])
        raise ConfigError("model", NAME, f"training samples {int(first[inverse[other]])} and {other} are the same "
                                         f"input with different labels ({len(conflicting)} such sample(s)): no "
                                         f"function fits them; use a training set without conflicting duplicates")
    return distinct, first


def _best_direction(directions: torch.Tensor, distinct: torch.Tensor) -> torch.Tensor:
    """The direction whose smallest gap between sorted projections, relative to their range, is largest."""
    projected = torch.sort(distinct @ directions.T, dim=0).values          # [points, directions]
    if len(projected) < 2:
        return directions[0]
    spread = (projected[-1] - projected[0]).clamp_min(torch.finfo(torch.float64).tiny)
    score = torch.diff(projected, dim=0).min(0).values / spread
    best = int(torch.argmax(score))
    if score[best] <= 0:
        raise ConfigError("model.directions", len(directions), "two distinct training inputs project to the same "
                                                               "point along every direction drawn: draw more")
    return directions[best]


def _check_fit(model: ZhangExpressivity, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Refuse a construction float64 could not carry (it would not be the theorem's network)."""
    error = max((_forward64(model, inputs[i:i + 1024]) - targets[i:i + 1024]).abs().max().item()
                for i in range(0, len(inputs), 1024))
    if not error <= FIT_TOLERANCE:
        raise RuntimeError(f"the closed-form network misses its training targets by {error:.3g} "
                           f"(> {FIT_TOLERANCE}): the projections are too close together for float64")


def _forward64(model: ZhangExpressivity, inputs: torch.Tensor) -> torch.Tensor:
    return torch.relu((inputs @ model.direction)[:, None] - model.bias) @ model.output
