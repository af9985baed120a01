"""Tiny datasets written in the real on-disk formats, for loading through torchvision's classes.

Each ``write_*`` function fills ``root`` the way torchvision expects and returns the images and
labels it wrote, as numpy arrays in torchvision's own layout (so a test can compare what comes
back).  Images are random uint8 values; labels cycle through the classes so every class appears.
All writers are deterministic in ``seed``.

CIFAR and SVHN files are checked against md5 sums of the real files, which tiny fakes cannot
match: wrap loading in ``skip_md5_checks()`` (a context manager; pytest's ``monkeypatch`` works
too: see that function).
"""
import contextlib
import pickle
import struct
from pathlib import Path
from unittest import mock

import numpy as np
import scipy.io
import torchvision.datasets.cifar
import torchvision.datasets.svhn
from torchvision.datasets.utils import check_integrity


def _images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _labels(n: int, num_classes: int, seed: int) -> np.ndarray:
    """Every class present (cycling), in a seeded random order."""
    return np.random.default_rng(seed + 1).permutation(np.arange(n) % num_classes).astype(np.uint8)


# ---- MNIST / Fashion-MNIST: IDX files ----------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: magic (0, 0, type 0x08 = unsigned byte, number of dimensions), big-endian
    int32 sizes, then the raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _write_mnist_like(folder: str, root, n_train: int, n_test: int, size: int, seed: int):
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = _images(n, (size, size), seed + (split == "test") * 1000)
        labels = _labels(n, 10, seed + (split == "test") * 1000)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        out[split] = (images, labels.astype(np.int64))
    return out


def write_mnist(root, n_train: int = 100, n_test: int = 50, size: int = 28, seed: int = 0) -> dict:
    """MNIST IDX files in ROOT/MNIST/raw/; returns {"train": (images [N,H,W], labels), "test": ...}."""
    return _write_mnist_like("MNIST", root, n_train, n_test, size, seed)


def write_fashion_mnist(root, n_train: int = 100, n_test: int = 50, size: int = 28, seed: int = 0) -> dict:
    """Fashion-MNIST IDX files in ROOT/FashionMNIST/raw/; returns as :func:`write_mnist`."""
    return _write_mnist_like("FashionMNIST", root, n_train, n_test, size, seed)


# ---- CIFAR-10 / CIFAR-100: pickled batches -----------------------------------------------------
def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root, n_train: int = 100, n_test: int = 50, seed: int = 0) -> dict:
    """ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}: dicts with "data"
    (uint8 [N, 3072], channel-major rows) and "labels".  Training samples are spread over the five
    batches.  Returns {"train": (images [N,32,32,3] as torchvision holds them, labels), "test": ...}."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        chw = _images(n, (3, 32, 32), seed + (split == "test") * 1000)
        labels = _labels(n, 10, seed + (split == "test") * 1000).astype(np.int64)
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        for name, part in zip(names, np.array_split(np.arange(n), len(names))):
            _pickle(folder / name, {"batch_label": name, "data": chw[part].reshape(len(part), -1),
                                    "labels": labels[part].tolist()})
        out[split] = (chw.transpose(0, 2, 3, 1), labels)
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072})
    return out


def write_cifar100(root, n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict:
    """ROOT/cifar-100-python/{train, test, meta}: dicts with "data", "fine_labels", "coarse_labels".
    Returns as :func:`write_cifar10`."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        chw = _images(n, (3, 32, 32), seed + (split == "test") * 1000)
        labels = _labels(n, 100, seed + (split == "test") * 1000).astype(np.int64)
        _pickle(folder / split, {"data": chw.reshape(n, -1), "fine_labels": labels.tolist(),
                                 "coarse_labels": (labels // 5).tolist()})
        out[split] = (chw.transpose(0, 2, 3, 1), labels)
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)],
                              "coarse_label_names": [f"super{i}" for i in range(20)]})
    return out


# ---- SVHN: MATLAB files ------------------------------------------------------------------------
def write_svhn(root, n_train: int = 100, n_test: int = 50, seed: int = 0) -> dict:
    """ROOT/{train,test}_32x32.mat with "X" (uint8 [32, 32, 3, N]) and "y" ([N, 1], digit 0 stored
    as 10).  Returns {"train": (images [N,3,32,32] as torchvision holds them, labels 0..9), ...}."""
    Path(root).mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        nchw = _images(n, (3, 32, 32), seed + (split == "test") * 1000)
        labels = _labels(n, 10, seed + (split == "test") * 1000).astype(np.int64)
        stored = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(n, 1)
        # torchvision reads X[h, w, c, n] and transposes by (3, 2, 0, 1).
        scipy.io.savemat(Path(root) / f"{split}_32x32.mat", {"X": nchw.transpose(2, 3, 1, 0), "y": stored})
        out[split] = (nchw, labels)
    return out


# ---- md5 checks --------------------------------------------------------------------------------
def _exists_only(fpath, md5=None) -> bool:
    return check_integrity(fpath, None)


@contextlib.contextmanager
def skip_md5_checks():
    """Within this block torchvision's CIFAR and SVHN classes check only that files exist.

    With pytest: ``monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", _exists_only)``
    does the same for one test (and likewise for ``torchvision.datasets.svhn``)."""
    with mock.patch.object(torchvision.datasets.cifar, "check_integrity", _exists_only), \
            mock.patch.object(torchvision.datasets.svhn, "check_integrity", _exists_only):
        yield
