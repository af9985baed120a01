"""The torchvision image datasets, read from ``dataset.root`` through torchvision's own classes.

Each set is decoded once into ``uint8 [N, C, H, W]`` tensors (no PIL, no per-sample transforms);
``sources`` caches the result.  Where the files are expected (as torchvision lays them out):

- mnist:         ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
- fashion_mnist: ROOT/FashionMNIST/raw/ (same names)
- cifar10:       ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
- cifar100:      ROOT/cifar-100-python/{train, test, meta}
- svhn:          ROOT/{train_32x32.mat, test_32x32.mat}
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen.data.bundle import DataBundle
from gen.config import ConfigError


def _tvd():
    """torchvision.datasets, imported when a vision set is read: importing torchvision costs a run
    that does not use it about 2 s (its package imports every model family)."""
    import torchvision.datasets

    return torchvision.datasets


@dataclass(frozen=True)
class VisionSet:
    class_name: str  # of torchvision.datasets
    num_classes: int
    # The files torchvision reads for the train and test splits, under the root, in the order its class
    # lists them (they key the disk cache).  Written out, not read from the class, so that a run whose
    # data is cached never imports torchvision; tests/test_data.py checks them against torchvision's.
    layout: tuple[str, ...]

    @property
    def tv_class(self) -> type:
        return getattr(_tvd(), self.class_name)

    def files(self, root: Path) -> list[Path]:
        return [root / name for name in self.layout]

    def open(self, root: Path, train: bool, download: bool):
        if self.class_name == "SVHN":
            return self.tv_class(str(root), split="train" if train else "test", download=download)
        return self.tv_class(str(root), train=train, download=download)


def _idx_files(folder: str) -> tuple[str, ...]:
    return tuple(f"{folder}/raw/{split}-{kind}" for split in ("train", "t10k")
                 for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))


SETS = {
    "mnist": VisionSet("MNIST", 10, _idx_files("MNIST")),
    "fashion_mnist": VisionSet("FashionMNIST", 10, _idx_files("FashionMNIST")),
    "cifar10": VisionSet("CIFAR10", 10, tuple(f"cifar-10-batches-py/{name}" for name in (
        "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"))),
    "cifar100": VisionSet("CIFAR100", 100, ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta")),
    "svhn": VisionSet("SVHN", 10, ("train_32x32.mat", "test_32x32.mat")),
}


def root_of(cfg) -> Path:
    return Path(cfg.root).expanduser().resolve()


def source_files(name: str, cfg) -> list[Path]:
    return SETS[name].files(root_of(cfg))


def decode(name: str, cfg) -> DataBundle:
    """Train and test splits of ``name`` as ``uint8 [N, C, H, W]`` images and int64 labels."""
    spec, root = SETS[name], root_of(cfg)
    missing = [f for f in spec.files(root) if not f.is_file()]
    if missing and not cfg.download:
        raise ConfigError("dataset.root", cfg.root,
                          f"{name} files not found (expected {missing[0]}{' and others' if len(missing) > 1 else ''}); "
                          f"{_how_to_fix(name, root)}")
    damaged = _damaged_idx_file(spec.files(root)) if issubclass(spec.tv_class, _tvd().MNIST) and not missing else None
    if damaged:
        raise ConfigError("dataset.root", cfg.root, f"{damaged}; {_how_to_fix(name, root)}")
    try:
        train, test = spec.open(root, True, cfg.download), spec.open(root, False, cfg.download)
    except (RuntimeError, OSError) as error:  # torchvision's checksum failure, or a failed download
        reason = str(error).splitlines()[0].rstrip(": ") or type(error).__name__
        if missing:
            raise ConfigError("dataset.download", "true", f"downloading {name} into {root} failed ({reason}); "
                                                        f"download=true needs internet, or put the files there") from error
        raise ConfigError("dataset.root", cfg.root, f"torchvision could not load {name} from {root} ({reason}); "
                                                    f"{_how_to_fix(name, root)}") from error
    x_train, y_train = _tensors(train)
    x_test, y_test = _tensors(test)
    return DataBundle(name, "classification", x_train, y_train, x_test, y_test, num_classes=spec.num_classes,
                      corrupted=torch.zeros(len(y_train), dtype=torch.bool))


def _how_to_fix(name: str, root: Path) -> str:
    from gen.data.fetch import REAL_SETS        # here: `python -m gen.data.fetch` must not find itself imported

    if name in REAL_SETS:
        return f"run `python -m gen.data.fetch {name} --root {root}` (works offline)"
    return f"put the {SETS[name].tv_class.__name__} files there, or set dataset.download=true (needs internet)"


def _damaged_idx_file(files: list[Path]) -> str | None:
    """The first IDX file whose size is not what its header declares (a truncated or foreign file)."""
    from gen.data.fetch import idx_shape

    for file in files:
        with open(file, "rb") as stream:
            shape = idx_shape(stream.read(4 + 4 * 255))       # the longest header an IDX file can have
        if not shape or file.stat().st_size != 4 + 4 * len(shape) + int(np.prod(shape)):
            return f"{file} is damaged (not an IDX file of the size its header declares)"
    return None


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision dataset's decoded arrays as ``uint8 [N, C, H, W]`` and ``int64 [N]``."""
    tvd = _tvd()
    if isinstance(dataset, tvd.MNIST):          # data: uint8 tensor [N, H, W]
        images, labels = dataset.data.unsqueeze(1), dataset.targets
    elif isinstance(dataset, tvd.CIFAR10):      # data: uint8 array [N, H, W, C]
        images, labels = torch.from_numpy(dataset.data).permute(0, 3, 1, 2), torch.tensor(dataset.targets)
    else:                                       # SVHN: uint8 array [N, C, H, W], labels with 10 → 0
        images, labels = torch.from_numpy(np.asarray(dataset.data)), torch.from_numpy(dataset.labels)
    return images.contiguous(), labels.long().contiguous()
