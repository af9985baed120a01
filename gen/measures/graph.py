"""The network as a graph of operations (torch.fx), and what kind each operation is.

Several measures need more than the list of modules: BatchNorm folding needs a layer's
neighbours; path norms and minimum sharpness need to know that every operation is positively
homogeneous (f(c·x) = c·f(x) for c > 0) and where branches meet.  ``kind_of`` sorts each graph
node into one of a few kinds; anything it does not recognise is ``"other"``, and the measures
that need homogeneity decline such networks with a note.
"""
import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)

# Positively homogeneous operations that act entrywise or only move/pool entries.
HOMOGENEOUS_MODULES = (nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
                       nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                       nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity)
HOMOGENEOUS_FUNCTIONS = {torch.flatten, torch.relu, F.relu, F.leaky_relu, F.max_pool1d, F.max_pool2d,
                         F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                         F.adaptive_max_pool2d, F.dropout, torch.reshape, torch.squeeze, torch.unsqueeze,
                         torch.mean, torch.permute, torch.transpose}
HOMOGENEOUS_METHODS = {"view", "reshape", "flatten", "relu", "squeeze", "unsqueeze", "contiguous", "mean",
                       "permute", "transpose"}
SHAPE_METHODS = {"size", "dim"}
CONCATENATIONS = {torch.cat, torch.concat}
ADDITIONS = {operator.add, operator.iadd, torch.add}
SCALINGS = {operator.mul, operator.truediv, torch.mul}


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolic trace; standard torch.nn layers stay leaves, custom modules are traced through."""
    return fx.symbolic_trace(model)


def kind_of(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """input | output | weight | batchnorm | homogeneous | cat | add | scale | shape | index | param | other"""
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        return "output"
    if node.op == "get_attr":
        return "param"
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, WEIGHT_LAYERS):
            return "weight"
        if isinstance(module, BATCHNORMS):
            return "batchnorm"
        return "homogeneous" if isinstance(module, HOMOGENEOUS_MODULES) else "other"
    if node.op == "call_method":
        if node.target in HOMOGENEOUS_METHODS:
            return "homogeneous"
        if node.target in SHAPE_METHODS:
            return "shape"
        return "add" if node.target == "add" else "other"
    # call_function
    target = node.target
    if target in HOMOGENEOUS_FUNCTIONS:
        return "homogeneous"
    if target in CONCATENATIONS:
        return "cat"
    if target in ADDITIONS:
        return "add"
    if target in SCALINGS:
        return "scale"
    if target is getattr:
        return "shape"
    if target is operator.getitem:
        return "index"
    return "other"


def describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """A short human name of an operation, for notes."""
    if node.op == "call_module":
        return f"{type(modules[node.target]).__name__} ({node.target})"
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return f"{node.op} {node.target}"


def tensor_args(node: fx.Node) -> list[fx.Node]:
    """The graph nodes among a node's arguments, flattening lists (torch.cat's first argument)."""
    found: list[fx.Node] = []
    for arg in list(node.args) + list(node.kwargs.values()):
        items = arg if isinstance(arg, (list, tuple)) else [arg]
        found += [a for a in items if isinstance(a, fx.Node)]
    return found
