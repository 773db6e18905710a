"""PyTorch layers (full, bilinear, low-rank), the architecture spec, the model builder, exact costs.

``count_params`` and ``count_macs`` need no torch; ``build_model`` imports it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.costs import count_macs, count_params

if TYPE_CHECKING:
    from models.builder import build_model

__all__ = ["build_model", "count_macs", "count_params"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from models.builder import build_model

        return build_model
    raise AttributeError(f"module 'models' has no attribute {name!r}")
