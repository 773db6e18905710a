"""The front members' models a local search leaves in its ``--out`` folder, and where they lie.

``<out>/models/trial-<N>.safetensors`` (``models.serialize``: weights, architecture, input
statistics) for every front member whose weights this process trained, and
``<out>/models/trial-<N>.onnx`` beside it when asked (``models.export.to_onnx``).
``paretonas export --run <out>`` reads them back from the same paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from search.records import FrontMember

__all__ = ["FORMATS", "MODELS_DIR", "model_path", "write_front_models"]

MODELS_DIR = "models"
FORMATS = ("safetensors", "onnx")
_MODEL_FILE = re.compile(rf"trial-\d+\.({'|'.join(FORMATS)})")


def model_path(out_dir: Path, number: int, fmt: str) -> Path:
    """Where trial ``number``'s model in format ``fmt`` lies under a search's ``out_dir``."""
    return out_dir / MODELS_DIR / f"trial-{number}.{fmt}"


def write_front_models(out_dir: Path, *, members: Sequence[FrontMember],
                       weights: Mapping[int, bytes], onnx: bool) -> tuple[list[Path], list[int]]:
    """Write each member's safetensors (and ONNX with ``onnx``) and remove the files of trials
    no longer on the front (a resumed search's folder holds the earlier process's); a member
    whose weights an earlier process of this folder wrote keeps its file. Returns (files
    written, numbers of members whose weights are neither held nor in the folder: trained by
    another process sharing the storage)."""
    written: list[Path] = []
    absent: list[int] = []
    for member in members:
        path = model_path(out_dir, member.number, "safetensors")
        data = weights.get(member.number)
        if data is None and path.is_file():
            data = path.read_bytes()  # an earlier process of this folder trained it
        elif data is None:
            absent.append(member.number)
            continue
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
        onnx_path = model_path(out_dir, member.number, "onnx")
        if onnx and (member.number in weights or not onnx_path.is_file()):
            from models.export import to_onnx
            from models.serialize import from_safetensors

            model, _ = from_safetensors(data)
            onnx_path.write_bytes(to_onnx(model))
            written.append(onnx_path)
    on_front = {model_path(out_dir, m.number, fmt).name for m in members for fmt in FORMATS}
    folder = out_dir / MODELS_DIR
    for stale in sorted(folder.iterdir()) if folder.is_dir() else ():
        if _MODEL_FILE.fullmatch(stale.name) and stale.name not in on_front:
            stale.unlink()
    return written, absent
