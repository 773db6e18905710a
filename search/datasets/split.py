"""A deterministic, stratified train / validation / test split, normalised with training statistics.

The split depends only on the seed and the labels: the same seed gives the same indices. Part sizes
are exact (``round(N * fraction)`` for validation and test, the rest for training), and every class
is spread evenly across the three parts (each class's share of a part is within one sample of its
fraction). Per-channel mean and standard deviation come from the training part only, so nothing
of the validation or test images leaks into the inputs the network sees.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from search.datasets.types import ArrayPair, Dataset, FloatArray, Splits
from search.errors import DatasetError

__all__ = ["channel_stats", "split_dataset", "split_indices"]

_MIN_STD = 1e-6


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and 0.0 < value < 1.0
    ):
        raise DatasetError(f"{name}: got {value!r}; must lie strictly between 0 and 1 (e.g. 0.15)")


def split_indices(
    labels: npt.NDArray[np.int64], *, seed: int, val_fraction: float, test_fraction: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Indices (train, val, test) of a stratified split of ``labels`` (N,) decided by ``seed``."""
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    n = int(labels.shape[0])
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n_val < 1 or n_test < 1 or n - n_val - n_test < 1:
        raise DatasetError(
            f"val_fraction, test_fraction: got {val_fraction!r} and {test_fraction!r} of {n} "
            f"samples, leaving {n - n_val - n_test} to train, {n_val} to validate, {n_test} to "
            "test; each part needs at least one sample (use more data or other fractions)"
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)  # (N,) random order
    by_class = perm[np.argsort(labels[perm], kind="stable")]  # (N,) grouped by class, random within
    sorted_labels = labels[by_class]
    counts = np.bincount(labels)  # (K,)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))  # (K,) first position of each class
    rank = np.arange(n) - starts[sorted_labels]  # (N,) position within the class
    # Spread each class evenly over [0, 1); jitter breaks ties between classes at random.
    key = (rank + rng.random(n)) / counts[sorted_labels]
    order = by_class[np.argsort(key, kind="stable")].astype(np.int64)
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return np.sort(train), np.sort(val), np.sort(test)


def channel_stats(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-channel mean and std (C,) of images x (N, C, H, W); std floored at 1e-6."""
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)  # (C,)
    std = x.std(axis=(0, 2, 3), dtype=np.float64)  # (C,)
    return mean.astype(np.float32), np.maximum(std, _MIN_STD).astype(np.float32)


def _normalised(x: FloatArray, mean: FloatArray, std: FloatArray) -> FloatArray:
    # (n, C, H, W) - (1, C, 1, 1), then / (1, C, 1, 1)
    out = (x - mean[None, :, None, None]) / std[None, :, None, None]
    return np.ascontiguousarray(out, dtype=np.float32)


def split_dataset(
    ds: Dataset, *, seed: int, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> Splits:
    """Split ``ds`` by ``seed`` into normalised train / val / test parts (see the module doc)."""
    train_idx, val_idx, test_idx = split_indices(
        ds.y, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )
    mean, std = channel_stats(ds.x[train_idx])

    def part(idx: npt.NDArray[np.int64]) -> ArrayPair:
        return ArrayPair(x=_normalised(ds.x[idx], mean, std), y=ds.y[idx])

    return Splits(
        train=part(train_idx),
        val=part(val_idx),
        test=part(test_idx),
        num_classes=ds.num_classes,
        name=ds.name,
        mean=mean,
        std=std,
    )
