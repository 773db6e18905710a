"""The one error root of models/: every bad spec or bad layer argument raises SpecError."""

from __future__ import annotations

__all__ = ["SpecError"]


class SpecError(ValueError):
    """A value models/ cannot build. The message names the field, the value and what is allowed.

    ``field`` is a dotted path into the architecture spec (``layers[1].rank``) or an argument name.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message
