"""The C kernel of the bilinear projection (models.native.bilinear_pair), both ISA variants.

Every kernel test runs once per variant (``avx512``: 512-bit vectors, ``avx2``: 256-bit) on a
CPU that has its instructions (an AVX-512 machine runs both: the 256-bit build is compiled with
``-mno-avx512f``), so CI on an AVX-512 machine checks the code an AVX2-only CPU runs. Where a
variant can be built, a kernel that fails to build fails its tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from models.costs import bilinear_order
from models.layers import bilinear_paths
from models.layers.bilinear import BilinearProjection, single_pair
from models.native import bilinear_pair, build

COMPILER = shutil.which(os.environ.get("CC", "cc"))
CPU_FLAGS = build.cpu_flags()[1]
BUILDABLE = {isa.name: build.enabled() and COMPILER is not None
             and all(flag in CPU_FLAGS for flag in isa.needs) for isa in build.ISAS}
CAN_BUILD = bilinear_pair.active_isa() is not None and BUILDABLE.get(
    str(bilinear_pair.active_isa()), False)


@pytest.fixture(params=[isa.name for isa in build.ISAS])
def isa(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if not BUILDABLE[name]:
        pytest.skip(f"the {name} kernel needs Linux, a CPU with its instructions and a C "
                    "compiler, with PARETONAS_NATIVE_KERNELS not 0")
    assert bilinear_pair.library(name) is not None, bilinear_pair.unavailable_reason(name)
    return name


def _tensors(n: int, d1: int, d2: int, k1: int, k2: int, *, seed: int, wanted: str = "xuvb",
             c_in: int = 1, c_out: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = {"x": (n, c_in * d1 * d2), "u": (c_out, c_in, d1, k1), "v": (c_out, c_in, d2, k2),
              "b": (c_out, k1, k2)}
    return {name: torch.randn(*shape, generator=gen).requires_grad_(name in wanted)
            for name, shape in shapes.items()}


def _reference(t: dict[str, torch.Tensor], grad: torch.Tensor, bias: bool
               ) -> dict[str, torch.Tensor | None]:
    """Y_no = sum_i U_oi^T X_ni V_oi + B_o in float64, and its gradients under ``grad``."""
    d = {name: v.detach().double().requires_grad_(v.requires_grad) for name, v in t.items()}
    _, c_in, d1, _ = d["u"].shape
    d2 = d["v"].shape[2]
    x = d["x"].view(-1, c_in, d1, d2)
    y = torch.einsum("oipr,nipq,oiqs->nors", d["u"], x, d["v"])
    if bias:
        y = y + d["b"]
    y.backward(grad.double().view_as(y))
    return {"y": y.detach(), **{name: v.grad for name, v in d.items()}}


def _close(got: torch.Tensor | None, want: torch.Tensor | None, what: str) -> None:
    assert (got is None) == (want is None), what
    if got is not None and want is not None:
        scale = want.abs().max().item() or 1.0
        torch.testing.assert_close(got.double().view_as(want), want, rtol=2e-5,
                                   atol=2e-6 * scale, msg=lambda m: f"{what}: {m}")


def _run(isa: str, t: dict[str, torch.Tensor], *, right: bool, bias: bool,
         grad: torch.Tensor) -> torch.Tensor:
    c_out, _, _, k1 = t["u"].shape
    y = bilinear_pair.forward(t["x"], t["u"], t["v"], t["b"] if bias else None, right=right,
                              out_shape=(c_out, k1, t["v"].shape[3]), isa=isa)
    y.backward(grad)
    return y.detach()


def _check(isa: str, t: dict[str, torch.Tensor], *, right: bool, bias: bool) -> None:
    n, (c_out, _, _, k1), k2 = t["x"].shape[0], t["u"].shape, t["v"].shape[3]
    grad = torch.randn(n, c_out, k1, k2, generator=torch.Generator().manual_seed(1))
    y = _run(isa, t, right=right, bias=bias, grad=grad)
    want = _reference(t, grad, bias)
    _close(y, want["y"], "y")
    for name in ("x", "u", "v"):
        _close(t[name].grad, want[name], f"grad {name}")
    _close(t["b"].grad if bias else None, want["b"] if bias else None, "grad b")


SHAPES = [(32, 32, 32, 32), (28, 28, 28, 28), (7, 9, 5, 20),
          (3, 40, 17, 33), (50, 2, 1, 9), (1, 1, 1, 1), (8, 8, 8, 8), (8, 8, 2, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("right", [True, False], ids=["right", "left"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_kernel_matches_the_float64_reference(isa: str, shape: tuple[int, int, int, int],
                                              right: bool, bias: bool) -> None:
    """Widths below, at and above one 8-lane half vector, one 16-lane register and the
    two-register tile; row counts with and without a remainder of the tiles; both orders."""
    _check(isa, _tensors(11, *shape, seed=sum(shape)), right=right, bias=bias)


# (C_in, C_out, (d1, d2, k1, k2)): the digits space's 8 x 8 maps (1 -> 32, 16 -> 16), MNIST's
# 28 x 28 (1 -> 4), a bilinear classifier (16 -> 1 onto 2 x 5), and odd sizes. 16 -> 16
# recomputes T in the backward pass, the others keep it (both kinds are covered).
CHANNEL_CASES = [(2, 3, (4, 6, 5, 3)), (3, 1, (6, 5, 3, 20)), (1, 2, (4, 6, 5, 3)),
                 (1, 32, (8, 8, 8, 8)), (16, 16, (8, 8, 8, 8)),
                 (1, 4, (28, 28, 28, 28)), (16, 1, (8, 8, 2, 5)), (5, 7, (3, 9, 10, 2))]


def test_channel_cases_keep_and_recompute_the_middle_product() -> None:
    keeps = {bilinear_pair._keeps_middle(c_in, c_out, *dims) for c_in, c_out, dims in CHANNEL_CASES}
    assert keeps == {True, False}


@pytest.mark.parametrize(("c_in", "c_out", "shape"), CHANNEL_CASES,
                         ids=lambda c: "x".join(map(str, c)) if isinstance(c, tuple) else str(c))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_kernel_matches_the_float64_reference_for_many_channels(
        isa: str, c_in: int, c_out: int, shape: tuple[int, int, int, int], bias: bool) -> None:
    """Y_o sums over the input channels, dX_i over the output channels; each pair has its own
    U, V; the order the layer would pick for the shapes."""
    d1, d2, k1, k2 = shape
    right = bilinear_order(in_grid=(d1, d2), out_grid=(k1, k2)) == "right"
    t = _tensors(9, *shape, seed=c_in * 10 + c_out, c_in=c_in, c_out=c_out)
    _check(isa, t, right=right, bias=bias)


@pytest.mark.parametrize("wanted", ["x", "uvb", "xu", "v", "b"])
@pytest.mark.parametrize("right", [True, False], ids=["right", "left"])
@pytest.mark.parametrize(("c_in", "c_out", "shape"),
                         [(1, 1, (5, 4, 3, 6)), (2, 2, (5, 4, 3, 6)), (12, 12, (8, 8, 8, 8))])
def test_kernel_computes_exactly_the_gradients_asked_for(
        isa: str, wanted: str, right: bool, c_in: int, c_out: int,
        shape: tuple[int, int, int, int]) -> None:
    t = _tensors(6, *shape, seed=7, wanted=wanted, c_in=c_in, c_out=c_out)
    grad = torch.randn(6, c_out, shape[2], shape[3])
    _run(isa, t, right=right, bias=True, grad=grad)
    want = _reference(t, grad, True)
    for name in "xuvb":
        _close(t[name].grad, want[name], f"grad {name}")


def test_kernel_takes_strided_inputs_and_gradients_and_an_empty_batch(isa: str) -> None:
    t = _tensors(5, 4, 6, 3, 2, seed=8, c_out=2)
    strided = t["x"].detach().t().contiguous().t()  # same values, column-major in memory
    assert not strided.is_contiguous()
    args = (t["u"], t["v"], t["b"])
    same = bilinear_pair.forward(strided, *args, right=True, out_shape=(2, 3, 2), isa=isa)
    torch.testing.assert_close(same, bilinear_pair.forward(t["x"], *args, right=True,
                                                           out_shape=(2, 3, 2), isa=isa),
                               rtol=0, atol=0)
    flat = bilinear_pair.forward(t["x"], *args, right=False, out_shape=(12,), isa=isa)
    flat.t().sum(0).pow(2).sum().backward()  # an upstream gradient with strides (1, 0)
    grad = (2 * flat.detach().sum(1, keepdim=True)).expand(5, 12)
    want = _reference(t, grad, True)
    for name in "xuvb":
        _close(t[name].grad, want[name], f"grad {name}")
    empty = torch.zeros(0, 24, requires_grad=True)
    for p in args:
        p.grad = None
    y = bilinear_pair.forward(empty, *args, right=True, out_shape=(2, 3, 2), isa=isa)
    assert y.shape == (0, 2, 3, 2)
    y.sum().backward()
    for p in args:
        assert p.grad is not None and not p.grad.any()
    assert empty.grad is not None and empty.grad.shape == (0, 24)


@pytest.mark.usefixtures("isa")
def test_shapes_that_do_not_fit_are_refused_before_the_kernel_touches_memory() -> None:
    t = _tensors(3, 4, 5, 2, 3, seed=11, c_in=2, c_out=3)
    x, u, v, b = t["x"], t["u"], t["v"], t["b"]
    forward = bilinear_pair.forward
    with pytest.raises(ValueError, match=r"input shape \(3, 41\) must hold C_in\*d1\*d2 = "
                       r"2\*4\*5 = 40 features per sample"):
        forward(torch.randn(3, 41), u, v, b, right=True, out_shape=(3, 2, 3))
    with pytest.raises(ValueError, match=r"U \(3, 2, 4, 2\) and V \(3, 1, 5, 3\) must be"):
        forward(x, u, v[:, :1], b, right=True, out_shape=(3, 2, 3))
    with pytest.raises(ValueError, match=r"bias shape \(1, 2, 3\) must be \(C_out, k1, k2\)"):
        forward(x, u, v, b[:1], right=True, out_shape=(3, 2, 3))
    with pytest.raises(ValueError, match=r"out_shape \(2, 2, 3\) must hold C_out\*k1\*k2 = 18"):
        forward(x, u, v, b, right=True, out_shape=(2, 2, 3))
    assert forward(x, u, v, b, right=True, out_shape=(18,)).shape == (3, 18)


@pytest.mark.parametrize(("c_in", "c_out", "shape"),
                         [(1, 1, (32, 32, 32, 32)), (8, 8, (8, 8, 8, 8))])
def test_kernel_gives_the_same_bits_on_every_run_with_one_and_two_threads(
        isa: str, c_in: int, c_out: int, shape: tuple[int, int, int, int]) -> None:
    """dU, dV and dB are summed per thread over fixed blocks of samples, then in thread order:
    the same bits on every run for a given thread count. Y and dX depend on their own sample
    only: the same bits for 1 and 2 threads."""
    threads = torch.get_num_threads()
    runs: dict[int, list[list[torch.Tensor]]] = {1: [], 2: []}
    try:
        for count in (1, 2, 1, 2):
            torch.set_num_threads(count)
            t = _tensors(97, *shape, seed=9, c_in=c_in, c_out=c_out)
            y = bilinear_pair.forward(t["x"], t["u"], t["v"], t["b"], right=True,
                                      out_shape=(c_out, *shape[2:]), isa=isa)
            y.backward(torch.ones_like(y))
            runs[count].append([y.detach(), *(t[name].grad for name in "xuvb")])  # type: ignore[list-item]
    finally:
        torch.set_num_threads(threads)
    for count in (1, 2):
        first, again = runs[count]
        for got, want in zip(again, first, strict=True):
            assert torch.equal(got, want), count
    for got, want in zip(runs[2][0][:2], runs[1][0][:2], strict=True):  # y and dX
        assert torch.equal(got, want)


@pytest.mark.usefixtures("isa")
def test_kernel_runs_on_torchs_own_openmp_runtime() -> None:
    """-fopenmp links libgomp.so.1 by name: the copy torch loaded, not the system's, which would
    be a second runtime with a second pool of threads. (Other packages load copies under
    hashed names, e.g. scikit-learn's libgomp-<hash>.so; the kernel cannot bind to those.)"""
    maps = Path("/proc/self/maps").read_text().splitlines()
    runtimes = {line.split()[-1] for line in maps if line.endswith("/libgomp.so.1")}
    assert len(runtimes) == 1, runtimes
    assert "/torch/lib/" in next(iter(runtimes))


def test_layer_takes_the_kernel_for_float32_and_the_torch_path_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[torch.dtype, int]] = []
    real = bilinear_pair.forward

    def spy(x: torch.Tensor, u: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append((x.dtype, u.shape[0]))
        return real(x, u, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bilinear_pair, "forward", spy)
    for dtype in (torch.float32, torch.float64):
        for c_out in (1, 3):
            layer = BilinearProjection(1, c_out, in_grid=(4, 4), out_grid=(2, 2), dtype=dtype)
            layer(torch.randn(3, 16, dtype=dtype)).sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        BilinearProjection(1, 1, in_grid=(4, 4), out_grid=(2, 2))(torch.randn(3, 16))
    x = torch.randn(3, 16)
    layer = BilinearProjection(1, 1, in_grid=(4, 4), out_grid=(2, 2))
    single_pair(x, layer.U, layer.V, layer.bias, out_shape=(2, 2), path="single")
    monkeypatch.setenv("PARETONAS_NATIVE_KERNELS", "0")  # read on every call
    layer(x)
    assert calls == ([(torch.float32, 1), (torch.float32, 3)] if CAN_BUILD else [])


@pytest.mark.parametrize("setting", ["avx2", "avx512"])
def test_the_isa_setting_picks_the_layers_kernel_at_run_time(
        setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not BUILDABLE[setting]:
        pytest.skip(f"this CPU cannot run the {setting} kernel")
    monkeypatch.setenv(build.ISA_SETTING, setting)
    assert bilinear_pair.active_isa() == setting
    assert bilinear_pair.library() is bilinear_pair.library(setting)
    assert bilinear_paths.describe_auto_path() == f"'native' (the C kernel, built for {setting})"
    monkeypatch.setenv(build.ISA_SETTING, "neon")
    layer = BilinearProjection(2, 2, in_grid=(4, 4), out_grid=(2, 2))
    assert bilinear_paths.choose_path(torch.randn(3, 32), layer.U, layer.V, None) == "batched"
    assert bilinear_paths.describe_auto_path(channels=(2, 2)) == (
        "'batched' (torch: two batched GEMMs); the C kernel is unavailable: "
        "PARETONAS_NATIVE_ISA='neon' is not one of auto, avx512, avx2; set one of those")


def test_layer_gives_the_same_values_on_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(10)
    layer = BilinearProjection(1, 1, in_grid=(28, 28), out_grid=(16, 16))
    x = torch.randn(64, 784)
    plain = single_pair(x, layer.U, layer.V, layer.bias, out_shape=(256,), path="single")
    for name, ok in BUILDABLE.items():
        if ok:
            monkeypatch.setenv(build.ISA_SETTING, name)
            fast = single_pair(x, layer.U, layer.V, layer.bias, out_shape=(256,))
            torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_usable_refuses_what_the_kernel_cannot_take() -> None:
    x = torch.randn(2, 4)
    assert not bilinear_pair.usable(x.double())
    assert not bilinear_pair.usable(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not bilinear_pair.usable(x)
    assert bilinear_pair.usable(x, None) == CAN_BUILD
