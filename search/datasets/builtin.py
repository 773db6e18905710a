"""The built-in dataset: scikit-learn's handwritten ``digits`` (no download, ships with sklearn).

1797 grey 8 x 8 images with pixel values 0..16 and 10 classes; the default everywhere.
"""

from __future__ import annotations

import numpy as np

from search.datasets.types import Dataset

__all__ = ["load_digits_dataset"]


def load_digits_dataset() -> Dataset:
    """Return ``digits`` as float32 x (1797, 1, 8, 8) with values 0..16 and int64 y (1797,)."""
    from sklearn.datasets import load_digits  # ~1 s of imports: only when digits is loaded

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)  # (1797, 8, 8)
    x = np.ascontiguousarray(images[:, None, :, :])  # (1797, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)  # (1797,)
    return Dataset(x=x, y=y, num_classes=10, name="digits")
