"""scikit-learn's bundled 8×8 handwritten digits: the offline default dataset.

Splitting them takes scikit-learn, whose import (pandas and scipy with it) costs a run about 1.3 s,
more than the rest of its data.  So each split, one per (test_fraction, data_seed) and scikit-learn
release, is kept on disk as four arrays (``digits-split-KEY.npz`` in cache.user_folder()); a run that
finds its split reads them and never imports scikit-learn.
"""
import io
import logging
from importlib.metadata import version

import numpy as np
import torch
from omegaconf import DictConfig

from gen import atomic
from gen.data import cache
from gen.data.bundle import DataBundle

log = logging.getLogger(__name__)

# Pixel values in load_digits are counts of set pixels in 4×4 blocks: integers 0..16.
MAX_PIXEL = 16.0
ARRAYS = ("x_train", "x_test", "y_train", "y_test")  # train_test_split's order


def load(cfg: DictConfig) -> DataBundle:
    """1,797 images as ``[N, 1, 8, 8]`` floats in [0, 1]; a seeded, stratified train/test split."""
    x_train, x_test, y_train, y_test = (torch.from_numpy(a) for a in split(cfg.test_fraction, cfg.data_seed))
    return DataBundle("digits", "classification", x_train.unsqueeze(1), y_train, x_test.unsqueeze(1), y_test,
                      num_classes=10, corrupted=torch.zeros(len(y_train), dtype=torch.bool))


def split(test_fraction: float, data_seed: int) -> tuple[np.ndarray, ...]:
    """``x_train, x_test, y_train, y_test``: the images as float32 ``[N, 8, 8]``, the labels int64."""
    folder = cache.disk_folder(cache.user_folder())
    if folder is None:
        return compute_split(test_fraction, data_seed)
    key = cache.digest({"dataset": "digits", "test_fraction": test_fraction, "data_seed": data_seed,
                        "scikit-learn": version("scikit-learn")})  # another release may split otherwise
    path = folder / f"digits-split-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return tuple(stored[name] for name in ARRAYS)
        except Exception as error:  # a truncated or foreign file: split again and overwrite it
            log.warning("ignoring unreadable data cache %s: %s", path, error)
    arrays = compute_split(test_fraction, data_seed)
    buffer = io.BytesIO()
    np.savez(buffer, **dict(zip(ARRAYS, arrays)))
    try:
        atomic.write_bytes(path, buffer.getvalue())
    except atomic.WriteError as error:
        log.warning("%s; continuing without the data cache", error)
    return arrays


def compute_split(test_fraction: float, data_seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits  # here: only a split not yet on disk pays for scikit-learn
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / MAX_PIXEL
    labels = digits.target.astype(np.int64)
    return tuple(train_test_split(images, labels, test_size=test_fraction, stratify=labels,
                                  random_state=data_seed))
