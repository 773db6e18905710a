"""Training one architecture: ``train`` (the entry point), ``TrainConfig``, ``EpochReport``.

Modules: ``config`` (``TrainConfig``, no torch), ``trainer`` (``train`` and its records),
``loop`` (one epoch, evaluation, the learning-rate schedule), ``optimizer`` (the phase optimizer).

``TrainConfig`` is imported eagerly; the torch-using names (``train``, ``TrainResult``,
``EpochReport``) load ``search.training.trainer`` on first access, so that parsing a search space
(which reads ``TrainConfig``) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from search.training.config import TrainConfig

if TYPE_CHECKING:
    from search.training.trainer import EpochReport, TrainResult, train

__all__ = ["EpochReport", "TrainConfig", "TrainResult", "train"]

_LAZY = frozenset({"EpochReport", "TrainResult", "train"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("search.training.trainer"), name)
    raise AttributeError(f"module 'search.training' has no attribute {name!r}")
