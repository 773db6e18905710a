"""`paretonas demo` (search-free, initial version): build every layer kind, run it, print costs.

The full service demo replaces this later; for now it shows the layer table and, on a digits-sized
input (1 x 8 x 8, 10 classes), a small model per kind with its exact parameter/MAC counts checked
against the built module and a forward pass.
"""

from __future__ import annotations

import torch
import typer

from models import build_model, count_macs, count_params
from models.spec import ArchSpec, ConvSpec, LayerSpec
from service.commands.layers import layer_costs, render_table

__all__ = ["demo", "demo_specs"]


def demo_specs(base_channels: int = 16) -> dict[str, ArchSpec]:
    """One digits-sized network per layer kind."""
    def mlp(kind: str) -> ArchSpec:
        return ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=base_channels,
                        layers=(LayerSpec(kind=kind),), classifier=LayerSpec(kind=kind))

    return {
        "mlp full": mlp("full"),
        "mlp bilinear": mlp("bilinear"),
        "mlp lowrank": mlp("lowrank"),
        "cnn lowrank spatial + bilinear": ArchSpec(
            input_shape=(1, 8, 8), num_classes=10, backbone="cnn", base_channels=base_channels,
            convs=(ConvSpec(kind="lowrank", decomposition="spatial", rank=2, pool=True),),
            layers=(LayerSpec(kind="bilinear"),)),
    }


def demo(seed: int = typer.Option(0, help="torch seed for the random weights and inputs")) -> None:
    """Layer cost table, then every kind built and run on a digits-sized batch."""
    typer.echo(render_table(layer_costs(channels=16, hw=(8, 8))))
    typer.echo("")
    torch.manual_seed(seed)
    x = torch.randn(4, 1, 8, 8)
    for name, spec in demo_specs().items():
        model = build_model(spec).eval()
        with torch.no_grad():
            logits = model(x)
        held = sum(p.numel() for p in model.parameters())
        check = "ok" if held == count_params(spec) else f"MISMATCH (model holds {held})"
        typer.echo(f"{name:<32} params {count_params(spec):>9,} ({check})  "
                   f"MACs {count_macs(spec):>9,}  logits {tuple(logits.shape)}")
