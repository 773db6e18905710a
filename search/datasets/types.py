"""The plain records datasets travel in: a whole ``Dataset`` and its ``Splits``.

Arrays are NumPy: ``x`` float32 (N, C, H, W), ``y`` int64 (N,). The trainer moves them to the
training device once; nothing here needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.preprocess import Preprocess
from search.errors import DatasetError

__all__ = ["ArrayPair", "Dataset", "FloatArray", "LabelArray", "Splits"]

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]


def _check_pair(name: str, x: FloatArray, y: LabelArray) -> None:
    if x.ndim != 4 or x.dtype != np.float32:
        raise DatasetError(
            f"{name}.x: got dtype {x.dtype} shape {x.shape}; expected float32 (N, C, H, W)"
        )
    if y.ndim != 1 or y.dtype != np.int64 or y.shape[0] != x.shape[0]:
        raise DatasetError(
            f"{name}.y: got dtype {y.dtype} shape {y.shape}; expected int64 ({x.shape[0]},), "
            "one label per sample of x"
        )


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole labelled image set: x float32 (N, C, H, W), y int64 (N,) in [0, num_classes)."""

    x: FloatArray
    y: LabelArray
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        _check_pair(self.name, self.x, self.y)
        if self.num_classes < 2:
            raise DatasetError(f"{self.name}: got {self.num_classes} classes; at least 2 needed")
        if self.y.size and (int(self.y.min()) < 0 or int(self.y.max()) >= self.num_classes):
            raise DatasetError(
                f"{self.name}.y: labels span [{int(self.y.min())}, {int(self.y.max())}]; "
                f"expected integers in [0, {self.num_classes})"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))


@dataclass(frozen=True, eq=False)
class ArrayPair:
    """One part of a split: x float32 (n, C, H, W) normalised, y int64 (n,)."""

    x: FloatArray
    y: LabelArray

    def __post_init__(self) -> None:
        _check_pair("split", self.x, self.y)

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, eq=False)
class Splits:
    """Train / validation / test parts of one dataset, normalised with training statistics.

    ``mean`` and ``std`` are the per-channel statistics (C,) of the raw training part; the search
    optimises validation accuracy and reports test accuracy for the front.
    """

    train: ArrayPair
    val: ArrayPair
    test: ArrayPair
    num_classes: int
    name: str
    mean: FloatArray
    std: FloatArray

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        c, h, w = self.train.x.shape[1:]
        return (int(c), int(h), int(w))

    def preprocess(self) -> Preprocess:
        """What a model trained on these splits expects of raw inputs: the training statistics
        (float32 values, exactly), the input shape and dtype, the class count, the dataset."""
        return Preprocess(mean=tuple(float(v) for v in self.mean),
                          std=tuple(float(v) for v in self.std), input_shape=self.input_shape,
                          num_classes=self.num_classes, dataset=self.name)
