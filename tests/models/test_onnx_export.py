"""ONNX export: onnxruntime gives the PyTorch model's outputs for every layer kind of the
registry, and the file's float tensors hold exactly the reported parameter count.

Tolerance: |onnx - torch| <= 1e-5 * max(1, max |torch logit|) elementwise, i.e. float32
rounding (a few dozen ulps of the largest logit) from a different order of the same products.
One model holds every registry kind with every example it lists (an export takes seconds, so the
kinds share one); per-kind graph checks say which ops each became.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import build_model, count_params
from models.deployed import DeployedModel
from models.export import ExportBilinear, export_copy, onnx_values, to_onnx
from models.layers.registry import CONV_LAYERS, PROJECTION_LAYERS
from models.preprocess import Preprocess
from models.spec import ArchSpec, ConvSpec, LayerSpec

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

RTOL = 1e-5


def _every_kind_spec() -> ArchSpec:
    """A CNN with one convolution per (conv kind, example) and one projection per (projection
    kind, example), at several channel counts: bilinear layers run both the one-pair path
    (C_in = C_out = 1) and the many-channel one."""
    convs = tuple(ConvSpec(kind=name, pool=i == 0, **dict(example))
                  for i, (name, example) in enumerate(
                      (name, example) for name, kind in CONV_LAYERS.items()
                      for example in kind.examples))
    multipliers = (1.0, 0.25, 0.25, 0.5)  # base 4: 4, 1, 1, 2 channels
    layers = tuple(
        LayerSpec(kind=name, multiplier=multipliers[i % len(multipliers)], **dict(example))
        for i, (name, example) in enumerate(
            (name, example) for name, kind in PROJECTION_LAYERS.items()
            for example in kind.examples for _ in range(2)))
    classifier = LayerSpec(kind="lowrank", rank=3)
    return ArchSpec(input_shape=(2, 8, 8), num_classes=5, backbone="cnn", base_channels=4,
                    convs=convs, layers=layers, classifier=classifier)


SPEC = _every_kind_spec()
PRE = Preprocess(mean=(6.5, -2.0), std=(4.25, 0.5), input_shape=(2, 8, 8), num_classes=5,
                 dataset="toy")


@pytest.fixture(scope="module")
def exported() -> tuple[DeployedModel, bytes]:
    torch.manual_seed(0)
    model = DeployedModel(build_model(SPEC).eval(), PRE, spec=SPEC).eval()
    return model, to_onnx(model)


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(out, ref, rtol=0, atol=RTOL * scale)


def test_every_layer_kind_is_in_the_model() -> None:
    kinds = {(type(m).__name__) for m in build_model(SPEC).modules()}
    assert {"FullProjection", "BilinearProjection", "LowRankLinear", "Conv2d",
            "LowRankConv2d"} <= kinds
    pairs = [(m.in_channels, m.out_channels) for m in build_model(SPEC).modules()
             if type(m).__name__ == "BilinearProjection"]
    assert (1, 1) in pairs and any(p != (1, 1) for p in pairs)


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_onnxruntime_equals_pytorch_on_raw_inputs(exported: tuple[DeployedModel, bytes],
                                                  batch: int) -> None:
    model, data = exported
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    raw = torch.rand(batch, *SPEC.input_shape, generator=torch.Generator().manual_seed(batch))
    raw = raw * 16  # raw pixels, far from the normalised range
    with torch.no_grad():
        ref = model(raw).numpy()  # the layers' own paths (C kernel where it builds)
    (out,) = session.run(None, {"x": raw.numpy()})
    assert out.shape == (batch, SPEC.num_classes) and out.dtype == np.float32
    _assert_close(out, ref)


def test_export_copy_equals_the_model_layer_by_layer() -> None:
    torch.manual_seed(1)
    net = build_model(SPEC).eval()
    clone = export_copy(net)
    x = torch.randn(5, *SPEC.input_shape)
    with torch.no_grad():
        for (path, layer), (_, other) in zip(net.named_layers(), clone.named_layers(),
                                             strict=True):
            assert type(other) is (ExportBilinear if type(layer).__name__ ==
                                   "BilinearProjection" else type(layer)), path
            ref, out = layer(x), other(x)
            _assert_close(out.numpy(), ref.numpy())
            x = torch.relu(ref)
            if path.startswith("convs"):
                x = x if not SPEC.convs[int(path[6:-1])].pool else torch.max_pool2d(x, 2)
    # The copy shares nothing with the model it came from.
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(net.parameters(),
                                                            clone.parameters(), strict=True))


def test_float_tensors_hold_exactly_the_reported_parameters(
        exported: tuple[DeployedModel, bytes]) -> None:
    _, data = exported
    values = onnx_values(data)
    assert values.parameters == count_params(SPEC) == sum(
        p.numel() for p in build_model(SPEC).parameters())
    assert values.normalisation == 2 * SPEC.input_shape[0]  # mean, std per channel: not params
    assert values.largest_literal == 1  # the zero padding's 0.0; no weight folded into a node


def test_graph_has_the_plain_ops_and_the_factors(exported: tuple[DeployedModel, bytes]) -> None:
    _, data = exported
    proto = onnx.load_from_string(data)
    ops = {node.op_type for node in proto.graph.node}
    assert {"Einsum", "MatMul", "Conv", "Sub", "Div"} <= ops
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node)  # no custom ops
    names = {t.name for t in proto.graph.initializer}
    lowrank = [i for i, layer in enumerate(SPEC.layers) if layer.kind == "lowrank"]
    for i in lowrank:  # U, s and V apart: the factors, not a folded product
        assert {f"net.layers.{i}.U", f"net.layers.{i}.s", f"net.layers.{i}.V"} <= names
    assert [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim][:1] != [""]
    assert {p.key: p.value for p in proto.metadata_props} == {
        "architecture": SPEC.to_json(), "preprocess": PRE.to_json()}
    assert not any(node.metadata_props for node in proto.graph.node)


def test_stored_float64_weights_export_as_float32() -> None:
    torch.manual_seed(2)
    spec = ArchSpec(input_shape=(2, 8, 8), num_classes=5, layers=(LayerSpec(kind="bilinear"),))
    model = DeployedModel(build_model(spec, dtype=torch.float64).eval(), PRE, spec=spec)
    data = to_onnx(model)
    raw = torch.rand(3, 2, 8, 8) * 16
    (out,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, {"x": raw.numpy()})
    with torch.no_grad():
        ref = model(raw).numpy()
    assert out.dtype == np.float32
    _assert_close(out, ref)
    assert onnx_values(data)[:2] == (count_params(spec), 4)
