"""Safetensors round trip; model-level SVD helpers; prune_model's spec rebuilds and loads."""

from __future__ import annotations

import pytest
import torch

from models import build_model, count_params
from models.errors import SpecError
from models.layers.svd import SVDFactors
from models.lowrank import has_lowrank, orthogonality_loss, prune_model, sparsity_loss
from models.preprocess import Preprocess
from models.serialize import from_safetensors, to_safetensors
from models.spec import ArchSpec, ConvSpec, LayerSpec

SPEC = ArchSpec(
    input_shape=(2, 6, 6), num_classes=5, backbone="cnn", base_channels=4,
    convs=(ConvSpec(kind="lowrank", pool=True, decomposition="spatial", energy_threshold=0.2),
           ConvSpec(kind="full")),
    layers=(LayerSpec(kind="bilinear"), LayerSpec(kind="lowrank", energy_threshold=0.3)),
    classifier=LayerSpec(kind="lowrank", energy_threshold=0.1),
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(SPEC)
    with torch.no_grad():  # an uneven spectrum, as sparsity training leaves it
        for layer in model.modules():
            if isinstance(layer, SVDFactors):
                layer.s.copy_(torch.logspace(0, -3, layer.rank) * torch.randn(layer.rank).sign())
    return model


def test_round_trip_gives_identical_outputs() -> None:
    model = _model().eval()
    identity = Preprocess(mean=(0.0, 0.0), std=(1.0, 1.0), input_shape=(2, 6, 6),
                          num_classes=5, dataset="toy")
    rebuilt, spec = from_safetensors(to_safetensors(model, SPEC, preprocess=identity))
    assert spec == SPEC
    x = torch.randn(3, 2, 6, 6)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
        assert torch.equal(rebuilt.net(x), model(x))


def test_blob_without_architecture_is_refused() -> None:
    from safetensors.torch import save

    with pytest.raises(SpecError) as err:
        from_safetensors(save({"w": torch.zeros(1)}))
    assert str(err.value) == (
        "architecture, preprocess: missing from the safetensors metadata; save with "
        "models.serialize.to_safetensors(model, spec, preprocess=...)"
    )


def test_prune_model_returns_a_spec_that_rebuilds_and_loads() -> None:
    model = _model()
    ranks_before = [m.rank for m in model.modules() if isinstance(m, SVDFactors)]
    pruned = prune_model(model, SPEC)
    ranks_after = [m.rank for m in model.modules() if isinstance(m, SVDFactors)]
    assert all(a < b for a, b in zip(ranks_after, ranks_before, strict=True))
    assert [pruned.convs[0].rank, pruned.layers[1].rank, pruned.classifier.rank] == ranks_after
    assert pruned.convs[1] == SPEC.convs[1] and pruned.layers[0] == SPEC.layers[0]
    assert count_params(pruned) == sum(p.numel() for p in model.parameters())
    rebuilt = build_model(pruned)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(3, 2, 6, 6)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


@torch.no_grad()
def test_model_level_regularisers_sum_over_low_rank_layers() -> None:
    model = _model()
    layers = [m for m in model.modules() if isinstance(m, SVDFactors)]
    assert len(layers) == 3 and has_lowrank(model)
    expected_l1 = sum(float(m.s.abs().sum()) for m in layers)
    assert float(sparsity_loss(model, "l1")) == pytest.approx(expected_l1)
    expected_hoyer = sum(float(m.s.abs().sum() / m.s.norm()) for m in layers)
    assert float(sparsity_loss(model, "hoyer")) == pytest.approx(expected_hoyer)
    layers[0].U.mul_(2.0)  # U^T U = 4 I: ||3 I||_F^2 / r^2 = 9 / r
    assert float(orthogonality_loss(model)) == pytest.approx(9.0 / layers[0].rank, abs=1e-5)


@torch.no_grad()
def test_model_without_low_rank_layers_has_zero_regularisers() -> None:
    model = build_model(ArchSpec(input_shape=(1, 4, 4), num_classes=3,
                                 layers=(LayerSpec(kind="bilinear"),)))
    assert not has_lowrank(model)
    assert float(orthogonality_loss(model)) == 0.0
    assert float(sparsity_loss(model, "hoyer")) == 0.0
    with pytest.raises(SpecError):
        sparsity_loss(model, "l2")
