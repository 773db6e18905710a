"""`paretonas layers`: what each layer kind costs (parameters, MACs) against a full layer.

For each example feature map (C, H, W) it plans one hidden projection (C, H, W) -> (C, H, W) of
every projection kind and one 3 x 3 convolution C -> C of every convolution kind, and prints the
exact analytic counts (models.costs) with their ratio to the full layer of the same family.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

from models.costs import layer_macs, layer_params
from models.plan import plan_layers
from models.spec import ArchSpec, ConvSpec, LayerSpec

__all__ = ["LayerCost", "layer_costs", "layers", "render_table"]

DEFAULT_INPUTS = ((8, 8), (28, 28))


@dataclass(frozen=True)
class LayerCost:
    """One row of the table."""

    feature_map: tuple[int, int, int]
    family: str  # "projection" or "conv3x3"
    kind: str
    params: int
    macs: int
    full_params: int
    full_macs: int


def _projection_variants(c: int, h: int, w: int) -> list[tuple[str, LayerSpec]]:
    low = min(c * h * w, 32)
    return [("full", LayerSpec(kind="full")), ("bilinear", LayerSpec(kind="bilinear")),
            ("lowrank r=full", LayerSpec(kind="lowrank")),
            (f"lowrank r={low}", LayerSpec(kind="lowrank", rank=low))]


def _conv_variants(c: int) -> list[tuple[str, ConvSpec]]:
    rank = max(1, c // 2)
    return [("full", ConvSpec(kind="full")),
            (f"lowrank channel r={rank}", ConvSpec(kind="lowrank", rank=rank)),
            (f"lowrank spatial r={rank}", ConvSpec(kind="lowrank", rank=rank,
                                                   decomposition="spatial"))]


def layer_costs(*, channels: int, hw: tuple[int, int]) -> list[LayerCost]:
    """Rows for one feature map (channels, *hw); analytic, no torch."""
    shape = (channels, *hw)
    rows: list[LayerCost] = []
    full: tuple[int, int] | None = None
    for name, layer in _projection_variants(*shape):
        spec = ArchSpec(input_shape=shape, num_classes=2, base_channels=channels, layers=(layer,))
        plan = plan_layers(spec)[0]
        cost = (layer_params(plan), layer_macs(plan))
        full = full or cost
        rows.append(LayerCost(shape, "projection", name, *cost, *full))
    full = None
    for name, conv in _conv_variants(channels):
        spec = ArchSpec(input_shape=shape, num_classes=2, base_channels=channels,
                        backbone="cnn", convs=(conv,))
        plan = plan_layers(spec)[0]
        cost = (layer_params(plan), layer_macs(plan))
        full = full or cost
        rows.append(LayerCost(shape, "conv3x3", name, *cost, *full))
    return rows


def render_table(rows: list[LayerCost]) -> str:
    """Fixed-width text table."""
    header = (f"{'feature map':<13}{'layer':<12}{'kind':<26}{'params':>12}{'vs full':>9}"
              f"{'MACs':>14}{'vs full':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        fmap = "x".join(map(str, r.feature_map))
        lines.append(f"{fmap:<13}{r.family:<12}{r.kind:<26}{r.params:>12,}"
                     f"{r.params / r.full_params:>8.4f}x{r.macs:>14,}{r.macs / r.full_macs:>8.4f}x")
    return "\n".join(lines)


def layers(
    base_channels: int = typer.Option(16, help="channels C of the example feature maps"),
    size: list[str] = typer.Option(["8x8", "28x28"], help="spatial sizes HxW (repeatable)"),
) -> None:
    """Print each layer kind's parameters and MACs against a full layer (exact counts)."""
    rows: list[LayerCost] = []
    for text in size:
        try:
            h, w = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise typer.BadParameter(f"got {text!r}; expected HxW such as 8x8",
                                     param_hint="--size") from None
        rows.extend(layer_costs(channels=base_channels, hw=(h, w)))
    typer.echo(render_table(rows))
