"""Certified PAC-Bayes bounds on a stochastic network (Dziugaite & Roy 2017, "Computing nonvacuous
generalization bounds for deep (stochastic) neural networks with many more parameters than training data";
the kl-inverse certificate as Pérez-Ortiz et al. 2021, "Tighter risk certificates for neural networks", compute
it).  Not J's PAC-Bayes *flatness* measures (``pacbayes.py``), which size one isotropic σ by an accuracy drop
and are not bounds; these optimise a posterior against a bound and certify its value.

The bound.  Q = N(μ, diag s²) over every trainable parameter, P = N(w⁰, λI) centred at the weights at
initialisation.  With probability ≥ 1 − δ over the m training samples, for every Q and every j ∈ {1, 2, …}
at once (a union bound with weights 6/(π²j²) over the prior grid λ_j = c·exp(−j/b)),

    kl(ê_Q ‖ e_Q) ≤ B_RE = [KL(Q‖P_j) + 2·log j + log(π²m / 6δ)] / (m − 1),

ê_Q the stochastic network's training 0-1 error, e_Q its expected error on unseen data, kl the Bernoulli KL;
so e_Q ≤ kl⁻¹(ê_Q, B_RE), kl⁻¹(q, c) = max{p ∈ [q, 1] : kl(q‖p) ≤ c}.

1. Optimisation (D&R's Sec. 3).  μ starts at the trained weights w, s at |w|, λ at
   ``certified_prior_variance_init``; RMSprop (``certified_lr``) takes ``certified_steps`` steps on
   minibatches of ``certified_batch_size`` of the surrogate objective
       CE(f_{μ + s⊙ε}(x), y) / log 2 + √(B_RE / 2),     ε ~ N(0, I) drawn afresh each step,
   the cross-entropy over log 2 being an upper bound on the 0-1 error and √(B/2) Pinsker's relaxation of the
   kl-inverse, with j = b·log(c/λ) taken as a real number (≥ 1) while optimising.
2. The prior variance is then put on the grid: j rounded down and up, the one with the smaller bound kept
   (both are covered by the union bound).
3. Certification.  ê_Q is an expectation over Q, estimated by n = ``certified_mc_draws`` draws of the
   weights, each network's error on the whole sample; by Langford & Caruana's sample-convergence bound, with
   probability ≥ 1 − δ′,  ê_Q ≤ ê_n⁺ = kl⁻¹(ê_n, log(2/δ′) / n).  The certificate is kl⁻¹(ê_n⁺, B_RE), holding
   with probability ≥ 1 − δ − δ′ (D&R: δ = 0.025, δ′ = 0.01, n = 150,000).

The sample is the measures' subsample (``measure.params.max_samples`` of the training set): m is its size;
any i.i.d. subsample gives a valid bound, a smaller one a looser bound.  The stochastic network's test error
is the mean over the same n draws on the test set (its first ``max_samples``; an estimate, not part of the
certificate).  Every δ, λ, j,
m and n goes into the run's notes.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from gen.measures.registry import NotApplicable, measure

KL_INVERSE_ITERATIONS = 100  # bisection halvings: the bracket is below float64's resolution long before
RMSPROP_DECAY, RMSPROP_EPS = 0.99, 1e-8   # torch.optim.RMSprop's defaults


# ---- closed forms ---------------------------------------------------------------------------------------
def kl_bernoulli(q: float, p: float) -> float:
    """kl(q‖p) = q log(q/p) + (1 − q) log((1 − q)/(1 − p)), with 0·log 0 = 0 (∞ where p excludes q)."""
    total = 0.0
    for a, b in ((q, p), (1 - q, 1 - p)):
        if a > 0:
            if b <= 0:
                return math.inf
            total += a * math.log(a / b)
    return total


def kl_inverse(q: float, c: float) -> float:
    """max{p ∈ [q, 1] : kl(q‖p) ≤ c}, by bisection; returns the bracket's upper end, so never below the exact
    value (a certificate may only err upwards)."""
    if not 0 <= q <= 1:
        raise ValueError(f"q = {q} is not in [0, 1]")
    if c < 0:
        raise ValueError(f"c = {c} < 0")
    if kl_bernoulli(q, 1.0) <= c:
        return 1.0
    low, high = q, 1.0  # kl(q‖·) increases on [q, 1]: kl(q‖low) ≤ c < kl(q‖high)
    for _ in range(KL_INVERSE_ITERATIONS):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if kl_bernoulli(q, middle) <= c:
            low = middle
        else:
            high = middle
    return high


def gaussian_kl(mean_q: torch.Tensor, var_q: torch.Tensor, mean_p: torch.Tensor, var_p) -> torch.Tensor:
    """KL(N(mean_q, diag var_q) ‖ N(mean_p, diag var_p)) = ½ Σ [var_q/var_p + (mean_q − mean_p)²/var_p − 1
    + log(var_p/var_q)] (var_p a tensor or a number; differentiable)."""
    var_p = torch.as_tensor(var_p, dtype=var_q.dtype, device=var_q.device)
    ratio = var_q / var_p
    return 0.5 * (ratio + (mean_q - mean_p) ** 2 / var_p - 1 - torch.log(ratio)).sum()


def prior_index(prior_variance: float, b: float, c: float) -> float:
    """j of λ = c·exp(−j/b): j = b·log(c/λ) (a real number before it is put on the grid)."""
    return b * math.log(c / prior_variance)


def prior_variance(j: int, b: float, c: float) -> float:
    """λ_j = c·exp(−j/b), the prior grid."""
    return c * math.exp(-j / b)


def union_penalty(j: float) -> float:
    """What choosing λ_j from the grid costs: prior j gets δ·6/(π²j²), so log(1/δ_j) = 2 log j + log(π²/6δ);
    2·log j is the part that depends on j."""
    if j < 1:
        raise ValueError(f"j = {j} < 1: the grid starts at j = 1")
    return 2 * math.log(j)


def kl_budget(kl: float, m: int, delta: float, j: float) -> float:
    """B_RE = [KL + 2 log j + log(π²m / 6δ)] / (m − 1): the right-hand side of the PAC-Bayes-kl bound."""
    return (kl + union_penalty(j) + math.log(math.pi ** 2 * m / (6 * delta))) / (m - 1)


def sample_convergence_bound(error: float, draws: int, delta_prime: float) -> float:
    """An upper bound, with probability ≥ 1 − δ′, on the expected error of a stochastic network whose mean
    error over ``draws`` independent weight draws is ``error``: kl⁻¹(error, log(2/δ′)/draws)."""
    return kl_inverse(error, math.log(2 / delta_prime) / draws)


# ---- the posterior ---------------------------------------------------------------------------------------
@dataclass
class Certificate:
    bound: float
    kl: float
    train_error: float            # ê_n: the mean over the draws
    train_error_bound: float      # ê_n⁺: its sample-convergence upper bound
    test_error: float | None
    prior_variance: float         # λ_j on the grid
    j: int
    m: int
    budget: float                 # B_RE
    objective_start: float
    objective_end: float


class Posterior:
    """μ and log s of every trainable parameter and log λ, as leaf tensors an optimiser moves."""

    def __init__(self, names, trained, initial, prior_variance_init: float):
        self.names = names
        self.mean = [w.detach().clone().requires_grad_(True) for w in trained]
        # s = |w|, as D&R; a weight that is exactly 0 gets the smallest positive float instead
        self.log_std = [w.detach().abs().clamp_min(torch.finfo(w.dtype).tiny).log().requires_grad_(True)
                        for w in trained]
        self.log_prior_variance = torch.tensor(math.log(prior_variance_init), dtype=trained[0].dtype,
                                               device=trained[0].device, requires_grad=True)
        self.prior_mean = [w.detach() for w in initial]

    def leaves(self) -> list[torch.Tensor]:
        return [*self.mean, *self.log_std, self.log_prior_variance]

    def draw(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {name: mu + log_s.exp() * torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
                for name, mu, log_s in zip(self.names, self.mean, self.log_std)}

    def kl(self, prior_variance, dtype=None) -> torch.Tensor:
        """KL(Q‖N(w⁰, λI)) summed over every parameter (in ``dtype`` if given)."""
        total = 0.0
        for mu, log_s, w0 in zip(self.mean, self.log_std, self.prior_mean):
            if dtype is not None:
                mu, log_s, w0 = mu.to(dtype), log_s.to(dtype), w0.to(dtype)
            total = total + gaussian_kl(mu, (2 * log_s).exp(), w0, prior_variance)
        return total


# ---- the computation -------------------------------------------------------------------------------------
def certify(ctx) -> Certificate:
    """The optimised posterior's certificate (computed once per run, shared by the certified_* measures)."""
    def compute():
        if ctx.data.task != "classification":
            raise NotApplicable("the certified bound bounds a classifier's 0-1 error: it needs a classification task")
        p = ctx.params
        names = [name for name, _ in ctx.parameters()]
        posterior = Posterior(names, [w for _, w in ctx.parameters()], ctx.init_parameters(),
                              p.certified_prior_variance_init)
        x, y = ctx.sample
        m = len(y)
        if m < 2:
            raise NotApplicable(f"the bound divides by m − 1: the sample has m = {m}")
        start, end = _optimise(ctx, posterior, x, y)
        certificate = _certificate(ctx, posterior, x, y, start, end)
        ctx.note(_describe(p, certificate))
        return certificate
    return ctx.shared("certified_bound", compute)


