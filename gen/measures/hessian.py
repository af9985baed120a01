"""Curvature of the training loss (objective on the subsample, w.r.t. the folded twin's trainable
parameters), from torch.func: Hessian-vector products for Hutchinson's trace estimate and for
the top eigenvalue by power iteration, and the Gauss–Newton diagonal for minimum sharpness."""
import torch
import torch.func as tf

from gen.measures.registry import measure

_JACOBIAN_BUDGET = 2 ** 26  # floats held by one chunk of per-sample Jacobians (256 MB)


def _trainable(ctx) -> tuple[list[str], tuple[torch.Tensor, ...]]:
    named = ctx.parameters()
    return [name for name, _ in named], tuple(p.detach() for _, p in named)


def hessian_vector_product(ctx, vector: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """H·v for the mean loss over the subsample, accumulated over batches."""
    names, params = _trainable(ctx)
    x, y = ctx.sample
    objective, twin = ctx.objective, ctx.twin

    total = tuple(torch.zeros_like(p) for p in params)
    for i in range(0, len(x), ctx.params.batch_size):
        xb, yb = x[i:i + ctx.params.batch_size], y[i:i + ctx.params.batch_size]

        def batch_loss(ps):
            out = tf.functional_call(twin, dict(zip(names, ps)), (xb,))
            return objective.loss(out.float(), yb, reduction="sum")

        _, product = tf.jvp(tf.grad(batch_loss), (params,), (vector,))
        total = tuple(t + h for t, h in zip(total, product))
    return tuple(t / len(x) for t in total)


def _dot(a, b) -> float:
    return sum((u * v).sum() for u, v in zip(a, b)).item()


def hutchinson_trace(ctx, probes: int) -> float:
    """tr(H) ≈ mean over Rademacher v of vᵀHv."""
    _, params = _trainable(ctx)
    generator = ctx.generator("hutchinson")
    estimates = []
    for _ in range(probes):
        v = tuple(torch.randint(0, 2, p.shape, generator=generator, device=p.device).to(p.dtype) * 2 - 1
                  for p in params)
        estimates.append(_dot(v, hessian_vector_product(ctx, v)))
    return sum(estimates) / len(estimates)


def top_eigenvalue(ctx, iterations: int, tolerance: float) -> float:
    """The eigenvalue of largest magnitude (the top one at a minimum), by power iteration."""
    _, params = _trainable(ctx)
    generator = ctx.generator("power_iteration")
    v = tuple(torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype) for p in params)
    norm = _dot(v, v) ** 0.5
    v = tuple(t / norm for t in v)
    eigenvalue = 0.0
    for _ in range(iterations):
        hv = hessian_vector_product(ctx, v)
        previous, eigenvalue = eigenvalue, _dot(v, hv)
        norm = _dot(hv, hv) ** 0.5
        if norm == 0:
            return 0.0
        v = tuple(t / norm for t in hv)
        if abs(eigenvalue - previous) <= tolerance * abs(eigenvalue):
            break
    return eigenvalue


def gauss_newton_diagonal(ctx) -> dict[str, torch.Tensor]:
    """diag of the Gauss–Newton Hessian of the mean loss, per trainable parameter.

    Per example with outputs z and Jacobian J_k = ∂z_k/∂θ: cross-entropy Σ_k p_k J_k² − (Σ_k p_k J_k)²
    (p = softmax z); one-logit BCE/2 ½·p(1 − p)·J²; MSE/2 Σ_k J_k².
    """
    names, params = _trainable(ctx)
    x, _ = ctx.sample
    twin, kind = ctx.twin, ctx.objective.kind

    def one_output(ps, sample):
        return tf.functional_call(twin, dict(zip(names, ps)), (sample[None],))[0].float()

    per_sample_jacobian = tf.vmap(tf.jacrev(one_output), in_dims=(None, 0))
    width = one_output(params, x[0]).numel()
    chunk = max(1, min(ctx.params.batch_size, _JACOBIAN_BUDGET // (width * sum(p.numel() for p in params))))
    totals = [torch.zeros_like(p) for p in params]
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        with torch.no_grad():
            logits = tf.functional_call(twin, dict(zip(names, params)), (xb,)).float()
        jacobians = per_sample_jacobian(params, xb)  # per parameter: [B, K, *shape]
        for total, jac in zip(totals, jacobians):
            extra = (1,) * (jac.dim() - 2)
            if kind == "cross_entropy":
                p = torch.softmax(logits, dim=1).reshape(*logits.shape, *extra)
                diag = (p * jac ** 2).sum(1) - (p * jac).sum(1) ** 2
            elif kind == "binary":
                p = torch.sigmoid(logits).reshape(*logits.shape, *extra)
                diag = (0.5 * p * (1 - p) * jac ** 2).sum(1)
            else:
                diag = (jac ** 2).sum(1)
            total += diag.sum(0)
    return {name: total / len(x) for name, total in zip(names, totals)}


@measure("hessian_trace")
def hessian_trace(ctx) -> float:
    return hutchinson_trace(ctx, ctx.params.hessian_probes)


@measure("hessian_top_eig")
def hessian_top_eig(ctx) -> float:
    return top_eigenvalue(ctx, ctx.params.power_iterations, ctx.params.power_tolerance)
