"""Curvature of the training loss (objective on the subsample, w.r.t. the folded twin's trainable
parameters): Hessian-vector products for Hutchinson's trace estimate and for the top eigenvalue
(Lanczos), and the Gauss–Newton diagonal for minimum sharpness.

The trace.  Where the network is piecewise linear in each single parameter (Linear/Conv layers,
ReLU-type activations, pooling, sums and concatenations, BatchNorm folded: what path norms
accept), every output's second derivative in one parameter is 0, so the Hessian's diagonal *is*
the Gauss–Newton diagonal and tr(H) is its exact sum, which minimum sharpness computes anyway.
Elsewhere tr(H) is Hutchinson's estimate from ``hessian_probes`` Rademacher probes.

The top eigenvalue.  Lanczos on Hessian-vector products, reorthogonalised against as many earlier
vectors as 256 MB holds (all of them for nets up to ~3M parameters at the default 100 steps), stopping
when the Ritz value of largest magnitude changes by less than ``power_tolerance`` (relative) or
after ``power_iterations`` products: far fewer products than power iteration for the same
accuracy, since it does not wait on the ratio of the two top eigenvalues.

The spectral density (not a measure: ``python -m analysis hessian RUN_DIR`` draws it).  Stochastic
Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019; PyHessian's ``density``): for each of ``runs``
Rademacher probes v, ``steps`` Lanczos steps with full reorthogonalisation give a tridiagonal T whose
eigenvalues θ_k and squared first eigenvector components w_k are a Gauss quadrature of the spectral
measure along v: Σ_k w_k θ_k^p = vᵀHᵖv/‖v‖² exactly for p < 2·steps, so averaged over the probes,
Σ w θᵖ estimates tr(Hᵖ)/n.  The density is Σ w_k N(θ_k, σ²) averaged over the probes.
"""
import torch
import torch.func as tf

from gen.measures.registry import measure

_JACOBIAN_BUDGET = 2 ** 26  # floats held by one chunk of per-sample Jacobians (256 MB)


def _trainable(ctx) -> tuple[list[str], tuple[torch.Tensor, ...]]:
    named = ctx.parameters()
    return [name for name, _ in named], tuple(p.detach() for _, p in named)


def hessian_vector_product(ctx, vector: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """H·v for the mean loss over the subsample, accumulated over batches: the gradient of ∇L·v by a
    second backward pass (on CPU about 30% cheaper than torch.func's forward-over-reverse jvp)."""
    params = [p for _, p in ctx.parameters()]
    x, y = ctx.sample
    total = tuple(torch.zeros_like(p) for p in params)
    for i in range(0, len(x), ctx.params.batch_size):
        xb, yb = x[i:i + ctx.params.batch_size], y[i:i + ctx.params.batch_size]
        with torch.enable_grad():
            loss = ctx.objective.loss(ctx.twin(xb).float(), yb, reduction="sum")
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True, materialize_grads=True)
            along = sum((g * v).sum() for g, v in zip(grads, vector))
            product = torch.autograd.grad(along, params, allow_unused=True, materialize_grads=True)
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