def _objective(ctx, posterior: Posterior, x, y, generator, m: int) -> torch.Tensor:
    p = ctx.params
    outputs = functional_call(ctx.twin, posterior.draw(generator), (x,))
    surrogate = F.cross_entropy(outputs, y) / math.log(2)
    prior_variance = posterior.log_prior_variance.exp()
    j = (p.certified_prior_b * (math.log(p.certified_prior_c) - posterior.log_prior_variance)).clamp_min(1.0)
    budget = (posterior.kl(prior_variance) + 2 * torch.log(j)
              + math.log(math.pi ** 2 * m / (6 * p.certified_delta))) / (m - 1)
    return surrogate + torch.sqrt(budget / 2)


def rmsprop_step(leaves, gradients, averages, lr: float, decay: float = RMSPROP_DECAY, eps: float = RMSPROP_EPS):
    """One RMSprop step in place: v ← decay·v + (1 − decay)·g², θ ← θ − lr·g/(√v + eps) (torch.optim.RMSprop's
    rule and defaults, written out: constructing a torch optimiser imports torch._dynamo, seconds of start-up)."""
    for leaf, gradient, average in zip(leaves, gradients, averages):
        average.mul_(decay).addcmul_(gradient, gradient, value=1 - decay)
        leaf.addcdiv_(gradient, average.sqrt().add_(eps), value=-lr)


