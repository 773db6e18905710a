"""Generic .npz loading from real npz files written to tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from search.datasets import load_dataset
from search.errors import DatasetError

EXPECTED = (
    "expected an .npz with arrays x (N, C, H, W) or (N, D) numbers and y (N,) integer labels "
    "0..K-1 (np.savez(path, x=x, y=y))"
)


def test_images_keep_their_shape_and_classes_count_from_labels(tmp_path: Path) -> None:
    x = np.arange(5 * 2 * 3 * 4, dtype=np.uint8).reshape(5, 2, 3, 4)
    y = np.array([0, 3, 1, 3, 2], dtype=np.int32)
    np.savez_compressed(tmp_path / "set.npz", x=x, y=y)
    ds = load_dataset("npz", path=tmp_path / "set.npz")
    assert ds.x.dtype == np.float32 and ds.x.shape == (5, 2, 3, 4)
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 3, 1, 3, 2]
    assert ds.num_classes == 4


def test_flat_features_become_a_square_ish_image(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(6, 12)).astype(np.float64)
    np.savez(tmp_path / "flat.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]))
    ds = load_dataset("npz", path=tmp_path / "flat.npz")
    assert ds.x.shape == (6, 1, 3, 4)
    np.testing.assert_array_equal(ds.x.reshape(6, 12), x.astype(np.float32))


def test_flat_features_of_prime_length_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "prime.npz", x=np.zeros((4, 7)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DatasetError) as info:
        load_dataset("npz", path=tmp_path / "prime.npz")
    text = str(info.value)
    prefix = f"{tmp_path / 'prime.npz'}: cannot lay flat x out as an image (x.shape[1]: "
    assert text.startswith(prefix)


def test_grey_images_get_a_channel_axis(tmp_path: Path) -> None:
    np.savez(tmp_path / "g.npz", x=np.ones((3, 5, 5)), y=np.array([1.0, 0.0, 1.0]))
    ds = load_dataset("npz", path=tmp_path / "g.npz")
    assert ds.x.shape == (3, 1, 5, 5) and ds.y.tolist() == [1, 0, 1]


def test_missing_file_and_missing_array(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("npz", path=tmp_path / "absent.npz")
    assert str(info.value) == f"{tmp_path / 'absent.npz'}: file not found; {EXPECTED}"
    np.savez(tmp_path / "noy.npz", x=np.zeros((2, 4)), labels=np.zeros(2))
    with pytest.raises(DatasetError) as info:
        load_dataset("npz", path=tmp_path / "noy.npz")
    assert str(info.value) == (
        f"{tmp_path / 'noy.npz'}: array 'y' missing (found: x, labels); {EXPECTED}"
    )


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 4, 4)), "y": np.array([0, 1])}, "y has shape (2,) for 3 samples in x"),
        ({"x": np.zeros((2, 4, 4)), "y": np.array([0.5, 1.0])}, "y is float64, not integer labels"),
        ({"x": np.zeros((2, 4, 4)), "y": np.array([-1, 1])}, "y holds the negative label -1"),
        ({"x": np.zeros((2, 4, 4)), "y": np.array([1, 1])}, "y holds a single class"),
        ({"x": np.full((2, 4, 4), np.nan), "y": np.array([0, 1])}, "x holds NaN or infinite"),
        ({"x": np.array(["a", "b"]), "y": np.array([0, 1])}, "x is <U1 with shape (2,)"),
    ],
)
def test_malformed_arrays(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'bad.npz'}: {message}")):
        load_dataset("npz", path=tmp_path / "bad.npz")


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"\x00\x01 junk")
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'junk.npz'}: not a readable")):
        load_dataset("npz", path=tmp_path / "junk.npz")
    np.save(tmp_path / "bare.npy", np.zeros(3))
    with pytest.raises(DatasetError, match="holds one bare array, not named arrays"):
        load_dataset("npz", path=tmp_path / "bare.npy")