def lanczos_top_eigenvalue(ctx, iterations: int, tolerance: float) -> float:
    """The eigenvalue of largest magnitude (the top one at a minimum), by Lanczos."""
    _, params = _trainable(ctx)
    generator = ctx.generator("power_iteration")
    q = _flat([torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype) for p in params])
    q /= q.norm()
    basis, alphas, betas = [q], [], []
    estimate = None
    for _ in range(min(iterations, q.numel())):
        w = _flat(hessian_vector_product(ctx, _unflat(basis[-1], params)))
        alphas.append(torch.dot(w, basis[-1]).item())
        for b in basis:  # reorthogonalisation against the kept basis (it holds the last two, the recurrence)
            w -= torch.dot(w, b) * b
        previous, estimate = estimate, _largest_ritz_value(alphas, betas)
        beta = w.norm().item()
        if beta <= 1e-12 * max(abs(estimate), 1e-30):  # an invariant subspace: the value is exact
            break
        if previous is not None and abs(estimate - previous) <= tolerance * abs(estimate):
            break
        betas.append(beta)
        basis.append(w / beta)
        if len(basis) > max(2, _JACOBIAN_BUDGET // q.numel()):  # memory: the oldest vectors go first
            basis.pop(0)
    return estimate


def _largest_ritz_value(alphas: list[float], betas: list[float]) -> float:
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas[:len(alphas) - 1], dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    values = torch.linalg.eigvalsh(t)
    return values[values.abs().argmax()].item()


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


def _unflat(vector: torch.Tensor, like) -> tuple[torch.Tensor, ...]:
    out, start = [], 0
    for p in like:
        out.append(vector[start:start + p.numel()].reshape(p.shape))
        start += p.numel()
    return tuple(out)


def lanczos_tridiagonal(matvec, start: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The eigenvalues θ and quadrature weights w (squared first components of T's eigenvectors) of
    ``steps`` Lanczos steps of ``matvec`` from ``start``, with full reorthogonalisation (fewer steps
    where the Krylov space closes)."""
    q = start / start.norm()
    basis, alphas, betas = [q], [], []
    for step in range(min(steps, q.numel())):
        w = matvec(basis[-1])
        alphas.append(torch.dot(w, basis[-1]).item())
        for _ in range(2):  # twice is enough (Kahan–Parlett)
            for b in basis:
                w -= torch.dot(w, b) * b
        beta = w.norm().item()
        if step == steps - 1 or beta <= 1e-10 * max(abs(a) for a in alphas):
            break
        betas.append(beta)
        basis.append(w / beta)
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    theta, vectors = torch.linalg.eigh(t)
    return theta, vectors[0].pow(2)


def spectral_density_nodes(ctx, runs: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(θ, w) of stochastic Lanczos quadrature for each of ``runs`` Rademacher probes (seeded)."""
    _, params = _trainable(ctx)
    generator = ctx.generator("spectral_density")

    def matvec(vector):
        return _flat(hessian_vector_product(ctx, _unflat(vector, params)))

    nodes = []
    for _ in range(runs):
        probe = _flat([torch.randint(0, 2, p.shape, generator=generator, device=p.device).to(p.dtype) * 2 - 1
                       for p in params])
        nodes.append(lanczos_tridiagonal(matvec, probe, steps))
    return nodes


def smoothed_density(nodes: list[tuple[torch.Tensor, torch.Tensor]], grid: torch.Tensor,
                     sigma: float) -> torch.Tensor:
    """Σ_k w_k N(grid; θ_k, σ²), averaged over the probes: a density on ``grid`` (∫ = 1)."""
    total = torch.zeros_like(grid, dtype=torch.float64)
    for theta, weights in nodes:
        gauss = torch.exp(-(grid[:, None].double() - theta[None, :]) ** 2 / (2 * sigma ** 2))
        total += (gauss * weights[None, :]).sum(1) / (sigma * (2 * torch.pi) ** 0.5)
    return total / len(nodes)


def gauss_newton_diagonal(ctx) -> dict[str, torch.Tensor]:
    """diag of the Gauss–Newton Hessian of the mean loss, per trainable parameter.

    Per example with outputs z and Jacobian J_k = ∂z_k/∂θ: cross-entropy Σ_k p_k J_k² − (Σ_k p_k J_k)²
    (p = softmax z); one-logit BCE/2 ½·p(1 − p)·J²; MSE/2 Σ_k J_k².  Linear and Conv2d layers get it
    from one backward pass per output (``layerwise_gauss_newton``); any other parameter from
    per-sample Jacobians (``per_sample_gauss_newton``), which cost memory and time in proportion to
    the parameter count.
    """
    names, _ = _trainable(ctx)
    diagonal = layerwise_gauss_newton(ctx)
    rest = [name for name in names if name not in diagonal]
    if rest:
        diagonal.update(per_sample_gauss_newton(ctx, rest))
    return {name: diagonal[name] for name in names}


def output_factors(outputs: torch.Tensor, kind: str) -> list[torch.Tensor]:
    """Per-sample vectors c_k with Σ_k c_k c_kᵀ = the loss Hessian w.r.t. the outputs, so that the
    Gauss–Newton diagonal is Σ_k (Jᵀc_k)²: one backward pass per c_k gives every Jᵀc_k."""
    if kind == "cross_entropy":  # diag(p) − ppᵀ = Σ_k p_k (e_k − p)(e_k − p)ᵀ
        p = torch.softmax(outputs, dim=1)
        eye = torch.eye(outputs.shape[1], device=outputs.device, dtype=outputs.dtype)
        return [p[:, k:k + 1].sqrt() * (eye[k] - p) for k in range(outputs.shape[1])]
    if kind == "binary":         # BCE/2 on the sigmoid: ½·p(1 − p)
        p = torch.sigmoid(outputs)
        return [torch.sqrt(0.5 * p * (1 - p))]
    eye = torch.eye(outputs.shape[1], device=outputs.device, dtype=outputs.dtype)
    return [eye[k].expand_as(outputs) for k in range(outputs.shape[1])]   # MSE/2: the identity


def _closed_form_layer(module: torch.nn.Module) -> bool:
    """Layers whose per-sample gradients are products of their input and output gradient."""
    if isinstance(module, torch.nn.Linear):
        return True
    return (isinstance(module, torch.nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


def layerwise_gauss_newton(ctx) -> dict[str, torch.Tensor]:
    """The Gauss–Newton diagonal of every Linear/Conv2d weight and bias, from the layer inputs a and
    the output gradients δ = Jᵀc_k of a batch: a Linear's per-sample weight gradient is δ aᵀ, so the
    sum of its squares is (δ²)ᵀ(a²); a Conv2d's is δ·unfold(a)ᵀ, formed per sample and squared."""
    twin, (x, _) = ctx.twin, ctx.sample
    trainable = dict(ctx.parameters())
    layers = {name: m for name, m in twin.named_modules() if _closed_form_layer(m)
              and all(f"{name}.{p}" in trainable for p, value in m.named_parameters(recurse=False))}
    if not layers:
        return {}
    seen: dict[str, list] = {name: [] for name in layers}

    def remember(name):
        def hook(module, args, output):
            seen[name].append((args[0].detach(), output))
        return hook

    largest_conv = max([m.weight.numel() for m in layers.values() if isinstance(m, torch.nn.Conv2d)], default=1)
    chunk = max(1, min(ctx.params.batch_size, _JACOBIAN_BUDGET // largest_conv))
    totals: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(remember(name)) for name, m in layers.items()]
    try:
        for i in range(0, len(x), chunk):
            for calls in seen.values():
                calls.clear()
            with torch.enable_grad():
                outputs = twin(x[i:i + chunk]).float()
            # A layer applied twice, or a Linear on a sequence, has no rank-one per-sample gradient.
            usable = [name for name, calls in seen.items() if len(calls) == 1 and
                      (isinstance(layers[name], torch.nn.Conv2d) or calls[0][0].dim() == 2)]
            if i == 0:
                layers = {name: layers[name] for name in usable}
            for factor in output_factors(outputs.detach(), ctx.objective.kind):
                deltas = torch.autograd.grad(outputs, [seen[name][0][1] for name in layers], grad_outputs=factor,
                                             retain_graph=True, allow_unused=True)
                for name, delta in zip(layers, deltas):
                    if delta is not None:
                        _add_squared_gradients(totals, name, layers[name], seen[name][0][0], delta.float())
    finally:
        for handle in handles:
            handle.remove()
    return {name: total / len(x) for name, total in totals.items()}


def _add_squared_gradients(totals: dict, name: str, layer: torch.nn.Module, inputs: torch.Tensor,
                           delta: torch.Tensor) -> None:
    """Add Σ_samples (per-sample gradient)² of the layer's weight and bias to ``totals``."""
    inputs = inputs.float()
    if isinstance(layer, torch.nn.Linear):
        weight = delta.pow(2).T @ inputs.pow(2)
        bias = delta.pow(2).sum(0)
    else:
        patches = torch.nn.functional.unfold(inputs, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        delta = delta.flatten(2)                                          # [B, out, positions]
        weight = torch.einsum("bol,bil->boi", delta, patches).pow(2).sum(0).reshape(layer.weight.shape)
        bias = delta.sum(2).pow(2).sum(0)
    totals[f"{name}.weight"] = totals.get(f"{name}.weight", 0) + weight
    if layer.bias is not None:
        totals[f"{name}.bias"] = totals.get(f"{name}.bias", 0) + bias


def per_sample_gauss_newton(ctx, names: list[str]) -> dict[str, torch.Tensor]:
    """The Gauss–Newton diagonal of the parameters ``names`` from per-sample Jacobians (any network)."""
    twin, (x, _) = ctx.twin, ctx.sample
    trainable = dict(ctx.parameters())
    fixed = {name: p.detach() for name, p in trainable.items() if name not in names}
    params = tuple(trainable[name].detach() for name in names)

    def one_output(ps, sample):
        return tf.functional_call(twin, {**fixed, **dict(zip(names, ps))}, (sample[None],))[0].float()

    per_sample_jacobian = tf.vmap(tf.jacrev(one_output), in_dims=(None, 0))
    width = one_output(params, x[0]).numel()
    chunk = max(1, min(ctx.params.batch_size, _JACOBIAN_BUDGET // (width * sum(p.numel() for p in params))))
    totals = [torch.zeros_like(p) for p in params]
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        with torch.no_grad():
            outputs = tf.functional_call(twin, {**fixed, **dict(zip(names, params))}, (xb,)).float()
        factors = torch.stack(output_factors(outputs, ctx.objective.kind), dim=1)   # [B, factors, K]
        jacobians = per_sample_jacobian(params, xb)                                 # per parameter: [B, K, *shape]
        for total, jac in zip(totals, jacobians):
            projected = torch.einsum("bfk,bk...->bf...", factors, jac)               # (Jᵀc_f) per sample
            total += projected.pow(2).sum((0, 1))
    return {name: total / len(x) for name, total in zip(names, totals)}


def gauss_newton_costs(ctx) -> dict[str, float]:
    """C per trainable parameter tensor: Σ of the Gauss–Newton diagonal over it (computed once)."""
    return ctx.shared("gauss_newton_costs", lambda: {name: d.sum().item()
                                                     for name, d in gauss_newton_diagonal(ctx).items()})


def piecewise_linear(ctx) -> bool:
    """Is every output piecewise linear in each single parameter (so diag H = diag of Gauss–Newton)?"""
    from gen.measures.path_norms import homogeneity_problem  # path norms need the same property
    folded = ctx.folded
    return not folded.unfolded and homogeneity_problem(folded) is None


@measure("hessian_trace")
def hessian_trace(ctx) -> float:
    """tr(H): exact (Σ of the Gauss–Newton diagonal) for a piecewise-linear net, else Hutchinson."""
    if piecewise_linear(ctx):
        return sum(gauss_newton_costs(ctx).values())
    return hutchinson_trace(ctx, ctx.params.hessian_probes)


@measure("hessian_top_eig")
def hessian_top_eig(ctx) -> float:
    """λ_max(H) of largest magnitude, by Lanczos."""
    return lanczos_top_eigenvalue(ctx, ctx.params.power_iterations, ctx.params.power_tolerance)
