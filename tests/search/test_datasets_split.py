"""The built-in digits set, load_dataset's arguments, and the seeded, normalised split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search.datasets import Dataset, load_dataset, split_dataset
from search.datasets.split import split_indices
from search.errors import DatasetError


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_is_built_in(digits: Dataset) -> None:
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.dtype == np.float32
    assert digits.x.min() == 0.0 and digits.x.max() == 16.0
    assert digits.y.dtype == np.int64 and np.bincount(digits.y).sum() == 1797
    assert digits.num_classes == 10 and digits.input_shape == (1, 8, 8)


def test_load_dataset_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("imagenet")
    assert str(info.value) == (
        "dataset: got 'imagenet'; allowed: digits, mnist, fashion-mnist, cifar10, cifar100, npz"
    )
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10")
    assert str(info.value) == (
        "path: missing; dataset 'cifar10' is read from disk, give the folder holding its files"
    )
    with pytest.raises(DatasetError, match="digits is built in and takes no path"):
        load_dataset("digits", path=tmp_path)


def test_split_sizes_are_exact_disjoint_and_cover_everything(digits: Dataset) -> None:
    train, val, test = split_indices(digits.y, seed=3, val_fraction=0.15, test_fraction=0.2)
    # round(1797 * 0.15) = 270, round(1797 * 0.2) = 359, the rest trains.
    assert (len(train), len(val), len(test)) == (1168, 270, 359)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1797))


def test_split_is_stratified(digits: Dataset) -> None:
    _, val, test = split_indices(digits.y, seed=0, val_fraction=0.15, test_fraction=0.15)
    per_class = np.bincount(digits.y)
    for part in (val, test):
        share = np.bincount(digits.y[part], minlength=10)
        assert np.all(np.abs(share - per_class * 0.15) <= 1.0 + 1e-9)


def test_same_seed_same_split_other_seed_other_split(digits: Dataset) -> None:
    a = split_dataset(digits, seed=7)
    b = split_dataset(digits, seed=7)
    c = split_dataset(digits, seed=8)
    np.testing.assert_array_equal(a.val.x, b.val.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.val.y, c.val.y)


def test_normalisation_uses_training_statistics_only(digits: Dataset) -> None:
    splits = split_dataset(digits, seed=1)
    train_idx, val_idx, _ = split_indices(digits.y, seed=1, val_fraction=0.15, test_fraction=0.15)
    raw_train = digits.x[train_idx].astype(np.float64)
    mean, std = raw_train.mean(), raw_train.std()
    np.testing.assert_allclose(splits.mean, [mean], rtol=1e-6)
    np.testing.assert_allclose(splits.std, [std], rtol=1e-6)
    np.testing.assert_allclose(splits.train.x.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(splits.train.x.std(), 1.0, atol=1e-5)
    np.testing.assert_allclose(splits.val.x, (digits.x[val_idx] - mean) / std, atol=1e-5)
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10


def test_per_channel_statistics() -> None:
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5, 2, (40, 3, 3)), rng.normal(-1, 0.5, (40, 3, 3))], axis=1)
    ds = Dataset(x=x.astype(np.float32), y=np.arange(40) % 2, num_classes=2, name="two")
    splits = split_dataset(ds, seed=0, val_fraction=0.25, test_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 10, 10)
    np.testing.assert_allclose(splits.train.x.mean(axis=(0, 2, 3)), [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(splits.train.x.std(axis=(0, 2, 3)), [1.0, 1.0], atol=1e-5)


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (0.0, 0.15, "val_fraction: got 0.0; must lie strictly between 0 and 1 (e.g. 0.15)"),
        (0.15, 1.5, "test_fraction: got 1.5; must lie strictly between 0 and 1 (e.g. 0.15)"),
        (0.6, 0.4, "val_fraction, test_fraction: got 0.6 and 0.4 of 1797 samples, leaving 0 to "
                   "train, 1078 to validate, 719 to test; each part needs at least one sample "
                   "(use more data or other fractions)"),
    ],
)
def test_bad_fractions(digits: Dataset, val: float, test: float, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        split_dataset(digits, seed=0, val_fraction=val, test_fraction=test)
    assert str(info.value) == message
