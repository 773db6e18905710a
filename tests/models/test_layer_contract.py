"""Contract tests generated from the layer registry: every kind, every example it lists."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from models.errors import SpecError
from models.layers.registry import CONV_LAYERS, PROJECTION_LAYERS, make_layer, make_projection
from models.plan import LayerPlan, ProjectionPlan, plan_layers
from models.spec import CONV_KINDS, PROJECTION_KINDS, ArchSpec, ConvSpec, LayerSpec

CASES = [
    pytest.param("projection", name, opts, id=f"projection-{name}-{i}")
    for name, kind in PROJECTION_LAYERS.items() for i, opts in enumerate(kind.examples)
] + [
    pytest.param("conv", name, opts, id=f"conv-{name}-{i}")
    for name, kind in CONV_LAYERS.items() for i, opts in enumerate(kind.examples)
]

DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])]


def _plan(family: str, name: str, opts: dict[str, Any]) -> LayerPlan:
    if family == "projection":
        spec = ArchSpec(input_shape=(2, 4, 6), num_classes=3, base_channels=3,
                        layers=(LayerSpec(kind=name, **opts),))
    else:
        spec = ArchSpec(input_shape=(2, 5, 5), num_classes=3, base_channels=3, backbone="cnn",
                        convs=(ConvSpec(kind=name, **opts),))
    return plan_layers(spec)[0]


def _out_shape(plan: LayerPlan) -> tuple[int, ...]:
    return plan.out_shape if isinstance(plan, ProjectionPlan) else plan.conv_shape


def test_registry_names_match_the_spec_kinds() -> None:
    assert tuple(PROJECTION_LAYERS) == PROJECTION_KINDS
    assert tuple(CONV_LAYERS) == CONV_KINDS


@pytest.mark.parametrize(("family", "name", "opts"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_layer_contract(family: str, name: str, opts: dict[str, Any], dtype: torch.dtype,
                        device: str) -> None:
    torch.manual_seed(0)
    plan = _plan(family, name, opts)
    layer = make_layer(plan, device=device, dtype=dtype)
    x = torch.randn(5, *plan.in_shape, device=device, dtype=dtype)
    y = layer(x)
    assert y.shape == (5, *_out_shape(plan))
    assert y.dtype == dtype
    assert y.device.type == device
    assert torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    layer.eval()
    with torch.no_grad():
        assert torch.equal(layer(x), layer(x))


def test_unknown_kind_lists_the_valid_names() -> None:
    plan = _plan("projection", "full", {})
    assert isinstance(plan, ProjectionPlan)
    bad = dataclasses.replace(plan, spec=LayerSpec(kind="dense"))
    with pytest.raises(SpecError) as err:
        make_projection(bad)
    assert str(err.value) == (
        "layers[0].kind: unknown layer kind 'dense'; valid names: bilinear, full, lowrank"
    )
