"""Choosing part of a dataset: a class subset (relabelled) and a seeded, stratified train subset."""
import dataclasses

import torch

from gen.data.bundle import DataBundle
from gen.config import ConfigError


def stratified_indices(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``size`` samples whose class proportions match ``labels`` as closely as integers allow.

    Class c gets ⌊size·n_c/N⌋ samples, and the few left over go to the classes with the largest
    remainders (ties: lower class first).  Within a class the samples are a uniform random choice.
    The indices come back sorted, so the subset keeps the dataset's order.
    """
    classes, counts = labels.unique(return_counts=True)
    exact = counts.double() * size / len(labels)
    quota = exact.floor().long()
    leftover = size - int(quota.sum())
    # Stable sort on descending remainder: equal remainders keep class order.
    by_remainder = torch.sort(-(exact - quota), stable=True).indices
    quota[by_remainder[:leftover]] += 1
    chosen = []
    for cls, take in zip(classes.tolist(), quota.tolist()):
        members = (labels == cls).nonzero().squeeze(1)
        chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.cat(chosen).sort().values


def random_indices(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` of ``n`` indices chosen uniformly at random, sorted (for regression targets)."""
    return torch.randperm(n, generator=generator)[:size].sort().values


def take_train_subset(data: DataBundle, size: int | None, seed: int) -> DataBundle:
    """The training set cut to ``size`` samples (class-stratified for classification); test set kept."""
    available = len(data.y_train)
    if size is None or size == available:
        return data
    if size > available:
        raise ConfigError("dataset.train_size", size, f"at most {available}, the size of {data.name}'s "
                                                      f"training set (after any class selection)")
    generator = torch.Generator().manual_seed(seed)
    if data.task == "classification":
        index = stratified_indices(data.y_train, size, generator)
    else:
        index = random_indices(available, size, generator)
    return dataclasses.replace(data, x_train=data.x_train[index], y_train=data.y_train[index],
                               corrupted=data.corrupted[index])


def check_classes(classes: list[int] | None, num_classes: int, dataset: str) -> None:
    """Raise ConfigError unless ``classes`` is null or ≥ 2 distinct indices of ``dataset``'s classes."""
    if classes is None:
        return
    classes = list(classes)
    if num_classes == 0:
        raise ConfigError("dataset.classes", classes, f"only for classification; {dataset} is regression")
    if len(set(classes)) != len(classes):
        raise ConfigError("dataset.classes", classes, "distinct class indices (no repeats)")
    if any(not 0 <= c < num_classes for c in classes):
        raise ConfigError("dataset.classes", classes,
                          f"class indices in 0..{num_classes - 1} ({dataset} has {num_classes} classes)")
    if len(classes) < 2:
        raise ConfigError("dataset.classes", classes, "at least two classes")


def select_classes(data: DataBundle, classes: list[int] | None) -> DataBundle:
    """Keep only samples of ``classes`` and relabel them 0..k−1 in the order given."""
    if classes is None:
        return data
    classes = list(classes)
    check_classes(classes, data.num_classes, data.name)
    # new_label[old] = position of old in `classes`, −1 for classes dropped.
    new_label = torch.full((data.num_classes,), -1, dtype=torch.long)
    new_label[torch.tensor(classes)] = torch.arange(len(classes))

    def keep(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mapped = new_label[y]
        kept = mapped >= 0
        return x[kept], mapped[kept]

    x_train, y_train = keep(data.x_train, data.y_train)
    x_test, y_test = keep(data.x_test, data.y_test)
    return dataclasses.replace(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                               num_classes=len(classes), corrupted=torch.zeros(len(y_train), dtype=torch.bool))
