"""The bilinear layer's torch paths and the one place that picks a path.

The torch paths are what CUDA runs, so they are device-agnostic and tested here on the CPU
against the float64 reference (also under bf16 autocast, to bf16 rounding); the ``gpu`` cases
run the same checks on a CUDA device and skip without one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from models.costs import bilinear_order
from models.layers.bilinear import BilinearProjection, bilinear_projection, single_pair
from models.layers.bilinear_paths import choose_path
from models.native import bilinear_pair

CUDA = pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])

# (C_in, C_out, (d1, d2, k1, k2)) in both orders; one channel pair goes through both paths.
CASES = [(1, 1, (4, 3, 6, 2)), (1, 1, (3, 4, 2, 6)), (1, 3, (4, 3, 6, 2)), (2, 3, (3, 4, 2, 6)),
         (3, 1, (4, 3, 6, 2)), (4, 4, (8, 8, 8, 8)), (16, 1, (8, 8, 2, 5))]


def test_cases_cover_both_orders() -> None:
    orders = {bilinear_order(in_grid=s[:2], out_grid=s[2:]) for _, _, s in CASES}
    assert orders == {"left", "right"}


def _tensors(c_in: int, c_out: int, shape: tuple[int, int, int, int], *, n: int = 5,
             device: str = "cpu", dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    d1, d2, k1, k2 = shape
    gen = torch.Generator().manual_seed(c_in * 100 + c_out * 10 + d1)
    shapes = [(n, c_in, d1, d2), (c_out, c_in, d1, k1), (c_out, c_in, d2, k2), (c_out, k1, k2)]
    return [torch.randn(*s, generator=gen, dtype=torch.float64).to(device, dtype)
            .requires_grad_() for s in shapes]


def _reference(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, b: torch.Tensor,
               grad: torch.Tensor) -> list[torch.Tensor]:
    """y and the gradients of x, u, v, b in float64 on the CPU."""
    leaves = [t.detach().cpu().double().requires_grad_() for t in (x, u, v, b)]
    y = torch.einsum("oipr,nipq,oiqs->nors", leaves[1], leaves[0], leaves[2]) + leaves[3]
    y.backward(grad.detach().cpu().double())
    return [y.detach(), *(t.grad for t in leaves)]  # type: ignore[list-item]


def _paths(c_in: int, c_out: int) -> list[str]:
    return ["single", "batched"] if c_in == c_out == 1 else ["batched"]


def _assert_matches(got: list[torch.Tensor], want: list[torch.Tensor], *, tol: float) -> None:
    for name, g, w in zip(("y", "x", "u", "v", "b"), got, want, strict=True):
        scale = w.abs().max().item() or 1.0
        torch.testing.assert_close(g.detach().cpu().double(), w, rtol=tol, atol=tol * scale,
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(("c_in", "c_out", "shape"), CASES)
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_torch_paths_match_the_float64_reference(
        c_in: int, c_out: int, shape: tuple[int, int, int, int], strided: bool) -> None:
    """Every torch path for every channel count, on contiguous inputs and on a strided input
    with a non-contiguous upstream gradient (a transposed view, as a following layer may give)."""
    x, u, v, b = _tensors(c_in, c_out, shape)
    k1, k2 = shape[2:]
    grad = torch.randn(5, c_out, k1, k2, dtype=torch.float64)
    if strided:
        x = x.detach().transpose(0, 3).contiguous().transpose(0, 3).requires_grad_()
        grad = grad.transpose(0, 2).contiguous().transpose(0, 2)
        assert not x.is_contiguous() and not grad.is_contiguous()
    want = _reference(x, u, v, b, grad)
    for path in _paths(c_in, c_out):
        for t in (x, u, v, b):
            t.grad = None
        y = bilinear_projection(x, u, v, b, path=path)
        y.backward(grad)
        _assert_matches([y, *(t.grad for t in (x, u, v, b))], want, tol=1e-10)  # type: ignore[misc]


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_non_contiguous_upstream_gradient_in_the_left_order_is_taken(
        native: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repro of issue 15: on the torch path the one-channel left order called .view on an
    upstream gradient with strides (1, 0)."""
    monkeypatch.setenv("PARETONAS_NATIVE_KERNELS", native)
    torch.manual_seed(0)
    layer = BilinearProjection(1, 1, in_grid=(8, 2), out_grid=(2, 2), out_shape=(4,))
    assert bilinear_order(in_grid=(8, 2), out_grid=(2, 2)) == "left"
    x = torch.randn(3, 16, requires_grad=True)
    y = layer(x)
    y.t().sum(0).pow(2).sum().backward()
    grad = (2 * y.detach().sum(1, keepdim=True)).expand(3, 4).reshape(3, 1, 2, 2)
    assert layer.bias is not None
    want = _reference(x.view(3, 1, 8, 2), layer.U, layer.V, layer.bias, grad)
    got = [y.view(3, 1, 2, 2), x.grad.view(3, 1, 8, 2), layer.U.grad, layer.V.grad,  # type: ignore[union-attr]
           layer.bias.grad]
    _assert_matches(got, want, tol=2e-5)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize(("c_in", "c_out", "shape"), [CASES[0], CASES[1], CASES[3], CASES[5]])
