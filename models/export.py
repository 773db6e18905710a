"""ONNX export of a deployed model: preprocessing inside, bilinear layers as plain matmuls /
einsums, low-rank layers as their factors.

``to_onnx(model)`` takes a ``models.deployed.DeployedModel`` (what ``from_safetensors`` returns)
and returns the bytes of an ONNX model with one input ``x`` (batch, *input_shape) float32 of raw
values and one output ``logits`` (batch, num_classes); the batch size is dynamic. The model's
metadata_props carry ``architecture`` and ``preprocess`` (the same JSON as the safetensors
metadata); the exporter's per-node notes (stack traces) are dropped.

It exports a copy in which every ``BilinearProjection`` is an ``ExportBilinear`` that shares its
parameters and evaluates ``U^T X V`` with ``torch.matmul`` / ``torch.einsum`` in the same order
as the layer (``models.costs.bilinear_order``): the layer's own path (one custom autograd node,
or the C kernel of ``models.native``) cannot be traced. The layer code is left as it is.

**What the initializers hold** (``onnx_values`` counts it). Every float initializer is a
parameter of the network, once, except the two normalisation constants ``preprocess.mean`` and
``preprocess.std`` (C values each: statistics of the data, not trained parameters; buffers in
PyTorch too). So the float initializers other than those two hold exactly
``models.count_params(spec)`` values: low-rank layers keep U, s and V apart (s is not folded into
U, which would drop r values) and the graph is exported without constant folding
(``optimize=False``), which would merge parameters into new constants. Constant nodes hold only
the exporter's literals (shapes, axes, a pad value 0.0), never more than one float each.

The exporter is torch 2.13's default, ``torch.onnx.export(..., dynamo=True)`` (torch.export, then
onnxscript's ONNX builder): it needs the ``onnx`` and ``onnxscript`` packages, imported only
when ``to_onnx`` runs.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn

from models.costs import bilinear_order
from models.deployed import DeployedModel
from models.errors import SpecError
from models.layers.bilinear import BilinearProjection

__all__ = [
    "NORMALISATION_CONSTANTS",
    "OPSET",
    "ExportBilinear",
    "OnnxValues",
    "export_copy",
    "onnx_values",
    "to_onnx",
]

OPSET = 18
NORMALISATION_CONSTANTS = ("preprocess.mean", "preprocess.std")


class ExportBilinear(nn.Module):
    """A ``BilinearProjection``'s maps as traceable ops, on the same Parameters (no copy).

    forward: (N, C_in*d1*d2 features) -> (N, *out_shape), Y_o = sum_i U_oi^T X_i V_oi + B_o.
    """

    def __init__(self, layer: BilinearProjection) -> None:
        super().__init__()
        self.U, self.V, self.bias = layer.U, layer.V, layer.bias
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.in_grid, self.out_grid = layer.in_grid, layer.out_grid
        self.out_shape = layer.out_shape
        self.right = bilinear_order(in_grid=layer.in_grid, out_grid=layer.out_grid) == "right"

    def forward(self, x: Tensor) -> Tensor:
        (d1, d2), (k1, k2) = self.in_grid, self.out_grid
        n = x.shape[0]
        if self.in_channels == 1 and self.out_channels == 1:
            xs = x.reshape(n, d1, d2)  # (N, d1, d2)
            u_t = self.U.reshape(d1, k1).t()  # (k1, d1)
            v = self.V.reshape(d2, k2)  # (d2, k2)
            if self.right:
                y = torch.matmul(u_t, torch.matmul(xs, v))  # (k1, d1) @ (N, d1, k2)
            else:
                y = torch.matmul(torch.matmul(u_t, xs), v)  # (N, k1, d2) @ (d2, k2)
            if self.bias is not None:
                y = y + self.bias.reshape(k1, k2)  # (N, k1, k2)
            return y.reshape(n, *self.out_shape)
        xs = x.reshape(n, self.in_channels, d1, d2)  # (N, C_in, d1, d2)
        if self.right:
            t = torch.einsum("nipq,oiqs->noips", xs, self.V)  # (N, C_out, C_in, d1, k2)
            y = torch.einsum("oipr,noips->nors", self.U, t)  # (N, C_out, k1, k2)
        else:
            z = torch.einsum("oipr,nipq->noirq", self.U, xs)  # (N, C_out, C_in, k1, d2)
            y = torch.einsum("noirq,oiqs->nors", z, self.V)  # (N, C_out, k1, k2)
        if self.bias is not None:
            y = y + self.bias  # (N, C_out, k1, k2) + (C_out, k1, k2)
        return y.reshape(n, *self.out_shape)


def export_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every bilinear layer as an ``ExportBilinear``
    (same values: the copy's forward equals the model's to float32 rounding)."""
    clone = copy.deepcopy(model).eval()
    for module in list(clone.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, BilinearProjection):
                setattr(module, child_name, ExportBilinear(child))
    return clone


