"""The measures of the NeurIPS 2020 competition "Predicting Generalization in Deep Learning" (PGDL)
winners, Natekar & Sharma 2020, *Representation based complexity measures for predicting
generalization in deep learning* (team Interpex; code: parthnatekar/pgdl), on the measure subsample
with the labels trained on.  No optimisation: forward passes, and for the margins one backward pass
to the first layer's output per batch.

  davies_bouldin   the Davies–Bouldin index of the penultimate features (the input of the last
                   Linear/Conv layer) clustered by label: mean_k max_{j≠k} (s_k + s_j)/‖c_k − c_j‖,
                   c_k the class centroid, s_k the mean distance of the class's points to it
  mixup_accuracy   label-wise mixup accuracy: each sample averaged (λ = ½) with a random partner of
                   its own label (a seeded permutation within each label), classified as that label
  db_mixup         davies_bouldin · (1 − mixup_accuracy): the winners' combination
  mixup_margin     −(mean of the five-number summary) of the normalised margins at the first layer's
                   output, on the label-wise mixed samples
  augment_margin   the same on augmented samples (horizontal flip, p = ½; a central zoom to 85–99% of
                   the image resized back, p = ½)

The normalised margin of a sample (Jiang et al. 2019's first-order distance at a hidden layer h):
d = (f_y − max_{j≠y} f_j) / ‖∇_h (f_y − max_{j≠y} f_j)‖, negative when misclassified (the winners'
``penalize``), divided by the layer's spread √(trimmed mean over h's coordinates of their variance)
(5% cut at each end).  The summary is the winners': the lower fence (the largest point below
Q1 − 1.5·IQR, else the minimum), Q1, the median, Q3, the upper fence (the smallest point above
Q3 + 1.5·IQR, else the maximum).  Larger values mean smaller margins: a complexity, as the winners'
code returns it.
"""
import numpy as np
import torch
import torch.nn.functional as F

from gen.measures.margin import margins
from gen.measures.registry import NotApplicable, measure

MIX = 0.5                       # the winners' λ: each mixed sample is the mean of two of one label
FLIP_PROB, ZOOM_PROB = 0.5, 0.5
ZOOM_SCALES = np.arange(0.85, 1.0, 0.01)  # the winners' central crops: 85% … 99% of the side
TRIM = 0.05                     # scipy.stats.trim_mean's cut of the layer's variances
EPSILON = 1e-7                  # the winners' guard against a zero gradient or spread


def _classification(ctx) -> None:
    if ctx.data.task != "classification":
        raise NotApplicable("the PGDL measures need a classification task")


# ---- the Davies–Bouldin index ---------------------------------------------------------------------
def davies_bouldin_index(features: torch.Tensor, labels: torch.Tensor) -> float:
    """The Davies–Bouldin index of ``features`` [n, d] clustered by ``labels`` (scikit-learn's
    ``davies_bouldin_score``: 0 where every cluster is a point or every centroid the same)."""
    classes, index = labels.unique(return_inverse=True)
    if not 1 < len(classes) < len(labels):
        raise NotApplicable(f"the Davies–Bouldin index needs 2 to n − 1 labels among the n samples "
                            f"(here {len(classes)} among {len(labels)})")
    x = features.double().flatten(1)
    counts = torch.bincount(index, minlength=len(classes)).double()
    centroids = torch.zeros(len(classes), x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, index, x)
    centroids /= counts[:, None]
    spread = torch.zeros(len(classes), dtype=x.dtype, device=x.device)
    spread.index_add_(0, index, (x - centroids[index]).norm(dim=1))
    spread /= counts
    distances = torch.cdist(centroids, centroids)
    if torch.allclose(spread, torch.zeros_like(spread)) or torch.allclose(distances, torch.zeros_like(distances)):
        return 0.0
    distances[distances == 0] = float("inf")
    return ((spread[:, None] + spread[None, :]) / distances).max(dim=1).values.mean().item()


def penultimate_features(ctx) -> torch.Tensor:
    """The input of the last Linear/Conv layer on the subsample, flattened."""
    last = ctx.layers[-1].module
    seen = []
    hook = last.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().flatten(1)))
    x = ctx.sample[0]
    try:
        with torch.no_grad():
            for i in range(0, len(x), ctx.params.batch_size):
                ctx.twin(x[i:i + ctx.params.batch_size])
    finally:
        hook.remove()
    return torch.cat(seen)


@measure("davies_bouldin")
def davies_bouldin(ctx) -> float:
    def compute():
        _classification(ctx)
        return davies_bouldin_index(penultimate_features(ctx), ctx.sample[1])
    return ctx.shared("davies_bouldin", compute)  # db_mixup reuses it


