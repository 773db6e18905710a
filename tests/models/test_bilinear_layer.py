"""Bilinear projection: equals the dense Kronecker layer; both contraction orders; He-style init."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.costs import bilinear_order
from models.layers.bilinear import BilinearProjection, bilinear_projection

# (in_grid, out_grid): the first is evaluated left-first, the second right-first.
GRIDS = [((3, 4), (2, 5)), ((4, 3), (5, 2))]


def test_grids_cover_both_orders() -> None:
    assert [bilinear_order(in_grid=i, out_grid=o) for i, o in GRIDS] == ["left", "right"]


def _layer(c_in: int, c_out: int, in_grid: tuple[int, int], out_grid: tuple[int, int]
           ) -> BilinearProjection:
    torch.manual_seed(1)
    layer = BilinearProjection(c_in, c_out, in_grid=in_grid, out_grid=out_grid,
                               dtype=torch.float64)
    with torch.no_grad():
        layer.bias.normal_()  # type: ignore[union-attr]
    return layer


@pytest.mark.parametrize(("in_grid", "out_grid"), GRIDS)
def test_one_channel_equals_kronecker_dense_layer(in_grid: tuple[int, int],
                                                  out_grid: tuple[int, int]) -> None:
    layer = _layer(1, 1, in_grid, out_grid)
    x = torch.randn(7, 1, *in_grid, dtype=torch.float64)
    u, v, b = layer.U[0, 0], layer.V[0, 0], layer.bias
    assert b is not None
    y = layer(x)  # (7, 1, k1, k2)
    # Row-major flattening (torch's): vec(Y) = kron(U^T, V^T) vec(X).
    dense = F.linear(x.flatten(1), torch.kron(u.t(), v.t()), b.flatten())
    torch.testing.assert_close(y.flatten(1), dense, rtol=1e-12, atol=1e-12)
    # Column-major flattening: vec_c(Y) = kron(V^T, U^T) vec_c(X).
    col = F.linear(x[:, 0].transpose(1, 2).flatten(1), torch.kron(v.t(), u.t()),
                   b[0].t().flatten())
    torch.testing.assert_close(y[:, 0].transpose(1, 2).flatten(1), col, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("in_grid", "out_grid"), GRIDS)
def test_many_channels_equal_the_channel_summed_kronecker_layer(
        in_grid: tuple[int, int], out_grid: tuple[int, int]) -> None:
    c_in, c_out = 3, 2
    layer = _layer(c_in, c_out, in_grid, out_grid)
    x = torch.randn(6, c_in, *in_grid, dtype=torch.float64)
    rows = []
    for o in range(c_out):  # reference: block (o, i) = kron(U_oi^T, V_oi^T)
        rows.append(torch.cat([torch.kron(layer.U[o, i].t(), layer.V[o, i].t())
                               for i in range(c_in)], dim=1))
    weight = torch.cat(rows, dim=0)  # (C_out*k1*k2, C_in*d1*d2)
    assert layer.bias is not None
    expected = F.linear(x.flatten(1), weight, layer.bias.flatten())
    torch.testing.assert_close(layer(x).flatten(1), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.dense_weight(), weight, rtol=1e-12, atol=1e-12)


def test_flat_input_is_reshaped_row_major() -> None:
    layer = _layer(1, 2, (3, 4), (2, 2))
    x = torch.randn(4, 1, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(x.flatten(1)), layer(x), rtol=0, atol=0)


def test_init_keeps_activation_second_moment_through_six_relu_layers() -> None:
    """He-style rule Var(U) Var(V) = 2 / (C_in d1 d2): E[relu(y)^2] = Var(y) / 2 = E[x^2], so the
    second moment after six (bilinear, ReLU) blocks stays near the input's (a missing factor 2
    alone would shrink it 64-fold)."""
    torch.manual_seed(0)
    stack = [BilinearProjection(4, 4, in_grid=(8, 8), out_grid=(8, 8), dtype=torch.float64)
             for _ in range(6)]
    x = torch.randn(256, 4, 8, 8, dtype=torch.float64)
    h = x
    with torch.no_grad():
        for layer in stack:
            h = F.relu(layer(h))
    ratio = float(h.square().mean() / x.square().mean())
    assert 0.25 <= ratio <= 4.0, ratio


@pytest.mark.parametrize(("in_grid", "out_grid", "order"),
                         [((4, 3), (6, 2), "right"), ((3, 4), (2, 6), "left")])
@pytest.mark.parametrize("contiguous", [True, False])
def test_single_pair_path_matches_matrix_products_and_finite_differences(
    in_grid: tuple[int, int], out_grid: tuple[int, int], order: str, contiguous: bool
) -> None:
    """The one-channel fast path (mm + broadcast bmm, one autograd node with a hand-written
    backward) in both orders, on contiguous and strided inputs: equal to U^T X V + B per sample,
    and its gradients pass gradcheck."""
    assert bilinear_order(in_grid=in_grid, out_grid=out_grid) == order
    (d1, d2), (k1, k2) = in_grid, out_grid
    torch.manual_seed(2)
    x = torch.randn(5, 1, d1, d2, dtype=torch.float64)
    if not contiguous:  # e.g. a transposed view handed over by the previous layer
        x = x.transpose(0, 2).contiguous().transpose(0, 2)
    x.requires_grad_()
    u = torch.randn(1, 1, d1, k1, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 1, d2, k2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, k1, k2, dtype=torch.float64, requires_grad=True)
    expected = u[0, 0].t() @ x[:, 0] @ v[0, 0] + b[0]  # (N, k1, k2)
    torch.testing.assert_close(bilinear_projection(x, u, v, b)[:, 0], expected,
                               rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(bilinear_projection, (x, u, v, b))
    assert torch.autograd.gradcheck(lambda *a: bilinear_projection(*a, None), (x, u, v))


@pytest.mark.parametrize(("in_grid", "out_grid"), [((4, 3), (6, 2)), ((3, 4), (2, 6))])
@pytest.mark.parametrize("wanted", [("u", "v", "b"), ("x",), ("x", "u"), ("v",)])
def test_single_pair_path_computes_exactly_the_gradients_asked_for(
    in_grid: tuple[int, int], out_grid: tuple[int, int], wanted: tuple[str, ...]
) -> None:
    """Inputs that do not require grad get none (a first layer's input, frozen factors); the
    ones that do get the gradients of the per-sample reference U^T X V + B."""
    (d1, d2), (k1, k2) = in_grid, out_grid
    torch.manual_seed(3)
    tensors = {"x": torch.randn(4, 1, d1, d2, dtype=torch.float64),
               "u": torch.randn(1, 1, d1, k1, dtype=torch.float64),
               "v": torch.randn(1, 1, d2, k2, dtype=torch.float64),
               "b": torch.randn(1, k1, k2, dtype=torch.float64)}
    for name in wanted:
        tensors[name].requires_grad_()
    weights = torch.randn(4, 1, k1, k2, dtype=torch.float64)
    x, u, v, b = tensors.values()
    (bilinear_projection(x, u, v, b) * weights).sum().backward()
    fast = {name: t.grad for name, t in tensors.items()}
    for t in tensors.values():
        t.grad = None
    reference = u[0, 0].t() @ x[:, 0] @ v[0, 0] + b[0]  # (N, k1, k2)
    (reference * weights[:, 0]).sum().backward()
    for name, t in tensors.items():
        if name in wanted:
            torch.testing.assert_close(fast[name], t.grad, rtol=1e-12, atol=1e-12)
        else:
            assert fast[name] is None, name


@pytest.mark.parametrize("c_in", [1, 2])
def test_an_input_with_the_wrong_number_of_features_is_refused_by_name(c_in: int) -> None:
    layer = BilinearProjection(c_in, 1, in_grid=(4, 4), out_grid=(2, 2))
    features = c_in * 16
    for bad in (torch.randn(3, features * 2), torch.randn(3, features + 1), torch.randn(features)):
        with pytest.raises(ValueError, match=rf"input shape \({', '.join(map(str, bad.shape))},?\)"
                           rf".*{features} features per sample"):
            layer(bad)
    assert layer(torch.randn(3, features)).shape == (3, 1, 2, 2)


def test_stack_of_single_channel_layers_matches_the_einsum_reference() -> None:
    torch.manual_seed(4)
    first, second = (BilinearProjection(1, 1, in_grid=(6, 4), out_grid=(6, 4),
                                        dtype=torch.float64) for _ in range(2))
    x = torch.randn(3, 24, dtype=torch.float64, requires_grad=True)
    y = second(F.relu(first(x))).square().sum()
    (gx,) = torch.autograd.grad(y, x)

    def reference(layer: BilinearProjection, h: torch.Tensor) -> torch.Tensor:
        assert layer.bias is not None
        out = torch.einsum("pr,npq,qs->nrs", layer.U[0, 0], h.reshape(-1, 6, 4), layer.V[0, 0])
        return out + layer.bias[0]  # (N, k1, k2)

    y_ref = reference(second, F.relu(reference(first, x))).square().sum()
    (gx_ref,) = torch.autograd.grad(y_ref, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
