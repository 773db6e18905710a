"""build_model's forward: projections hand flat (N, features) tensors to each other, so a step's
autograd graph holds no reshape nodes between them (each cost about 1 % of a small MLP step)."""

from __future__ import annotations

import pytest
import torch

from models import build_model
from models.spec import ArchSpec, LayerSpec


def _graph_names(root: torch.Tensor) -> list[str]:
    seen, names, stack = set(), [], [root.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


@pytest.mark.parametrize("kinds", [("full", "full"), ("bilinear", "full"), ("lowrank", "bilinear"),
                                   ("full", "lowrank")])
def test_an_mlp_step_reshapes_only_its_input(kinds: tuple[str, str]) -> None:
    hidden, classifier = kinds
    spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=1, hidden_hw=(4, 4),
                    layers=(LayerSpec(kind=hidden), LayerSpec(kind="full")),
                    classifier=LayerSpec(kind=classifier))
    model = build_model(spec)
    x = torch.randn(3, 1, 8, 8, requires_grad=True)
    logits = model(x)
    assert logits.shape == (3, 10)
    hidden_out = model.layers[0](x)
    assert hidden_out.shape == (3, 4 * 4)  # flat: the next projection reads it as is
    reshapes = [n for n in _graph_names(logits.sum())
                if "View" in n or "Reshape" in n or "Unsqueeze" in n or "Flatten" in n]
    # The first projection flattens the (N, 1, 8, 8) input (a bilinear layer does it inside its
    # own node); nothing else reshapes.
    assert len(reshapes) <= 1, reshapes