def test_bf16_autocast_computes_in_bf16_and_matches_the_reference_to_its_rounding(
        device: str, c_in: int, c_out: int, shape: tuple[int, int, int, int]) -> None:
    """As nn.Linear under autocast: the output is bf16, the parameters' gradients float32,
    and both agree with the float64 reference to bf16 rounding (8 mantissa bits)."""
    x, u, v, b = _tensors(c_in, c_out, shape, device=device, dtype=torch.float32)
    grad = torch.randn(5, c_out, *shape[2:], device=device)
    want = _reference(x, u, v, b, grad)
    for path in ["auto", *_paths(c_in, c_out)]:
        for t in (x, u, v, b):
            t.grad = None
        with torch.autocast(device, dtype=torch.bfloat16):
            y = bilinear_projection(x, u, v, b, path=path)
        assert y.dtype == torch.bfloat16, path
        y.backward(grad.to(y.dtype))
        assert all(t.grad is not None and t.grad.dtype == torch.float32 for t in (x, u, v, b))
        _assert_matches([y, *(t.grad for t in (x, u, v, b))], want, tol=4e-2)  # type: ignore[misc]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("c_in", "c_out", "shape"), CASES)
def test_cuda_takes_the_torch_paths_and_matches_the_reference(
        c_in: int, c_out: int, shape: tuple[int, int, int, int]) -> None:
    x, u, v, b = _tensors(c_in, c_out, shape, device="cuda", dtype=torch.float32)
    assert choose_path(x, u, v, b) == ("single" if c_in == c_out == 1 else "batched")
    grad = torch.randn(5, c_out, *shape[2:], device="cuda")
    want = _reference(x, u, v, b, grad)
    y = bilinear_projection(x, u, v, b)
    y.backward(grad)
    _assert_matches([y, *(t.grad for t in (x, u, v, b))], want, tol=1e-4)  # type: ignore[misc]


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("channels", [(2, 3), (8, 8), (32, 16)])
def test_the_batched_path_runs_two_gemms_whatever_the_channel_counts(
        channels: tuple[int, int]) -> None:
    """No loop over channels: forward is two bmm's, backward four, for any C_in, C_out."""
    x, u, v, b = _tensors(*channels, (3, 4, 2, 6), dtype=torch.float32)
    with _CountOps() as forward:
        y = bilinear_projection(x, u, v, b, path="batched")
    with _CountOps() as backward:
        y.sum().backward()
    assert (forward.ops["bmm"], forward.ops["mm"]) == (2, 0)
    assert (backward.ops["bmm"], backward.ops["mm"]) == (4, 0)


def test_a_path_that_cannot_take_the_call_is_refused_by_name() -> None:
    x, u, v, b = _tensors(2, 3, (3, 4, 2, 6))
    with pytest.raises(ValueError, match=r"path='single' needs C_in = C_out = 1; got C_out, "
                       r"C_in = \(3, 2\); use 'batched' or 'auto'"):
        bilinear_projection(x, u, v, b, path="single")
    with pytest.raises(ValueError, match=r"path='native': the C kernel cannot take this call "
                       r"\(it takes float32 CPU tensors; got torch.float64 on cpu\)"):
        bilinear_projection(x, u, v, b, path="native")
    with pytest.raises(ValueError, match=r"path='fast' is not one of auto, native, single, "
                       r"batched"):
        single_pair(x, u, v, b, out_shape=(3, 2, 6), path="fast")
    assert choose_path(x, u, v, b) == "batched"
    assert choose_path(x.float(), u.float(), v.float(), b.float()) == (
        "native" if bilinear_pair.usable(x.float()) else "batched")
