"""A generic labelled image set from one ``.npz`` file: arrays ``x`` and ``y``.

``x``: (N, C, H, W) images, (N, H, W) grey images, or (N, D) flat features; a flat ``x`` becomes
(N, 1, d1, d2) with the most square factorisation d1 <= d2 of D (``models.shapes.square_factors``).
``y``: (N,) integer labels 0..K-1; the number of classes is K = max(y) + 1.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import SpecError
from search.datasets.types import Dataset
from search.errors import DatasetError

__all__ = ["load_npz_dataset"]

_EXPECTED = (
    "expected an .npz with arrays x (N, C, H, W) or (N, D) numbers and y (N,) integer labels "
    "0..K-1 (np.savez(path, x=x, y=y))"
)


def _images(path: Path, x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    if x.ndim not in (2, 3, 4) or not (
        np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)
    ):
        raise DatasetError(f"{path}: x is {x.dtype} with shape {x.shape}; {_EXPECTED}")
    images = x.astype(np.float32)
    if not np.isfinite(images).all():
        raise DatasetError(f"{path}: x holds NaN or infinite values; {_EXPECTED}")
    if images.ndim == 2:
        from models.shapes import square_factors

        try:
            d1, d2 = square_factors(images.shape[1], field="x.shape[1]")
        except SpecError as exc:
            raise DatasetError(f"{path}: cannot lay flat x out as an image ({exc})") from exc
        return images.reshape(images.shape[0], 1, d1, d2)  # (N, D) -> (N, 1, d1, d2)
    if images.ndim == 3:
        return images[:, None, :, :]  # (N, H, W) -> (N, 1, H, W)
    return images


def _labels(path: Path, y: npt.NDArray[Any], n: int) -> npt.NDArray[np.int64]:
    if y.ndim != 1 or y.shape[0] != n:
        raise DatasetError(f"{path}: y has shape {y.shape} for {n} samples in x; {_EXPECTED}")
    whole_floats = np.issubdtype(y.dtype, np.floating) and bool(
        np.all(np.isfinite(y)) and np.all(y == np.round(y))
    )
    if not (np.issubdtype(y.dtype, np.integer) or whole_floats):
        raise DatasetError(f"{path}: y is {y.dtype}, not integer labels; {_EXPECTED}")
    labels = y.astype(np.int64)
    if labels.size and int(labels.min()) < 0:
        raise DatasetError(f"{path}: y holds the negative label {int(labels.min())}; {_EXPECTED}")
    return labels


def load_npz_dataset(path: Path, *, name: str = "npz") -> Dataset:
    """Load ``path`` (arrays x, y); DatasetError naming the file if it is missing or malformed."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found; {_EXPECTED}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path}: holds one bare array, not named arrays; {_EXPECTED}")
        with loaded as archive:
            arrays = {key: archive[key] for key in ("x", "y") if key in archive.files}
            found = list(archive.files)
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz ({exc}); {_EXPECTED}") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(
                f"{path}: array {key!r} missing (found: {', '.join(found) or 'none'}); {_EXPECTED}"
            )
    x, y = arrays["x"], arrays["y"]
    if x.shape[0] == 0:
        raise DatasetError(f"{path}: x holds no samples; {_EXPECTED}")
    images = _images(path, x)
    labels = _labels(path, y, images.shape[0])
    num_classes = int(labels.max()) + 1
    if np.unique(labels).size < 2:
        raise DatasetError(f"{path}: y holds a single class; at least 2 classes are needed")
    return Dataset(x=np.ascontiguousarray(images), y=labels, num_classes=num_classes, name=name)
