"""Pieces of the trainer: its config and its inner loops (``search.trainer`` is the entry point)."""

from search.training.config import TrainConfig

__all__ = ["TrainConfig"]
