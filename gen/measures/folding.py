"""BatchNorm folding: a twin of the network without BatchNorm that computes the same function.

In eval mode BatchNorm is a per-channel affine map y = s·x + t, with s = γ/√(var + eps) and
t = β − s·mean.  Folded into the layer before it (conv/linear → BN): W ← s·W, b ← s·b + t.
Folded into the layer after it (S4's conv → ReLU → BN → conv): W ← W·diag(s), b ← b + W·t;
that is exact only where the next layer does not zero-pad, and on the way the map may pass a
dropout, a flatten, an average pool (affine maps commute with them) or a max-pool where s ≥ 0.
A BatchNorm that fits neither stays in the twin (eval mode) and is listed in ``unfolded``;
measures that need a BatchNorm-free network give null and say so.

Every measure sees this twin, so a network with BatchNorm and its folded version get the same
values.  The twin is checked against the network on an example batch before it is used.
"""
import copy
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn as nn

from gen.measures.graph import BATCHNORMS, WEIGHT_LAYERS, trace

# What an affine per-channel map may pass on its way to the next layer.
_COMMUTE_ALWAYS = (nn.Dropout, nn.Identity, nn.Flatten, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
_COMMUTE_IF_NONNEGATIVE_SCALE = (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_FLATTEN_METHODS = {"view", "reshape", "flatten"}


@dataclass
class FoldedNet:
    module: nn.Module                       # eval-mode twin; a torch.fx GraphModule when the network traces
    graph: fx.Graph | None                  # its graph (None: the network could not be traced)
    unfolded: list[str] = field(default_factory=list)   # BatchNorm modules left in the twin
    notes: list[str] = field(default_factory=list)


def fold_batchnorm(model: nn.Module, example: torch.Tensor | None = None) -> FoldedNet:
    """An eval-mode twin of ``model`` with every BatchNorm it can fold folded (``model`` is untouched)."""
    twin = copy.deepcopy(model).eval()
    if isinstance(twin, WEIGHT_LAYERS + BATCHNORMS):
        # Traced as the root, a lone layer becomes F.linear on get_attr nodes and no layer would be
        # found; inside a container it stays a module.
        twin = nn.Sequential(twin)
    batchnorms = [name for name, m in twin.named_modules() if isinstance(m, BATCHNORMS)]
    try:
        gm = trace(twin)
    except Exception as error:  # data-dependent control flow and the like
        note = f"the network could not be traced ({type(error).__name__}: {error})"
        if batchnorms:
            note += "; its BatchNorm layers stay unfolded"
        return FoldedNet(twin, None, batchnorms, [note])
    if not batchnorms:
        return FoldedNet(gm.eval(), gm.graph)

    modules = dict(gm.named_modules())
    unfolded = []
    with torch.no_grad():
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not isinstance(modules[node.target], BATCHNORMS):
                continue
            affine = _affine(modules[node.target])
            if affine is not None and (_fold_into_previous(node, affine, modules) or
                                       _fold_into_next(node, affine, modules)):
                node.replace_all_uses_with(node.args[0])
                gm.graph.erase_node(node)
            else:
                unfolded.append(node.target)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    folded = FoldedNet(gm.eval(), gm.graph, unfolded)
    if example is not None:
        _check_same_function(model, folded, example)
    return folded


def _affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(s, t) with BN(x) = s·x + t per channel, or None where BN normalises by batch statistics."""
    if bn.running_mean is None or bn.running_var is None:
        return None
    scale = 1.0 / torch.sqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


def _fold_into_previous(bn_node: fx.Node, affine, modules) -> bool:
    previous = bn_node.args[0]
    if not (isinstance(previous, fx.Node) and previous.op == "call_module" and len(previous.users) == 1):
        return False
    layer = modules[previous.target]
    scale, shift = affine
    if not isinstance(layer, WEIGHT_LAYERS) or layer.weight.shape[0] != scale.numel():
        return False
    per_output = (-1,) + (1,) * (layer.weight.dim() - 1)
    layer.weight.data = layer.weight.data * scale.reshape(per_output)
    bias = layer.bias.data if layer.bias is not None else torch.zeros_like(scale)
    _set_bias(layer, bias * scale + shift)
    return True


def _fold_into_next(bn_node: fx.Node, affine, modules) -> bool:
    scale, shift = affine
    node = bn_node
    while True:  # walk a single path through operations that commute with the affine map
        if len(node.users) != 1:
            return False
        (node,) = node.users
        if node.op == "call_module" and isinstance(modules[node.target], WEIGHT_LAYERS):
            break
        if not _commutes(node, modules, scale):
            return False
    layer = modules[node.target]
    if isinstance(layer, nn.Linear):
        if layer.in_features % scale.numel():
            return False
        per_feature = layer.in_features // scale.numel()  # a flattened C×H×W map is channel-major
        scale, shift = scale.repeat_interleave(per_feature), shift.repeat_interleave(per_feature)
        new_bias = layer.weight.data @ shift
    else:
        if layer.groups != 1 or _pads(layer) or layer.in_channels != scale.numel():
            return False
        per_input = (1, -1) + (1,) * (layer.weight.dim() - 2)
        new_bias = (layer.weight.data * shift.reshape(per_input)).flatten(1).sum(1)
        scale = scale.reshape(per_input)
    if layer.bias is not None:
        new_bias = new_bias + layer.bias.data
    layer.weight.data = layer.weight.data * scale
    _set_bias(layer, new_bias)
    return True


def _commutes(node: fx.Node, modules, scale: torch.Tensor) -> bool:
    """Does a per-channel affine map with this scale commute with the operation ``node``?"""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.AvgPool2d | nn.AvgPool1d):
            return not _pads(module)
        if isinstance(module, nn.Flatten):
            return module.start_dim == 1
        if isinstance(module, _COMMUTE_ALWAYS):
            return True
        return isinstance(module, _COMMUTE_IF_NONNEGATIVE_SCALE) and bool((scale >= 0).all())
    if node.op == "call_method" and node.target in _FLATTEN_METHODS:
        return True
    return node.op == "call_function" and node.target is torch.flatten


def _pads(layer: nn.Module) -> bool:
    padding = layer.padding
    if isinstance(padding, str):
        return padding != "valid"
    return any(p != 0 for p in (padding if isinstance(padding, (tuple, list)) else (padding,)))


def _set_bias(layer: nn.Module, value: torch.Tensor) -> None:
    if layer.bias is None:  # bias-free conv before BatchNorm: the folded shift becomes its bias
        layer.bias = nn.Parameter(value, requires_grad=layer.weight.requires_grad)
    else:
        layer.bias.data = value


def _check_same_function(model: nn.Module, folded: FoldedNet, example: torch.Tensor) -> None:
    """Fall back to the unfolded twin (with a note) if folding changed the outputs."""
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected, got = reference(example), folded.module(example)
    tolerance = 1e-4 * (1.0 + expected.abs().max().item())
    if torch.allclose(expected, got, rtol=1e-4, atol=tolerance):
        return
    gm = trace(reference)
    folded.module, folded.graph = gm.eval(), gm.graph
    folded.unfolded = [name for name, m in gm.named_modules() if isinstance(m, BATCHNORMS)]
    folded.notes.append("BatchNorm folding changed the network's outputs on the sample; it stays unfolded")
