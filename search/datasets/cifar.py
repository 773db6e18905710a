"""CIFAR-10 and CIFAR-100 "python version" batches from disk, read by a restricted unpickler.

Each batch is a pickled dict with ``b"data"``: uint8 (n, 3072) rows (1024 red, 1024 green, 1024 blue
values, each 32 x 32 row-major) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100).
CIFAR-10: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; CIFAR-100: ``train`` and
``test``. Training batches come first; ``split_dataset`` makes its own seeded split.

The unpickler resolves only the globals those files contain (NumPy's array reconstructor, ndarray,
dtype, and ``_codecs.encode`` for bytes pickled at protocol 2); anything else is refused, so a
hostile file cannot run code.
"""

from __future__ import annotations

import codecs
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from search.datasets.types import Dataset
from search.errors import DatasetError

__all__ = ["CIFAR10", "CIFAR100", "CifarFormat", "load_cifar_dataset", "read_cifar_batch"]


@dataclass(frozen=True)
class CifarFormat:
    """Where one CIFAR variant keeps its batches and its labels."""

    label: str
    folder: str
    files: tuple[str, ...]
    labels_key: bytes
    num_classes: int


CIFAR10 = CifarFormat(
    label="CIFAR-10",
    folder="cifar-10-batches-py",
    files=(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
    labels_key=b"labels",
    num_classes=10,
)
CIFAR100 = CifarFormat(
    label="CIFAR-100",
    folder="cifar-100-python",
    files=("train", "test"),
    labels_key=b"fine_labels",
    num_classes=100,
)

_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR batch"
            ) from None


def _expected(fmt: CifarFormat) -> str:
    return (
        f"expected the {fmt.label} python version as published ({fmt.folder}/: "
        f"{', '.join(fmt.files)}; pickled dicts with b'data' uint8 (n, 3072) and "
        f"{fmt.labels_key!r})"
    )


def read_cifar_batch(
    path: Path, *, fmt: CifarFormat
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Read one batch: images uint8 (n, 3, 32, 32) and labels int64 (n,); DatasetError if bad."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); {_expected(fmt)}") from exc
    try:
        batch = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure is a malformed file
        raise DatasetError(
            f"{path}: not a {fmt.label} batch ({type(exc).__name__}: {exc}); {_expected(fmt)}"
        ) from exc
    if not isinstance(batch, dict):
        raise DatasetError(
            f"{path}: unpickled a {type(batch).__name__}, not a dict; {_expected(fmt)}"
        )
    data = batch.get(b"data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or (
        data.shape[1] != 3072
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: b'data' is {got}; {_expected(fmt)}")
    try:
        labels = np.asarray(batch.get(fmt.labels_key), dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path}: {fmt.labels_key!r} unreadable ({exc}); {_expected(fmt)}"
        ) from exc
    if labels.shape != (data.shape[0],):
        raise DatasetError(
            f"{path}: {fmt.labels_key!r} has shape {labels.shape} for {data.shape[0]} images; "
            f"{_expected(fmt)}"
        )
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= fmt.num_classes):
        raise DatasetError(
            f"{path}: labels span [{int(labels.min())}, {int(labels.max())}]; "
            f"{fmt.label} labels lie in 0..{fmt.num_classes - 1}"
        )
    images = data.reshape(data.shape[0], 3, 32, 32)  # (n, 3072) -> (n, 3, 32, 32): RGB planes
    return images, labels


def load_cifar_dataset(folder: Path, *, fmt: CifarFormat, name: str) -> Dataset:
    """Load every batch under ``folder`` (or ``folder/<published folder name>``)."""
    if (folder / fmt.folder).is_dir():
        folder = folder / fmt.folder
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; {_expected(fmt)}")
    xs: list[npt.NDArray[np.uint8]] = []
    ys: list[npt.NDArray[np.int64]] = []
    for file_name in fmt.files:
        path = folder / file_name
        if not path.is_file():
            raise DatasetError(f"{path}: file not found; {_expected(fmt)}")
        images, labels = read_cifar_batch(path, fmt=fmt)
        xs.append(images)
        ys.append(labels)
    x = np.concatenate(xs).astype(np.float32)  # (N, 3, 32, 32), values 0..255
    return Dataset(x=x, y=np.concatenate(ys), num_classes=fmt.num_classes, name=name)