def _optimise(ctx, posterior: Posterior, x, y) -> tuple[float, float]:
    """RMSprop on the surrogate objective; (its value at the first step, the mean of its last tenth)."""
    p = ctx.params
    m = len(y)
    leaves = posterior.leaves()
    averages = [torch.zeros_like(leaf) for leaf in leaves]
    noise = ctx.generator("certified_bound_noise")
    batches = ctx.generator("certified_bound_batches")
    values = []
    for _ in range(p.certified_steps):
        index = torch.randint(0, m, (min(p.certified_batch_size, m),), generator=batches, device=x.device)
        loss = _objective(ctx, posterior, x[index], y[index], noise, m)
        gradients = torch.autograd.grad(loss, leaves)
        with torch.no_grad():
            rmsprop_step(leaves, gradients, averages, p.certified_lr)
        values.append(loss.item())
    if not values:
        return math.nan, math.nan
    tail = values[-max(1, len(values) // 10):]
    return values[0], sum(tail) / len(tail)


@torch.no_grad()
def _errors(ctx, weights: dict, x, y) -> float:
    wrong = 0
    for start in range(0, len(y), ctx.params.batch_size):
        outputs = functional_call(ctx.twin, weights, (x[start:start + ctx.params.batch_size],))
        wrong += (outputs.argmax(1) != y[start:start + ctx.params.batch_size]).sum().item()
    return wrong / len(y)


def _certificate(ctx, posterior: Posterior, x, y, start: float, end: float) -> Certificate:
    p = ctx.params
    m = len(y)
    b, c = p.certified_prior_b, p.certified_prior_c
    draws_generator = ctx.generator("certified_bound_draws")
    x_test, y_test = ctx.data.x_test[:p.max_samples], ctx.data.y_test[:p.max_samples]
    train_errors, test_errors = [], []
    with torch.no_grad():
        for _ in range(p.certified_mc_draws):
            weights = posterior.draw(draws_generator)
            train_errors.append(_errors(ctx, weights, x, y))
            if len(x_test):
                test_errors.append(_errors(ctx, weights, x_test, y_test))
        train_error = sum(train_errors) / len(train_errors)
        upper = sample_convergence_bound(train_error, p.certified_mc_draws, p.certified_delta_prime)
        j_real = max(prior_index(posterior.log_prior_variance.exp().item(), b, c), 1.0)
        best = None
        for j in sorted({max(1, math.floor(j_real)), max(1, math.ceil(j_real))}):
            kl = posterior.kl(prior_variance(j, b, c), dtype=torch.float64).item()
            budget = kl_budget(kl, m, p.certified_delta, j)
            candidate = (kl_inverse(upper, budget), kl, budget, j)
            if best is None or candidate[0] < best[0]:
                best = candidate
    bound, kl, budget, j = best
    test_error = sum(test_errors) / len(test_errors) if test_errors else None
    return Certificate(bound, kl, train_error, upper, test_error, prior_variance(j, b, c), j, m, budget, start, end)


def _describe(p, cert: Certificate) -> str:
    return (f"certified PAC-Bayes bound (Dziugaite & Roy 2017) {cert.bound:.4g}, holding with probability "
            f"≥ 1 − δ − δ′ = {1 - p.certified_delta - p.certified_delta_prime:g}: δ = {p.certified_delta:g} "
            f"(PAC-Bayes-kl), δ′ = {p.certified_delta_prime:g} (Monte Carlo, n = {p.certified_mc_draws} weight "
            f"draws); m = {cert.m} training samples; prior N(w⁰, λI) with λ = c·exp(−j/b) = {cert.prior_variance:.4g} "
            f"(c = {p.certified_prior_c:g}, b = {p.certified_prior_b:g}, j = {cert.j}); KL = {cert.kl:.6g}, "
            f"B_RE = {cert.budget:.4g}; stochastic train error {cert.train_error:.4g} (≤ {cert.train_error_bound:.4g} "
            f"with 1 − δ′); posterior optimised by {p.certified_steps} RMSprop steps (lr {p.certified_lr:g}, batch "
            f"{p.certified_batch_size}), objective {cert.objective_start:.4g} → {cert.objective_end:.4g}")


# ---- the measures ------------------------------------------------------------------------------------------
@measure("certified_bound")
def certified_bound(ctx) -> float:
    return certify(ctx).bound


@measure("certified_kl")
def certified_kl(ctx) -> float:
    return certify(ctx).kl


@measure("certified_stochastic_train_error")
def certified_stochastic_train_error(ctx) -> float:
    return certify(ctx).train_error


@measure("certified_stochastic_train_error_bound")
def certified_stochastic_train_error_bound(ctx) -> float:
    return certify(ctx).train_error_bound


@measure("certified_stochastic_test_error")
def certified_stochastic_test_error(ctx) -> float:
    test_error = certify(ctx).test_error
    if test_error is None:
        raise NotApplicable("the dataset has no test samples")
    return test_error


@measure("certified_prior_variance")
def certified_prior_variance(ctx) -> float:
    return certify(ctx).prior_variance
