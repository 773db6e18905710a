"""from_safetensors: preprocessing inside the rebuilt model, the stored dtype kept, and one
WeightsError naming what is missing for any blob it cannot rebuild (never a KeyError or a
half-built model)."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save

from models import build_model, count_params
from models.deployed import DeployedModel
from models.errors import SpecError
from models.preprocess import Preprocess
from models.serialize import WeightsError, from_safetensors, to_safetensors
from models.spec import ArchSpec, LayerSpec

SPEC = ArchSpec(input_shape=(2, 4, 4), num_classes=3, base_channels=2,
                layers=(LayerSpec(kind="bilinear"), LayerSpec(kind="lowrank", rank=3)))
PRE = Preprocess(mean=(8.25, -1.5), std=(4.5, 0.125), input_shape=(2, 4, 4), num_classes=3,
                 dataset="toy")


def _blob(dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, bytes]:
    torch.manual_seed(0)
    net = build_model(SPEC, dtype=dtype).eval()
    return net, to_safetensors(net, SPEC, preprocess=PRE)


def test_rebuilt_model_normalises_raw_inputs_itself() -> None:
    net, data = _blob()
    model, spec = from_safetensors(data)
    assert isinstance(model, DeployedModel) and spec == SPEC and model.info == PRE
    raw = torch.rand(5, 2, 4, 4) * 16
    mean = torch.tensor(PRE.mean).view(1, 2, 1, 1)
    std = torch.tensor(PRE.std).view(1, 2, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(raw), net((raw - mean) / std))
        assert torch.equal(model.net(raw), net(raw))  # the bare network: normalised inputs
    # The statistics are buffers, not parameters: the parameter count is the reported one.
    assert sum(p.numel() for p in model.parameters()) == count_params(SPEC)
    assert json.loads(_metadata(data)["preprocess"]) == PRE.to_dict()


def _metadata(data: bytes) -> dict[str, str]:
    (size,) = struct.unpack("<Q", data[:8])
    meta: dict[str, str] = json.loads(data[8:8 + size])["__metadata__"]
    return meta


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_stored_dtype_is_kept(dtype: torch.dtype) -> None:
    net, data = _blob(dtype)
    model, _ = from_safetensors(data)
    assert {p.dtype for p in model.parameters()} == {dtype}
    raw = torch.rand(3, 2, 4, 4, dtype=torch.float32) * 16
    with torch.no_grad():
        normalised = ((raw - torch.tensor(PRE.mean).view(1, 2, 1, 1))
                      / torch.tensor(PRE.std).view(1, 2, 1, 1)).to(dtype)
        assert model(raw).dtype == dtype
        assert torch.equal(model(raw), net(normalised))


def test_statistics_round_trip_bit_for_bit() -> None:
    import numpy as np

    mean = np.array([0.1, 1 / 3], dtype=np.float32)  # not exactly representable in decimal
    pre = Preprocess(mean=tuple(float(v) for v in mean), std=(1.0, 2.0), input_shape=(2, 4, 4),
                     num_classes=3, dataset="toy")
    model, _ = from_safetensors(to_safetensors(build_model(SPEC), SPEC, preprocess=pre))
    assert np.array_equal(model.preprocess.mean.flatten().numpy(), mean)


def _foreign_cases() -> dict[str, tuple[bytes, str]]:
    _, good = _blob()
    meta = _metadata(good)
    tensors = {k: v.contiguous() for k, v in build_model(SPEC).state_dict().items()}
    fewer = {k: v for k, v in tensors.items() if k != "layers.1.s"}
    wrong = {**tensors, "layers.0.U": torch.zeros(2, 1, 2, 3), "extra.w": torch.zeros(1)}
    mixed = {**tensors, "classifier.bias": tensors["classifier.bias"].double()}
    ints = {k: torch.zeros(v.shape, dtype=torch.int32) for k, v in tensors.items()}
    no_pre = {"architecture": meta["architecture"]}
    return {
        "empty": (b"", "weights: not a safetensors blob (unpack requires a buffer of 8 bytes); "
                  "expected the bytes to_safetensors returned (save with "
                  "models.serialize.to_safetensors(model, spec, preprocess=...))"),
        "header past the end": (struct.pack("<Q", 1 << 40) + b"{}", "weights: not a "
                                "safetensors blob (the header claims 1099511627776 bytes, the "
                                "blob has 2)"),
        "truncated": (good[:-7], "weights: the tensor data cannot be read"),
        "foreign": (save({"w": torch.zeros(1)}), "architecture, preprocess: missing from the "
                    "safetensors metadata; save with models.serialize.to_safetensors(model, "
                    "spec, preprocess=...)"),
        "no statistics": (save(tensors, metadata=no_pre), "preprocess: missing from the "
                          "safetensors metadata; save with models.serialize.to_safetensors("
                          "model, spec, preprocess=...) (a file saved without its input "
                          "statistics: pass from_safetensors(data, preprocess=Preprocess(...)))"),
        "missing tensor": (save(fewer, metadata=meta), "weights: missing tensors layers.1.s "
                           "(3,); the tensors must be"),
        "wrong tensors": (save(wrong, metadata=meta), "weights: unexpected tensors extra.w; "
                          "shapes differ: layers.0.U stored (2, 1, 2, 3), architecture "
                          "(2, 2, 4, 4); the tensors must be"),
        "mixed dtypes": (save(mixed, metadata=meta), "weights: dtypes F32, F64; expected one of "
                         "BF16, F16, F32, F64 for every tensor"),
        "integer tensors": (save(ints, metadata=meta), "weights: dtypes I32; expected one of"),
        "bad statistics": (save(tensors, metadata={**meta, "preprocess": "{\"mean\": [1]}"}),
                           "preprocess.dataset: missing; required: dataset, input_shape, "
                           "num_classes, std"),
    }


@pytest.mark.parametrize("case", sorted(_foreign_cases()))
def test_a_blob_it_cannot_rebuild_raises_one_error_naming_what_is_missing(case: str) -> None:
    data, message = _foreign_cases()[case]
    with pytest.raises(SpecError) as err:
        from_safetensors(data)
    assert str(err.value).startswith(message), str(err.value)
    if case != "bad statistics":
        assert isinstance(err.value, WeightsError)


def test_statistics_may_be_supplied_for_a_file_without_them() -> None:
    tensors = build_model(SPEC).state_dict()
    data = save(dict(tensors), metadata={"architecture": SPEC.to_json()})
    model, _ = from_safetensors(data, preprocess=PRE)
    assert model.info == PRE


def test_statistics_of_another_shape_are_refused() -> None:
    other = Preprocess(mean=(0.0,), std=(1.0,), input_shape=(1, 4, 4), num_classes=3, dataset="x")
    with pytest.raises(SpecError) as err:
        to_safetensors(build_model(SPEC), SPEC, preprocess=other)
    assert str(err.value).startswith("preprocess: input_shape (1, 4, 4) and num_classes 3 "
                                     "differ from the architecture's (2, 4, 4) and 3")


def test_preprocess_validation_names_the_field() -> None:
    with pytest.raises(SpecError, match=r"^preprocess.std: got \(1.0, 0.0\); must be a list of "
                       r"positive finite numbers"):
        Preprocess(mean=(0.0, 0.0), std=(1.0, 0.0), input_shape=(2, 4, 4), num_classes=3,
                   dataset="x")
    with pytest.raises(SpecError, match=r"^preprocess.input_dtype: got 'uint8'; allowed: float32"):
        Preprocess(mean=(0.0,), std=(1.0,), input_shape=(1, 4, 4), num_classes=3, dataset="x",
                   input_dtype="uint8")
