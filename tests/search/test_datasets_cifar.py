"""CIFAR-10 / CIFAR-100 "python version" loading from real pickles written to tmp_path."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from search.datasets import load_dataset
from search.errors import DatasetError


def batch_pickle(data: np.ndarray, labels: list[int], *, key: bytes, protocol: int) -> bytes:
    """A batch as the published files hold it; at protocol 2 with NumPy 1's module path, as the
    Python 2 pickles of the published archives name the array reconstructor."""
    raw = pickle.dumps(
        {b"batch_label": b"batch", key: labels, b"data": data, b"filenames": [b"a.png"]},
        protocol=protocol,
    )
    if protocol == 2:
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    return raw


def make_cifar(
    folder: Path, *, files: tuple[str, ...], key: bytes, num_classes: int, protocol: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(2 * len(files), 3072), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=2 * len(files))
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(files):
        rows = slice(2 * i, 2 * i + 2)
        (folder / name).write_bytes(
            batch_pickle(data[rows], labels[rows].tolist(), key=key, protocol=protocol)
        )
    return data, labels


CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch")


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar10_batches_load_as_rgb_planes(tmp_path: Path, protocol: int) -> None:
    data, labels = make_cifar(tmp_path / "cifar-10-batches-py", files=CIFAR10_FILES,
                              key=b"labels", num_classes=10, protocol=protocol)
    ds = load_dataset("cifar10", path=tmp_path)  # the parent of the published folder works too
    assert ds.x.shape == (12, 3, 32, 32) and ds.x.dtype == np.float32
    assert ds.num_classes == 10
    np.testing.assert_array_equal(ds.y, labels)
    # Row layout: 1024 red, 1024 green, 1024 blue values, each 32 x 32 row-major.
    assert ds.x[3, 1, 2, 5] == data[3, 1024 + 2 * 32 + 5]
    assert ds.x[11, 2, 31, 31] == data[11, 3071]
    np.testing.assert_array_equal(ds.x.reshape(12, 3072), data.astype(np.float32))


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    data, labels = make_cifar(tmp_path, files=("train", "test"), key=b"fine_labels",
                              num_classes=100)
    ds = load_dataset("cifar100", path=tmp_path)
    assert ds.num_classes == 100 and ds.x.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_array_equal(ds.x.reshape(4, 3072), data.astype(np.float32))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    make_cifar(tmp_path, files=("train", "test"), key=b"fine_labels", num_classes=100)
    (tmp_path / "test").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar100", path=tmp_path)
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'test'}: not a CIFAR-100 batch (UnpicklingError: global ")
    assert "is not allowed in a CIFAR batch); expected the CIFAR-100 python version" in text


def test_missing_batch_names_file_and_format(tmp_path: Path) -> None:
    make_cifar(tmp_path, files=CIFAR10_FILES[:-1], key=b"labels", num_classes=10)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", path=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'test_batch'}: file not found; expected the CIFAR-10 python version as "
        "published (cifar-10-batches-py/: data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
        "data_batch_5, test_batch; pickled dicts with b'data' uint8 (n, 3072) and b'labels')"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (pickle.dumps([1, 2], protocol=2), "unpickled a list, not a dict"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
         "b'data' is uint8 (2, 100)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
         "b'labels' has shape (1,) for 2 images"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
         "labels span [0, 10]; CIFAR-10 labels lie in 0..9"),
        (b"not a pickle", "not a CIFAR-10 batch (UnpicklingError"),
    ],
)
def test_malformed_batches(tmp_path: Path, content: bytes, message: str) -> None:
    make_cifar(tmp_path, files=CIFAR10_FILES, key=b"labels", num_classes=10)
    (tmp_path / "data_batch_3").write_bytes(content)
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'data_batch_3'}: {message}")):
        load_dataset("cifar10", path=tmp_path)