def _require_exporter() -> None:
    missing = []
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise SpecError("format", f"ONNX export needs the {' and '.join(missing)} package(s); "
                        f"install them (pip install {' '.join(missing)}) or use safetensors")


def to_onnx(model: DeployedModel) -> bytes:
    """The ONNX bytes of ``model`` (see the module doc): input ``x`` raw (batch, C, H, W) float32,
    output ``logits`` (batch, num_classes), opset ``OPSET``."""
    if not isinstance(model, DeployedModel):
        raise SpecError("model", f"got {type(model).__name__}; to_onnx takes the DeployedModel "
                        "from_safetensors returns (its preprocessing goes into the graph)")
    _require_exporter()
    clone = export_copy(model).float()  # ONNX weights are float32 whatever the stored dtype
    assert isinstance(clone, DeployedModel)
    clone.preprocess.out_dtype = torch.float32
    shape = model.info.input_shape
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notes, per export
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        program = _export(clone, shape)
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    for node in proto.graph.node:
        # The exporter's per-node notes (stack traces, module paths) are two thirds of a small
        # model's file; the graph and every name stay.
        del node.metadata_props[:]
    for key, value in (("architecture", model.spec.to_json()),
                       ("preprocess", model.info.to_json())):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data: bytes = proto.SerializeToString()
    return data


def _export(clone: nn.Module, shape: tuple[int, int, int]) -> torch.onnx.ONNXProgram:
    example = torch.zeros(2, *shape)  # batch 2: torch.export specialises sizes 0 and 1
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        # onnxscript's and torch.export's own notes on the trace (e.g. deprecations inside
        # them) are not the caller's business; errors still raise.
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            clone, (example,), dynamo=True, input_names=["x"], output_names=["logits"],
            dynamic_shapes=({0: batch},), opset_version=OPSET, optimize=False,
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    return program


class OnnxValues(NamedTuple):
    """The float values an ONNX file stores: ``parameters`` (initializers other than the
    normalisation constants), ``normalisation`` (those two) and ``largest_literal`` (the size of
    the largest float Constant node: the exporter's literals, such as a pad value 0.0)."""

    parameters: int
    normalisation: int
    largest_literal: int


def onnx_values(data: bytes) -> OnnxValues:
    """Count the float values of an ONNX file from ``to_onnx`` (see ``OnnxValues``). The rule:
    ``parameters`` equals ``models.count_params(spec)``, ``normalisation`` is 2 * C, and no
    Constant node holds more than one float (a folded weight would show up there)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(data)
    params = normalisation = 0
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype.kind != "f":
            continue  # shapes and axes (int64), not weights
        if tensor.name in NORMALISATION_CONSTANTS:
            normalisation += int(array.size)
        else:
            params += int(array.size)
    literals = [int(numpy_helper.to_array(attr.t).size) for node in proto.graph.node
                if node.op_type == "Constant" for attr in node.attribute
                if attr.name == "value" and numpy_helper.to_array(attr.t).dtype.kind == "f"]
    return OnnxValues(parameters=params, normalisation=normalisation,
                      largest_literal=max(literals, default=0))
