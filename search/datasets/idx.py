"""MNIST and Fashion-MNIST from the IDX files a user has on disk (gzipped or raw).

A folder holds the four files as published: ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or
``.gz``. The training
and test files are concatenated (training first): ``split_dataset`` makes its own seeded split.

IDX layout: two zero bytes, a dtype code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 per dimension, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from search.datasets.types import Dataset
from search.errors import DatasetError

__all__ = ["IDX_FILES", "load_idx_dataset", "read_idx"]

IDX_FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)

# IDX dtype code -> big-endian NumPy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def _expected(label: str) -> str:
    return (
        f"expected {label} IDX files as published (train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz)"
    )


def _find(folder: Path, stem: str, label: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{folder / stem}[.gz]: file not found; {_expected(label)}")


def _read_bytes(path: Path, label: str) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); {_expected(label)}") from exc


def read_idx(path: Path, *, ndim: int, label: str = "MNIST") -> npt.NDArray[np.generic]:
    """Parse one IDX file of unsigned bytes with ``ndim`` dimensions; DatasetError if malformed."""
    data = _read_bytes(path, label)
    want = 0x0800 | ndim
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic is None or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        got = "too short" if magic is None else f"0x{magic:08X}"
        raise DatasetError(
            f"{path}: not an IDX file (magic 0x{want:08X} expected, got {got}); {_expected(label)}"
        )
    if magic != want:
        raise DatasetError(
            f"{path}: IDX magic 0x{magic:08X} (dtype code 0x{data[2]:02X}, {data[3]} dims); "
            f"magic 0x{want:08X} expected (unsigned bytes, {ndim} dims); {_expected(label)}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: IDX header truncated; {_expected(label)}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != count:
        raise DatasetError(
            f"{path}: IDX header promises {count} values for dims {dims}, file holds "
            f"{len(data) - header}; {_expected(label)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_dataset(folder: Path, *, name: str, label: str) -> Dataset:
    """Load the four IDX files under ``folder``: x float32 (N, 1, 28, 28) 0..255, y int64 (N,)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; {_expected(label)}")
    xs: list[npt.NDArray[np.generic]] = []
    ys: list[npt.NDArray[np.generic]] = []
    for images_stem, labels_stem in IDX_FILES:
        images_path = _find(folder, images_stem, label)
        labels_path = _find(folder, labels_stem, label)
        images = read_idx(images_path, ndim=3, label=label)  # (n, H, W)
        labels = read_idx(labels_path, ndim=1, label=label)  # (n,)
        if labels.shape[0] != images.shape[0]:
            raise DatasetError(
                f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in "
                f"{images_path.name}; {_expected(label)}"
            )
        if labels.size and int(labels.max()) >= 10:
            raise DatasetError(
                f"{labels_path}: label {int(labels.max())} found; {label} labels lie in 0..9"
            )
        xs.append(images)
        ys.append(labels)
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise DatasetError(
            f"{folder}: training images are {xs[0].shape[1:]}, test images {xs[1].shape[1:]}; "
            "both must have the same size"
        )
    x = np.concatenate(xs).astype(np.float32)[:, None, :, :]  # (N, 1, H, W)
    y = np.concatenate(ys).astype(np.int64)  # (N,)
    return Dataset(x=np.ascontiguousarray(x), y=y, num_classes=10, name=name)
