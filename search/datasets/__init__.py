"""Datasets for the search: the built-in ``digits`` and loaders for data a user has on disk.

>>> ds = load_dataset("digits")
>>> ds.x.shape, ds.num_classes
((1797, 1, 8, 8), 10)
>>> splits = split_dataset(ds, seed=0)
>>> len(splits.train), len(splits.val), len(splits.test), splits.input_shape
(1257, 270, 270, (1, 8, 8))

Formats (``FORMATS``): ``digits`` (built in, no path), ``mnist`` and ``fashion-mnist`` (a folder of
IDX files), ``cifar10`` and ``cifar100`` (a folder of "python version" batches), ``npz`` (one file
with arrays x and y).
"""

from __future__ import annotations

from pathlib import Path

from search.datasets.builtin import load_digits_dataset
from search.datasets.cifar import CIFAR10, CIFAR100, load_cifar_dataset
from search.datasets.idx import load_idx_dataset
from search.datasets.npz import load_npz_dataset
from search.datasets.split import split_dataset
from search.datasets.types import ArrayPair, Dataset, Splits
from search.errors import DatasetError

__all__ = ["FORMATS", "ArrayPair", "Dataset", "Splits", "check_path", "load_dataset",
           "split_dataset"]

FORMATS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "npz")


def check_path(name: str, path: Path | None) -> None:
    """DatasetError when ``name`` is no format, or ``path`` is given for ``digits`` or missing
    for any other format; reads nothing (callers check arguments before loading)."""
    if name not in FORMATS:
        raise DatasetError(f"dataset: got {name!r}; allowed: {', '.join(FORMATS)}")
    if name == "digits" and path is not None:
        raise DatasetError(f"path: got {str(path)!r}; digits is built in and takes no path")
    if name != "digits" and path is None:
        where = "the .npz file" if name == "npz" else "the folder holding its files"
        raise DatasetError(f"path: missing; dataset {name!r} is read from disk, give {where}")


def load_dataset(name: str, *, path: Path | None = None) -> Dataset:
    """Load ``name`` (one of ``FORMATS``); every format but ``digits`` reads ``path``."""
    check_path(name, path)
    if path is None:  # digits (check_path refused a missing path for every other format)
        return load_digits_dataset()
    path = Path(path)
    if name == "mnist":
        return load_idx_dataset(path, name=name, label="MNIST")
    if name == "fashion-mnist":
        return load_idx_dataset(path, name=name, label="Fashion-MNIST")
    if name == "cifar10":
        return load_cifar_dataset(path, fmt=CIFAR10, name=name)
    if name == "cifar100":
        return load_cifar_dataset(path, fmt=CIFAR100, name=name)
    return load_npz_dataset(path, name=name)
