"""The one error root of search/."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DatasetError", "SearchError", "SpaceError"]


class SearchError(ValueError):
    """Anything search/ refuses: a bad dataset, a bad search space, a bad config."""


class DatasetError(SearchError):
    """A dataset that cannot be loaded. The message names the file and the format expected."""


class SpaceError(SearchError):
    """A bad search space or search config. ``path`` is a field path like ``layers[2].kinds``."""

    def __init__(self, path: str, message: str, allowed: Sequence[object] | None = None) -> None:
        text = f"{path}: {message}"
        if allowed is not None:
            text += f"; allowed: {', '.join(map(str, allowed))}"
        super().__init__(text)
        self.path = path
        self.detail = message
        self.allowed = list(allowed) if allowed is not None else None
