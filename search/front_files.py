"""The front members' models a local search leaves in its ``--out`` folder, and where they lie.

``<out>/models/trial-<N>.safetensors`` (``models.serialize``: weights, architecture, input
statistics) for every front member whose weights this process trained, and
``<out>/models/trial-<N>.onnx`` beside it when asked (``models.export.to_onnx``).
``paretonas export --run <out>`` reads them back from the same paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from search.records import FrontMember

__all__ = ["FORMATS", "MODELS_DIR", "model_path", "write_front_models"]

MODELS_DIR = "models"
FORMATS = ("safetensors", "onnx")


def model_path(out_dir: Path, number: int, fmt: str) -> Path:
    """Where trial ``number``'s model in format ``fmt`` lies under a search's ``out_dir``."""
    return out_dir / MODELS_DIR / f"trial-{number}.{fmt}"


def write_front_models(out_dir: Path, *, members: Sequence[FrontMember],
                       weights: Mapping[int, bytes], onnx: bool) -> tuple[list[Path], list[int]]:
    """Write each member's safetensors (and ONNX with ``onnx``); returns (files written,
    numbers of members whose weights this process does not hold: trained by another process
    sharing the storage)."""
    written: list[Path] = []
    absent: list[int] = []
    for member in members:
        data = weights.get(member.number)
        if data is None:
            absent.append(member.number)
            continue
        path = model_path(out_dir, member.number, "safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
        if onnx:
            from models.export import to_onnx
            from models.serialize import from_safetensors

            model, _ = from_safetensors(data)
            onnx_path = model_path(out_dir, member.number, "onnx")
            onnx_path.write_bytes(to_onnx(model))
            written.append(onnx_path)
    return written, absent
