"""The formats a front member's model downloads in: the stored safetensors bytes, or ONNX made
from them on request (``models.export.to_onnx``; a few seconds, so the last few are kept).

One lock serialises the ONNX exports of this process: torch.export traces in global state.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from models.errors import SpecError
from service.api.problems import Problem, clip

__all__ = ["FORMATS", "MEDIA_TYPE", "check_format", "model_bytes"]

FORMATS = ("safetensors", "onnx")
MEDIA_TYPE = "application/octet-stream"
_CACHE_SIZE = 8
_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def check_format(value: str) -> str:
    """``value`` if it is one of ``FORMATS``; else a 422 invalid-format problem listing them."""
    if value not in FORMATS:
        raise Problem(
            "invalid-format",
            status=422,
            detail=f"format: got {clip(value)}; allowed: {', '.join(FORMATS)}",
            allowed=list(FORMATS),
        )
    return value


def model_bytes(data: bytes, *, fmt: str, what: str) -> bytes:
    """The stored safetensors ``data`` in format ``fmt``. ``what`` names the trial in errors:
    stored bytes that cannot be rebuilt (saved before the input statistics were recorded, or
    damaged) answer 409 model-not-exportable naming what is missing."""
    if fmt == "safetensors":
        return data
    key = hashlib.sha256(data).hexdigest()
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        from models.export import to_onnx
        from models.serialize import from_safetensors

        try:
            model, _ = from_safetensors(data)
            onnx = to_onnx(model)
        except SpecError as exc:
            raise Problem(
                "model-not-exportable",
                status=409,
                detail=f"{what}: its stored weights cannot be exported as ONNX ({exc}); "
                "download format=safetensors instead",
            ) from exc
        _cache[key] = onnx
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return onnx
