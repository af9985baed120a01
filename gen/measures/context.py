"""What every measure reads: the :class:`MeasureContext`.

It holds the trained network and its BatchNorm-folded twin, its weights at initialisation, the data as
tensors, the fixed training subsample, the loss, the margin, the training record and the parameters.
Shared intermediate results (the folded twin, the layer list, the margin, σ of the PAC-Bayes
search...) are computed once, on first use, and kept, together with a NotApplicable reason when
they have none, so two measures never repeat the same work.

The attributes and methods documented on :class:`MeasureContext` are the public contract a researcher's
own measure (``@gen.measures.measure``) may rely on; the ones whose names start with ``_`` are not.
"""
import copy
import functools
from pathlib import Path
from typing import Any, Callable, cast

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from gen.data.bundle import DataBundle
from gen.measures.conventions import CONVENTIONS, Convention
from gen.measures.folding import FoldedNet, fold_batchnorm
from gen.measures.layers import WeightLayer, weight_layers
from gen.measures.registry import NotApplicable
from gen.training.objective import LOSSES, Objective, objective_for
from gen.config.measure import MeasureParams


PARAMS_YAML = Path(__file__).resolve().parents[2] / "conf" / "measure" / "params" / "default.yaml"


@functools.lru_cache(maxsize=1)
def _default_params() -> dict:
    return cast(dict, OmegaConf.to_container(OmegaConf.load(PARAMS_YAML), resolve=True))


def resolve_params(measure_cfg: DictConfig | dict | None) -> MeasureParams:
    """The set's params over conf/measure/params/default.yaml's (every set composes them; a caller
    outside Hydra may give only some)."""
    given = (measure_cfg or {}).get("params") or {}
    if isinstance(given, DictConfig):
        given = cast(dict, OmegaConf.to_container(given, resolve=True))
    return MeasureParams(**{**_default_params(), **given})


def _classification_loss(record: Any) -> str:
    kind = getattr(record, "objective", None)
    return kind if kind in LOSSES else "cross_entropy"