# ---- label-wise mixup -----------------------------------------------------------------------------
def labelwise_partners(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """partner[i]: a sample of i's label, the pairing a random permutation within each label."""
    shuffled = torch.randperm(len(labels), generator=generator, device=generator.device).to(labels.device)
    by_label = torch.argsort(labels, stable=True)                         # each label's samples in order
    shuffled_by_label = shuffled[torch.argsort(labels[shuffled], stable=True)]  # … in a random order
    partner = torch.empty_like(by_label)
    partner[by_label] = shuffled_by_label
    return partner


def mixed_sample(ctx) -> tuple[torch.Tensor, torch.Tensor]:
    def mix():
        _classification(ctx)
        x, y = ctx.sample
        partner = labelwise_partners(y, ctx.generator("labelwise_mixup"))
        return MIX * x + (1 - MIX) * x[partner], y
    return ctx.shared("labelwise_mixup", mix)


@measure("mixup_accuracy")
def mixup_accuracy(ctx) -> float:
    from gen.measures import evaluation

    def compute():
        x, y = mixed_sample(ctx)
        return evaluation.loss_and_accuracy(ctx.twin, x, y, ctx.objective, ctx.params.batch_size)[1]
    return ctx.shared("mixup_accuracy", compute)  # db_mixup reuses it


@measure("db_mixup")
def db_mixup(ctx) -> float:
    return davies_bouldin(ctx) * (1 - mixup_accuracy(ctx))


# ---- augmentation ---------------------------------------------------------------------------------
def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right with probability ½, then, with probability ½, its central
    ZOOM_SCALES[k] (k uniform) resized back to full size (bilinear)."""
    n = len(images)
    flipped = torch.rand(n, generator=generator, device=generator.device).to(images.device) < FLIP_PROB
    images = torch.where(flipped.view(-1, 1, 1, 1), images.flip(-1), images)
    zoomed = torch.rand(n, generator=generator, device=generator.device).to(images.device) < ZOOM_PROB
    pick = torch.randint(0, len(ZOOM_SCALES), (n,), generator=generator, device=generator.device).to(images.device)
    scale = torch.where(zoomed, torch.as_tensor(ZOOM_SCALES, dtype=images.dtype, device=images.device)[pick],
                        torch.ones(n, dtype=images.dtype, device=images.device))
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale      # sample the central square of side `scale`
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augmented_sample(ctx) -> tuple[torch.Tensor, torch.Tensor]:
    def draw():
        _classification(ctx)
        if not ctx.data.is_image:
            raise NotApplicable(f"flips and zooms need image inputs; the data are {tuple(ctx.data.input_shape)}")
        x, y = ctx.sample
        return augment(x, ctx.generator("pgdl_augment")), y
    return ctx.shared("pgdl_augmented", draw)


# ---- normalised margins at the first layer --------------------------------------------------------
def normalized_margins(ctx, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """d / √(trimmed mean variance of h) per sample, h the first Linear/Conv layer's output."""
    first = ctx.layers[0].module
    seen = []
    hook = first.register_forward_hook(lambda module, args, output: seen.append(output))
    distances, hidden = [], []
    try:
        for i in range(0, len(x), ctx.params.batch_size):
            seen.clear()
            with torch.enable_grad():
                xb = x[i:i + ctx.params.batch_size].detach().clone().requires_grad_(True)  # h joins the graph
                margin = margins(ctx.twin(xb).float(), y[i:i + ctx.params.batch_size])
                (gradient,) = torch.autograd.grad(margin.sum(), seen[0])  # samples are independent (eval mode)
            distances.append(margin.detach() / (gradient.flatten(1).norm(dim=1) + EPSILON))
            hidden.append(seen[0].detach().flatten(1))
    finally:
        hook.remove()
    h = torch.cat(hidden).double()
    from scipy import stats  # here, not at the top: scipy.stats costs every launch ~0.8 s of import

    spread = stats.trim_mean(h.var(dim=0, unbiased=False).cpu().numpy(), proportiontocut=TRIM) ** 0.5
    return (torch.cat(distances).double().cpu().numpy()) / (spread + EPSILON)


def five_number_mean(values: np.ndarray) -> float:
    """Mean of the winners' summary: lower fence, Q1, median, Q3, upper fence."""
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    iqr = q3 - q1
    below, above = values[values < q1 - 1.5 * iqr], values[values > q3 + 1.5 * iqr]
    lower = below.max() if below.size else values.min()
    upper = above.min() if above.size else values.max()
    return float(np.mean([lower, q1, q2, q3, upper]))


@measure("mixup_margin")
def mixup_margin(ctx) -> float:
    return -five_number_mean(normalized_margins(ctx, *mixed_sample(ctx)))


@measure("augment_margin")
def augment_margin(ctx) -> float:
    return -five_number_mean(normalized_margins(ctx, *augmented_sample(ctx)))
