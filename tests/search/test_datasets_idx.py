"""MNIST / Fashion-MNIST IDX loading from real IDX bytes written to tmp_path."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from search.datasets import load_dataset
from search.errors import DatasetError

EXPECTED = (
    "expected MNIST IDX files as published (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz)"
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Real IDX: 0x0000, dtype code 0x08 (ubyte), ndim, big-endian uint32 dims, then the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, *, gz: bool) -> None:
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def make_mnist(folder: Path, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train part gzipped, test part raw: 5 + 3 images of 6 x 7 pixels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(8, 6, 7), dtype=np.uint8)
    labels = rng.integers(0, 10, size=8, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "train-images-idx3-ubyte", idx_bytes(images[:5]), gz=True)
    write(folder / "train-labels-idx1-ubyte", idx_bytes(labels[:5]), gz=True)
    write(folder / "t10k-images-idx3-ubyte", idx_bytes(images[5:]), gz=False)
    write(folder / "t10k-labels-idx1-ubyte", idx_bytes(labels[5:]), gz=False)
    return images, labels


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_folder_loads_train_then_test_with_exact_values(tmp_path: Path, name: str) -> None:
    images, labels = make_mnist(tmp_path)
    ds = load_dataset(name, path=tmp_path)
    assert ds.name == name
    assert ds.num_classes == 10
    assert ds.x.dtype == np.float32 and ds.x.shape == (8, 1, 6, 7)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.x[:, 0], images.astype(np.float32))
    np.testing.assert_array_equal(ds.y, labels.astype(np.int64))


def test_missing_file_names_the_file_and_the_format(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", path=tmp_path)
    missing = tmp_path / "t10k-labels-idx1-ubyte"
    assert str(info.value) == f"{missing}[.gz]: file not found; {EXPECTED}"


def test_labels_file_in_place_of_images_reports_both_magics(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", path=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 't10k-images-idx3-ubyte'}: IDX magic 0x00000801 (dtype code 0x08, 1 dims); "
        f"magic 0x00000803 expected (unsigned bytes, 3 dims); {EXPECTED}"
    )


def test_a_file_that_is_not_idx_at_all(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", path=tmp_path)
    assert str(info.value).startswith(
        f"{tmp_path / 'train-images-idx3-ubyte.gz'}: not an IDX file "
        "(magic 0x00000803 expected, got 0x504B0304); expected Fashion-MNIST IDX files"
    )


def test_truncated_values_and_corrupt_gzip(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    full = idx_bytes(np.zeros((3, 6, 7), np.uint8))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(full[:-10])
    with pytest.raises(DatasetError, match=re.escape("promises 126 values for dims (3, 6, 7), "
                                                     "file holds 116")):
        load_dataset("mnist", path=tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(full)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: cannot read"):
        load_dataset("mnist", path=tmp_path)


def test_label_count_must_match_image_count(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(DatasetError, match="2 labels for 3 images in t10k-images-idx3-ubyte"):
        load_dataset("mnist", path=tmp_path)


def test_path_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'nope'}: not a folder")):
        load_dataset("mnist", path=tmp_path / "nope")
