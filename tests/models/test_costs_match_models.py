"""count_params / count_macs equal what the built model holds and does, for generated specs."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from models import build_model, count_macs, count_params
from models.errors import SpecError
from models.layers.bilinear import BilinearProjection
from models.layers.lowrank_conv import LowRankConv2d
from models.layers.lowrank_linear import LowRankLinear
from models.plan import plan_layers
from models.spec import ArchSpec, ConvSpec, LayerSpec

ranks = st.one_of(st.none(), st.integers(1, 3))
multipliers = st.sampled_from([0.5, 1.0, 1.5])
layer_specs = st.builds(LayerSpec, kind=st.sampled_from(["full", "bilinear", "lowrank"]),
                        multiplier=multipliers, rank=ranks)
conv_specs = st.builds(ConvSpec, kind=st.sampled_from(["full", "lowrank"]),
                       multiplier=multipliers, kernel_size=st.sampled_from([1, 3]),
                       pool=st.booleans(), rank=ranks,
                       decomposition=st.sampled_from(["channel", "spatial"]))


@st.composite
def arch_specs(draw: st.DrawFn) -> ArchSpec:
    convs = draw(st.lists(conv_specs, max_size=2))
    return ArchSpec(
        input_shape=(draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(2, 7))),
        num_classes=draw(st.integers(2, 12)),
        backbone="cnn" if convs else "mlp",
        base_channels=draw(st.integers(1, 5)),
        hidden_hw=draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)))),
        convs=tuple(convs),
        layers=tuple(draw(st.lists(layer_specs, max_size=2))),
        classifier=draw(layer_specs),
    )


def _hook_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    """MACs per sample from the shapes seen at run time (independent of models.costs)."""
    x = inputs[0]
    if isinstance(module, BilinearProjection):
        (d1, d2), (k1, k2) = module.in_grid, module.out_grid
        c_in = x[0].numel() // (d1 * d2)
        c_out = out[0].numel() // (k1 * k2)
        return c_in * c_out * min(d1 * d2 * k2 + d1 * k1 * k2, k1 * d1 * d2 + k1 * d2 * k2)
    if isinstance(module, LowRankLinear):
        return module.rank * (x[0].numel() + out[0].numel())
    if isinstance(module, LowRankConv2d):
        c_in, c_out, k, r = x.shape[1], out.shape[1], module.kernel_size, module.rank
        per_position = (r * c_in * k * k + c_out * r if module.decomposition == "channel"
                        else r * c_in * k + c_out * r * k)
        return out.shape[2] * out.shape[3] * per_position
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out[0].numel() * module.in_channels * kh * kw
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch_specs())
def test_counts_equal_the_built_model(spec: ArchSpec) -> None:
    try:
        plan_layers(spec)
    except SpecError:
        assume(False)
    model = build_model(spec)
    assert count_params(spec) == sum(p.numel() for p in model.parameters())
    seen: list[int] = []
    handles = [m.register_forward_hook(lambda mod, i, o: seen.append(_hook_macs(mod, i, o)))
               for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        logits = model(torch.randn(2, *spec.input_shape))
    for h in handles:
        h.remove()
    assert logits.shape == (2, spec.num_classes)
    assert count_macs(spec) == sum(seen)
    assert len(seen) == len(spec.convs) + len(spec.layers) + 1


def test_costs_of_a_known_bilinear_network() -> None:
    """digits-like 1x8x8, base 16: hidden 16x8x8 bilinear, bilinear classifier to 2x5."""
    spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=16,
                    layers=(LayerSpec(kind="bilinear"),), classifier=LayerSpec(kind="bilinear"))
    hidden = 1 * 16 * (8 * 8 + 8 * 8) + 16 * 64
    classifier = 16 * 1 * (8 * 2 + 8 * 5) + 10
    assert count_params(spec) == hidden + classifier
    # hidden: 8*8*(8+8) per pair either order; classifier in (8, 8) -> (2, 5):
    # right = 8*5*(8+2) = 400, left = 2*8*(8+5) = 208.
    assert count_macs(spec) == 16 * 8 * 8 * 16 + 16 * 208
