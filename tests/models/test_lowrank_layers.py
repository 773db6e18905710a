"""Low-rank (SVD-trained) layers: dense equivalence, pruning, regularisers, compact modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import SpecError
from models.layers.lowrank_conv import LowRankConv2d
from models.layers.lowrank_linear import LowRankLinear
from models.layers.svd import energy_rank, hoyer, l1, orthogonality

F64 = torch.float64


def test_full_rank_linear_from_dense_equals_dense() -> None:
    torch.manual_seed(0)
    dense = nn.Linear(7, 5, dtype=F64)
    low = LowRankLinear.from_dense(dense)
    assert low.rank == 5
    x = torch.randn(9, 7, dtype=F64)
    torch.testing.assert_close(low(x), dense(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
def test_full_rank_conv_from_dense_equals_dense(decomposition: str) -> None:
    torch.manual_seed(0)
    dense = nn.Conv2d(3, 4, 3, padding=1, dtype=F64)
    low = LowRankConv2d.from_dense(dense, decomposition=decomposition)
    # channel: W as (C_out, C_in*k*k) = (4, 27); spatial: (C_out*k, C_in*k) = (12, 9).
    assert low.rank == (4 if decomposition == "channel" else 9)
    x = torch.randn(2, 3, 6, 5, dtype=F64)
    torch.testing.assert_close(low(x), dense(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
def test_truncated_conv_equals_conv_with_the_rebuilt_kernel(decomposition: str) -> None:
    torch.manual_seed(0)
    low = LowRankConv2d(3, 4, 5, decomposition=decomposition, rank=2, dtype=F64)
    with torch.no_grad():
        low.U.normal_(), low.V.normal_(), low.s.normal_(), low.bias.normal_()  # type: ignore[union-attr]
    x = torch.randn(2, 3, 7, 6, dtype=F64)
    expected = F.conv2d(x, low.dense_weight(), low.bias, padding=2)
    torch.testing.assert_close(low(x), expected, rtol=1e-12, atol=1e-12)


def _known_spectrum(s: list[float]) -> LowRankLinear:
    torch.manual_seed(3)
    layer = LowRankLinear(8, 6, rank=len(s), dtype=F64)  # random orthonormal U, V
    with torch.no_grad():
        layer.s.copy_(torch.tensor(s, dtype=F64))
    return layer


def test_pruning_with_tiny_threshold_drops_only_negligible_directions() -> None:
    layer = _known_spectrum([1e-4, 10.0, -1e-5, 5.0, 1.0])
    x = torch.randn(11, 8, dtype=F64)
    before = layer(x).detach()
    assert layer.prune_(1e-6) == 3
    torch.testing.assert_close(layer.s.detach(), torch.tensor([10.0, 5.0, 1.0], dtype=F64))
    # The dropped part has spectral norm 1e-4, so each output moves by at most 1e-4 * ||x||.
    change = (layer(x) - before).norm(dim=1)
    assert (change <= 1e-4 * x.norm(dim=1)).all()
    assert change.max() > 0


def test_pruning_sorts_by_magnitude_and_keeps_the_energy_fraction() -> None:
    s = torch.tensor([3.0, -4.0])  # energies 9, 16 of 25
    assert energy_rank(s, 0.4) == 1  # 16 >= 0.6 * 25
    assert energy_rank(s, 0.3) == 2  # 16 < 0.7 * 25
    layer = _known_spectrum([1.0, -3.0, 2.0, 0.5, 0.1])  # energy 15.26
    u_before = layer.U.detach().clone()
    assert layer.prune_(0.1) == 2  # total 14.26; 9 + 4 = 13 >= 0.9 * 14.26 = 12.83
    torch.testing.assert_close(layer.s.detach(), torch.tensor([-3.0, 2.0], dtype=F64))
    torch.testing.assert_close(layer.U.detach(), u_before[:, [1, 2]])


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_energy_threshold_outside_open_unit_interval_is_refused(bad: float) -> None:
    layer = _known_spectrum([1.0, 2.0])
    with pytest.raises(SpecError) as err:
        layer.prune_(bad)
    assert str(err.value) == (
        f"energy_threshold: got {bad!r}; must lie strictly between 0 and 1 (the fraction of "
        "singular-value energy pruning may drop, e.g. 0.01)"
    )


def test_regularisers_match_hand_computed_values() -> None:
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])  # U^T U - I = diag(0, 3): 9
    v = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # V^T V - I = [[0, 1], [1, 0]]: 2
    assert float(orthogonality(u, v)) == pytest.approx((9 + 2) / 4)
    s = torch.tensor([3.0, -4.0])
    assert float(l1(s)) == pytest.approx(7.0)
    assert float(hoyer(s)) == pytest.approx(7.0 / 5.0)


def test_compact_linear_has_exact_count_and_same_output() -> None:
    layer = _known_spectrum([1e-4, 10.0, -1e-5, 5.0, 1.0])
    with torch.no_grad():
        layer.bias.normal_()  # type: ignore[union-attr]
    layer.prune_(1e-6)
    compact = layer.to_compact()
    assert sum(p.numel() for p in compact.parameters()) == 3 * (6 + 8) + 6
    x = torch.randn(4, 8, dtype=F64)
    torch.testing.assert_close(compact(x), layer(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
def test_compact_conv_has_exact_count_and_same_output(decomposition: str) -> None:
    torch.manual_seed(0)
    layer = LowRankConv2d.from_dense(nn.Conv2d(3, 4, 3, padding=1, dtype=F64),
                                     decomposition=decomposition, rank=3)
    compact = layer.to_compact()
    m, n = (4, 27) if decomposition == "channel" else (12, 9)
    assert sum(p.numel() for p in compact.parameters()) == 3 * (m + n) + 4
    x = torch.randn(2, 3, 5, 6, dtype=F64)
    torch.testing.assert_close(compact(x), layer(x), rtol=1e-12, atol=1e-12)


def test_rank_above_min_is_refused_by_the_layer() -> None:
    with pytest.raises(SpecError) as err:
        LowRankLinear(64, 128, rank=96)
    assert str(err.value) == (
        "rank: rank must be <= min(m, n) = 64 and >= 1; got rank=96, m=128, n=64"
    )


@pytest.mark.parametrize("layer", [
    pytest.param(lambda: LowRankLinear(48, 96, dtype=F64), id="linear"),
    pytest.param(lambda: LowRankConv2d(8, 16, kernel_size=3, dtype=F64), id="conv-channel"),
])
def test_initial_factors_are_the_svd_of_a_he_initialised_dense_weight(layer: object) -> None:
    """Orthonormal U, V; a spread spectrum (not flat: a flat one is a stationary point of Hoyer,
    whose gradient then vanishes); entries of U diag(s) V^T with the He variance 2 / fan_in."""
    torch.manual_seed(0)
    module = layer()  # type: ignore[operator]
    assert float(module.orthogonality_loss().detach()) < 1e-20
    s = module.s.detach()
    assert torch.all(s[:-1] >= s[1:]) and float(s.max() / s.min()) > 1.3
    w = module.matrix().detach()  # (m, n)
    assert float(w.square().mean()) == pytest.approx(2.0 / module._fan_in, rel=0.1)
    s_param = module.s
    hoyer(s_param).backward()
    assert float(s_param.grad.abs().max()) > 1e-3  # the sparsity term has a gradient at start
