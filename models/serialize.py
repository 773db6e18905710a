"""Save a model with its architecture and preprocessing in one safetensors blob; one call
rebuilds a model that takes raw inputs.

Metadata: ``architecture`` = ``spec.to_json()``, ``preprocess`` = ``Preprocess.to_json()``. The
tensors are the network's state_dict (``build_model(spec)`` names), in the dtype it was trained in.

>>> from models.spec import ArchSpec
>>> from models.preprocess import Preprocess
>>> spec = ArchSpec(input_shape=(1, 4, 4), num_classes=3)
>>> pre = Preprocess(mean=(0.5,), std=(2.0,), input_shape=(1, 4, 4), num_classes=3, dataset="x")
>>> from models import build_model
>>> model, again = from_safetensors(to_safetensors(build_model(spec), spec, preprocess=pre))
>>> again == spec, model.info == pre
(True, True)
"""

from __future__ import annotations

import json
import struct
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from models.builder import build_model
from models.deployed import DeployedModel
from models.errors import SpecError
from models.preprocess import Preprocess
from models.spec import ArchSpec

__all__ = ["ARCHITECTURE_KEY", "PREPROCESS_KEY", "WeightsError", "from_safetensors",
           "to_safetensors"]

ARCHITECTURE_KEY = "architecture"
PREPROCESS_KEY = "preprocess"
_SAVE_HINT = "save with models.serialize.to_safetensors(model, spec, preprocess=...)"


class WeightsError(SpecError):
    """A safetensors blob ``from_safetensors`` cannot rebuild; the message names what is missing
    or wrong (the header, a metadata key, tensors, shapes or dtypes) and how to fix it."""


def to_safetensors(model: nn.Module, spec: ArchSpec, *, preprocess: Preprocess) -> bytes:
    """The network's state_dict as safetensors bytes with metadata ``architecture`` and
    ``preprocess``. ``model`` is the ``build_model(spec)`` network or a ``DeployedModel``."""
    net = model.net if isinstance(model, DeployedModel) else model
    if preprocess.input_shape != spec.input_shape or preprocess.num_classes != spec.num_classes:
        raise SpecError("preprocess", f"input_shape {preprocess.input_shape} and num_classes "
                        f"{preprocess.num_classes} differ from the architecture's "
                        f"{spec.input_shape} and {spec.num_classes}; give the statistics of the "
                        "dataset the model was trained on")
    state = {name: t.detach().contiguous().cpu() for name, t in net.state_dict().items()}
    return save_tensors(state, metadata={ARCHITECTURE_KEY: spec.to_json(),
                                         PREPROCESS_KEY: preprocess.to_json()})


def _header(data: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors blob (8-byte little-endian size, then JSON)."""
    try:
        (size,) = struct.unpack("<Q", data[:8])
        if size > len(data) - 8:
            raise ValueError(f"the header claims {size} bytes, the blob has {len(data) - 8}")
        header = json.loads(data[8:8 + size])
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise WeightsError("weights", f"not a safetensors blob ({exc}); expected the bytes "
                           f"to_safetensors returned ({_SAVE_HINT})") from exc
    if not isinstance(header, dict):
        raise WeightsError("weights", f"not a safetensors blob (its header is a "
                           f"{type(header).__name__}, not an object); {_SAVE_HINT}")
    return header


def _read_metadata(header: dict[str, Any], preprocess: Preprocess | None
                   ) -> tuple[ArchSpec, Preprocess]:
    meta = header.get("__metadata__")
    meta = meta if isinstance(meta, dict) else {}
    missing = [key for key in (ARCHITECTURE_KEY, PREPROCESS_KEY)
               if key not in meta and not (key == PREPROCESS_KEY and preprocess is not None)]
    if missing:
        raise WeightsError(", ".join(missing), "missing from the safetensors metadata; "
                           f"{_SAVE_HINT}" + ("" if ARCHITECTURE_KEY in missing else
                           " (a file saved without its input statistics: pass "
                           "from_safetensors(data, preprocess=Preprocess(...)))"))
    spec = ArchSpec.from_json(meta[ARCHITECTURE_KEY])
    pre = preprocess if preprocess is not None else Preprocess.from_json(meta[PREPROCESS_KEY])
    if pre.input_shape != spec.input_shape or pre.num_classes != spec.num_classes:
        raise WeightsError(PREPROCESS_KEY, f"input_shape {pre.input_shape} and num_classes "
                           f"{pre.num_classes} differ from the architecture's {spec.input_shape} "
                           f"and {spec.num_classes}")
    return spec, pre


def _check_tensors(header: dict[str, Any], expected: dict[str, torch.Size]) -> torch.dtype:
    """The one floating dtype of the stored tensors; WeightsError naming every missing,
    unexpected or misshapen tensor (before anything is loaded)."""
    stored = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    problems = []
    missing = sorted(set(expected) - set(stored))
    if missing:
        problems.append("missing tensors " + ", ".join(
            f"{k} {tuple(expected[k])}" for k in missing))
    unexpected = sorted(set(stored) - set(expected))
    if unexpected:
        problems.append("unexpected tensors " + ", ".join(unexpected))
    misshapen = [f"{k} stored {tuple(stored[k].get('shape', ()))}, architecture "
                 f"{tuple(expected[k])}" for k in sorted(set(stored) & set(expected))
                 if list(stored[k].get("shape", ())) != list(expected[k])]
    if misshapen:
        problems.append("shapes differ: " + "; ".join(misshapen))
    dtypes = sorted({str(v.get("dtype")) for v in stored.values()})
    if len(dtypes) > 1 or (dtypes and dtypes[0] not in _FLOAT_DTYPES):
        problems.append(f"dtypes {', '.join(dtypes)}; expected one of "
                        f"{', '.join(sorted(_FLOAT_DTYPES))} for every tensor")
    if problems:
        raise WeightsError("weights", "; ".join(problems) + "; the tensors must be the "
                           f"state_dict of build_model(architecture) ({_SAVE_HINT})")
    return _FLOAT_DTYPES[dtypes[0]] if dtypes else torch.float32


_FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
                 "F64": torch.float64}


def from_safetensors(data: bytes, *, preprocess: Preprocess | None = None
                     ) -> tuple[DeployedModel, ArchSpec]:
    """Rebuild (model, spec) from ``to_safetensors`` bytes. The model takes raw inputs (its
    ``preprocess`` normalises them; ``model.net`` is the bare network), keeps the stored dtype,
    and is on CPU in eval mode. ``preprocess`` supplies statistics a file lacks.

    Any blob it cannot rebuild raises one ``WeightsError`` (a ``SpecError``) naming what is
    missing or wrong; no model is returned half-built.
    """
    header = _header(data)
    spec, pre = _read_metadata(header, preprocess)
    net = build_model(spec, device="meta")
    dtype = _check_tensors(header, {k: t.shape for k, t in net.state_dict().items()})
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # safetensors raises its own SafetensorError for a bad body
        raise WeightsError("weights", f"the tensor data cannot be read ({exc}); the file is "
                           "truncated or corrupt: download or save it again") from exc
    net = build_model(spec, dtype=dtype)
    net.load_state_dict(tensors)
    model = DeployedModel(net, pre, spec=spec)
    model.eval()
    return model, spec
