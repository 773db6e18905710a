"""Save a model with its architecture in one safetensors blob; one call rebuilds it.

>>> from models.spec import ArchSpec
>>> spec = ArchSpec(input_shape=(1, 4, 4), num_classes=3)
>>> from models import build_model
>>> model, again = from_safetensors(to_safetensors(build_model(spec), spec))
>>> again == spec
True
"""

from __future__ import annotations

import json
import struct

from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from models.builder import build_model
from models.errors import SpecError
from models.spec import ArchSpec

__all__ = ["from_safetensors", "to_safetensors"]

ARCHITECTURE_KEY = "architecture"


def to_safetensors(model: nn.Module, spec: ArchSpec) -> bytes:
    """The model's state_dict as safetensors bytes, metadata ``architecture`` = spec.to_json()."""
    state = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    return save_tensors(state, metadata={ARCHITECTURE_KEY: spec.to_json()})


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (8-byte little-endian header size, JSON)."""
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + size])
    except (struct.error, ValueError) as exc:
        raise SpecError("weights", f"not a safetensors blob ({exc}); expected the bytes "
                        "to_safetensors returned") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def from_safetensors(data: bytes) -> tuple[nn.Module, ArchSpec]:
    """Rebuild (model, spec) from ``to_safetensors`` bytes; the model is on CPU in eval mode."""
    meta = _metadata(data)
    if ARCHITECTURE_KEY not in meta:
        raise SpecError(ARCHITECTURE_KEY, "missing from the safetensors metadata; save with "
                        "models.serialize.to_safetensors(model, spec)")
    spec = ArchSpec.from_json(meta[ARCHITECTURE_KEY])
    model = build_model(spec)
    model.load_state_dict(load_tensors(data))
    model.eval()
    return model, spec
