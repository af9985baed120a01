"""scikit-learn's bundled 8×8 handwritten digits: the offline default dataset."""
import numpy as np
import torch
from omegaconf import DictConfig

from gen.data.bundle import DataBundle

# Pixel values in load_digits are counts of set pixels in 4×4 blocks: integers 0..16.
MAX_PIXEL = 16.0


def load(cfg: DictConfig) -> DataBundle:
    """1,797 images as ``[N, 1, 8, 8]`` floats in [0, 1]; a seeded, stratified train/test split."""
    from sklearn.datasets import load_digits  # here: scikit-learn costs a run on other data ~1 s
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / MAX_PIXEL
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=cfg.test_fraction, stratify=labels, random_state=cfg.data_seed)
    x_train, x_test = (torch.from_numpy(x).unsqueeze(1) for x in (x_train, x_test))
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    return DataBundle("digits", "classification", x_train, y_train, x_test, y_test, num_classes=10,
                      corrupted=torch.zeros(len(y_train), dtype=torch.bool))