class MeasureContext:
    """Everything a measure ``fn(ctx) -> float`` reads.  A measure must not modify what it is given
    (the trained model, the tensors): the values of the measures after it would change.

    Attributes (the contract):

    - ``model: nn.Module`` — the trained network, as training left it (on ``device``).  Evaluate the
      eval-mode copy ``twin`` (or ``copy.deepcopy`` it) rather than change this one.
    - ``init_state: dict[str, Tensor] | None`` — its ``state_dict`` at initialisation (None if unknown);
      ``initial_model`` is that network, built for you.
    - ``data: DataBundle`` — the data the network trained on, as tensors on ``device``: ``x_train``,
      ``y_train`` (the labels as trained on, corrupted ones included), ``x_test``, ``y_test``, ``num_classes``
      (0 for regression), ``task`` ("classification" | "regression"), ``input_shape``, ``corrupted``
      (bool per training sample).  The same tensors are also ``ctx.x_train`` ... ``ctx.y_test``.
    - ``sample: (x, y)`` — a fixed, seeded subsample of the training set (``params.max_samples`` of them,
      ``params.seed``): what gen's own measures evaluate on.
    - ``loss(outputs, targets, reduction="mean") -> Tensor`` — the training loss (cross-entropy for
      classification, ½·squared error for regression); ``objective`` is the object behind it.
    - ``record`` — the training record: ``history`` (one dict per evaluation, with ``epoch``, ``step``,
      ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` ...), ``epoch``, ``step``, ``status``,
      ``train_size``.
    - ``params: MeasureParams`` — the set's ``measure.params`` (gen/config/measure.py).
    - ``device: torch.device``, ``train_size: int`` (m, the number of training samples).

    Helpers: ``twin`` (the eval-mode, BatchNorm-folded copy gen's measures evaluate), ``layers``,
    ``margin``, ``shared(key, compute)`` (memoise a result between measures), ``generator(purpose)``
    (a seeded torch.Generator), ``note(text)`` (a line in the record's notes).
    """

    model: nn.Module
    init_state: dict | None
    data: DataBundle
    record: Any
    params: MeasureParams
    device: torch.device
    train_size: int
    notes: list[str]

    def __init__(self, model: nn.Module, init_state: dict | None, data: DataBundle, record: Any,
                 params: MeasureParams):
        self.model, self.init_state, self.data, self.record, self.params = model, init_state, data, record, params
        self.device = data.x_train.device
        self.train_size = getattr(record, "train_size", 0) or len(data.x_train)
        self.notes: list[str] = []
        self.details: dict[str, Any] = {}  # family → what its measures report beyond a number (metrics.json)
        self._memo: dict[str, Any] = {}

    # ---- the data's tensors, by their names -----------------------------------------------------
    @property
    def x_train(self) -> torch.Tensor:
        return self.data.x_train

    @property
    def y_train(self) -> torch.Tensor:
        return self.data.y_train

    @property
    def x_test(self) -> torch.Tensor:
        return self.data.x_test

    @property
    def y_test(self) -> torch.Tensor:
        return self.data.y_test

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The training loss of ``outputs`` (the network's raw scores) against ``targets``."""
        return self.objective.loss(outputs, targets, reduction)

    @property
    def initial_model(self) -> nn.Module:
        """The network at initialisation, in eval mode (NotApplicable where the weights are unknown)."""
        def build():
            if self.init_state is None:
                raise NotApplicable("no weights at initialisation were given")
            init_model = copy.deepcopy(self.model)
            init_model.load_state_dict(self.init_state)
            return init_model.eval()
        return self.shared("initial_model", build)

    @property
    def convention(self) -> Convention:
        """The settings of ``measure.params.convention`` (gen.measures.conventions)."""
        return CONVENTIONS[self.params.convention]

    @property
    def conv_spectral(self) -> str:
        """How the unsuffixed spectral measures take a conv's norm: the parameter, else the convention's."""
        return self.params.conv_spectral or self.convention.conv_spectral

    # ---- memoisation ---------------------------------------------------------------------------
    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once; later calls return the value (or raise the same NotApplicable)."""
        if key not in self._memo:
            try:
                self._memo[key] = compute()
            except NotApplicable as reason:
                self._memo[key] = reason
        value = self._memo[key]
        if isinstance(value, NotApplicable):
            raise value
        return value

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def detail(self, family: str, value: Any) -> None:
        """A family's diagnostics (JSON-able, small: per layer, not per parameter), recorded in
        metrics.json's ``measure_details`` under ``family``."""
        self.details[family] = value

    # ---- data --------------------------------------------------------------------------------
    @property
    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed, seeded training subsample (labels as trained on, corrupted ones included)."""
        def draw():
            n = len(self.data.x_train)
            keep = min(n, self.params.max_samples)
            generator = torch.Generator().manual_seed(self.params.seed)
            index = torch.randperm(n, generator=generator)[:keep].sort().values.to(self.device)
            return self.data.x_train[index], self.data.y_train[index]
        return self.shared("sample", draw)

    @property
    def objective(self) -> Objective:
        def build():
            with torch.no_grad():
                width = self.folded.module(self.sample[0][:1]).shape[-1]
            # the loss the run trained on (its record names it); cross-entropy where no record says
            return objective_for(self.data, width, _classification_loss(self.record))
        return self.shared("objective", build)

    def generator(self, purpose: str) -> torch.Generator:
        """A generator on the data's device, seeded from ``seed`` and the purpose (fresh each call)."""
        offset = sum(ord(c) * 31 ** i for i, c in enumerate(purpose)) % 2 ** 31
        return torch.Generator(device=self.device).manual_seed(self.params.seed * 1_000_003 + offset)

    # ---- the network -----------------------------------------------------------------------
    @property
    def folded(self) -> FoldedNet:
        def fold():
            folded = fold_batchnorm(self.model, self.data.x_train[:8])
            for text in folded.notes:
                self.note(text)
            return folded
        return self.shared("folded", fold)

    @property
    def twin(self) -> nn.Module:
        """The eval-mode, BatchNorm-folded twin every measure evaluates (the trained model is untouched)."""
        return self.folded.module

    @property
    def init_folded(self) -> FoldedNet:
        def fold():
            if self.init_state is None:
                raise NotApplicable("no weights at initialisation were given")
            init_model = copy.deepcopy(self.model)
            init_model.load_state_dict(self.init_state)
            return fold_batchnorm(init_model, self.data.x_train[:8])
        return self.shared("init_folded", fold)

    @property
    def layers(self) -> list[WeightLayer]:
        """W_1 … W_d of the folded twin; NotApplicable where a BatchNorm could not be folded."""
        def find():
            folded = self.folded
            if folded.unfolded:
                raise NotApplicable(f"BatchNorm {', '.join(folded.unfolded)} could not be folded into a "
                                    f"neighbouring layer, so layer norms would miss its scale")
            found = weight_layers(folded, self.sample[0])
            if not found:
                raise NotApplicable("the network has no Linear or Conv layers")
            return found
        return self.shared("layers", find)

    @property
    def init_layers(self) -> list[WeightLayer]:
        """The same layers at initialisation (folded with the BatchNorm statistics of then)."""
        def find():
            folded = self.init_folded
            if folded.unfolded:
                raise NotApplicable(f"at initialisation, BatchNorm {', '.join(folded.unfolded)} could not be folded")
            found = weight_layers(folded, self.sample[0])
            if [layer.name for layer in found] != [layer.name for layer in self.layers]:
                raise NotApplicable("the layers at initialisation do not match the trained network's")
            return found
        return self.shared("init_layers", find)

    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The twin's trainable parameters (what perturbation measures perturb)."""
        return [(name, p) for name, p in self.twin.named_parameters() if p.requires_grad]

    def init_parameters(self) -> list[torch.Tensor]:
        """The twin's trainable parameters at initialisation, in the order of ``parameters()``."""
        init = dict(self.init_folded.module.named_parameters())
        missing = [name for name, _ in self.parameters() if name not in init]
        if missing:
            raise NotApplicable(f"parameters {missing[:3]} have no counterpart at initialisation")
        return [init[name].detach() for name, _ in self.parameters()]

    # ---- the unperturbed network on the sample: one forward pass shared ---------------------
    def clean_outputs(self) -> torch.Tensor:
        """The twin's outputs on the sample (the margin, the training loss and accuracy read them)."""
        from gen.measures import evaluation
        return self.shared("clean_outputs", lambda: evaluation.outputs(self.twin, self.sample[0],
                                                                       self.params.batch_size))

    def clean_loss_and_accuracy(self) -> tuple[float, float | None]:
        from gen.measures import evaluation
        return self.shared("clean_loss_and_accuracy", lambda: evaluation.loss_and_accuracy_of(
            self.clean_outputs(), self.sample[1], self.objective))

    # ---- the margin --------------------------------------------------------------------------
    @property
    def margin(self) -> float:
        from gen.measures.margin import margin_percentile
        return self.shared("margin", lambda: margin_percentile(self))

    def positive_margin(self) -> float:
        """γ for the measures that divide by it; NotApplicable when γ ≤ 0."""
        gamma = self.margin
        if gamma <= 0:
            raise NotApplicable(f"the margin ({self.params.margin_percentile:g}th percentile) is {gamma:.4g} ≤ 0: "
                                f"the network misclassifies that share of the sample")
        return gamma
