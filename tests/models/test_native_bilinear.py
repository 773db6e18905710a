"""The C kernel of the one-channel bilinear pair (models.native) and how it is built and chosen.

The kernel tests run wherever the kernel can be built (Linux, a CPU with AVX-512F, a C compiler);
there a kernel that fails to build fails them. The build tests use a tiny C file of their own and
run on any Linux machine with a compiler.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from models.costs import bilinear_order
from models.layers import bilinear
from models.layers.bilinear import BilinearProjection, single_pair
from models.native import bilinear_pair, build

COMPILER = shutil.which(os.environ.get("CC", "cc"))
CAN_BUILD = build.enabled() and COMPILER is not None and "avx512f" in build.cpu_flags()[1]


@pytest.fixture
def kernel() -> None:
    if not CAN_BUILD:
        pytest.skip("the kernel needs Linux, AVX-512F and a C compiler, with "
                    "PARETONAS_NATIVE_KERNELS not 0")
    assert bilinear_pair.library() is not None, build.unavailable_reason(bilinear_pair.NAME)


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


SHAPES = [(32, 32, 32, 32), (28, 28, 28, 28), (64, 64, 64, 64), (7, 9, 5, 20),
          (3, 40, 17, 33), (50, 2, 1, 9), (1, 1, 1, 1)]


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("right", [True, False], ids=["right", "left"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_kernel_matches_the_float64_reference(shape: tuple[int, int, int, int], right: bool,
                                              bias: bool) -> None:
    """Widths below, at and above one 16-lane register and above the 32-column tile; row
    counts with and without a remainder of the 8-row tile; both evaluation orders."""
    k1, k2 = shape[2:]
    t = _tensors(11, *shape, seed=sum(shape))
    grad = torch.randn(11, k1, k2)
    y = bilinear_pair.forward(t["x"], t["u"], t["v"], t["b"] if bias else None, right=right,
                              out_shape=(k1, k2))
    y.backward(grad)
    want = _reference(t, grad, bias)
    _close(y.detach(), want["y"], "y")
    for name in ("x", "u", "v"):
        _close(t[name].grad, want[name], f"grad {name}")
    _close(t["b"].grad if bias else None, want["b"] if bias else None, "grad b")


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(("c_in", "c_out"), [(2, 3), (3, 1), (1, 2)])
@pytest.mark.parametrize(("shape", "order"), [((4, 6, 5, 3), "right"), ((6, 5, 3, 20), "left")])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_kernel_matches_the_float64_reference_for_many_channels(
        c_in: int, c_out: int, shape: tuple[int, int, int, int], order: str, bias: bool) -> None:
    """Y_o sums over the input channels, dX_i over the output channels; each pair has its
    own U, V. Through the module, which picks the order from the shapes."""
    d1, d2, k1, k2 = shape
    assert bilinear_order(in_grid=(d1, d2), out_grid=(k1, k2)) == order
    layer = BilinearProjection(c_in, c_out, in_grid=(d1, d2), out_grid=(k1, k2), bias=bias)
    t = _tensors(9, *shape, seed=c_in * 10 + c_out, c_in=c_in, c_out=c_out)
    with torch.no_grad():
        layer.U.copy_(t["u"])
        layer.V.copy_(t["v"])
        if layer.bias is not None:
            layer.bias.copy_(t["b"])
    grad = torch.randn(9, c_out, k1, k2)
    y = layer(t["x"])
    y.backward(grad)
    want = _reference(t, grad, bias)
    _close(y.detach(), want["y"], "y")
    _close(t["x"].grad, want["x"], "grad x")
    _close(layer.U.grad, want["u"], "grad u")
    _close(layer.V.grad, want["v"], "grad v")
    _close(None if layer.bias is None else layer.bias.grad, want["b"] if bias else None,
           "grad b")


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("wanted", ["x", "uvb", "xu", "v", "b"])
@pytest.mark.parametrize("right", [True, False], ids=["right", "left"])
@pytest.mark.parametrize("channels", [1, 2])
def test_kernel_computes_exactly_the_gradients_asked_for(wanted: str, right: bool,
                                                         channels: int) -> None:
    t = _tensors(6, 5, 4, 3, 6, seed=7, wanted=wanted, c_in=channels, c_out=channels)
    grad = torch.randn(6, channels, 3, 6)
    bilinear_pair.forward(t["x"], t["u"], t["v"], t["b"], right=right,
                          out_shape=(channels, 3, 6)).backward(grad)
    want = _reference(t, grad, True)
    for name in "xuvb":
        _close(t[name].grad, want[name], f"grad {name}")


@pytest.mark.usefixtures("kernel")
def test_kernel_takes_strided_inputs_and_an_empty_batch() -> None:
    t = _tensors(5, 4, 6, 3, 2, seed=8)
    strided = t["x"].detach().t().contiguous().t()  # same values, column-major in memory
    assert not strided.is_contiguous()
    args = (t["u"], t["v"], t["b"])
    same = bilinear_pair.forward(strided, *args, right=True, out_shape=(3, 2))
    torch.testing.assert_close(same, bilinear_pair.forward(t["x"], *args, right=True,
                                                           out_shape=(3, 2)), rtol=0, atol=0)
    empty = torch.zeros(0, 24, requires_grad=True)
    y = bilinear_pair.forward(empty, *args, right=True, out_shape=(1, 3, 2))
    assert y.shape == (0, 1, 3, 2)
    y.sum().backward()
    for name in "uvb":
        assert t[name].grad is not None and not t[name].grad.any(), name
    assert empty.grad is not None and empty.grad.shape == (0, 24)


@pytest.mark.usefixtures("kernel")
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


@pytest.mark.usefixtures("kernel")
def test_kernel_gives_the_same_bits_on_every_run_with_two_threads() -> None:
    """dU, dV and dB are summed per thread over fixed blocks of samples, then in thread order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(3):
            t = _tensors(97, 32, 32, 32, 32, seed=9)
            bilinear_pair.forward(t["x"], t["u"], t["v"], t["b"], right=True,
                                  out_shape=(32, 32)).sum().backward()
            runs.append([t[name].grad for name in "xuvb"])
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        for got, first in zip(run, runs[0], strict=True):
            assert got is not None and first is not None
            assert torch.equal(got, first)


@pytest.mark.usefixtures("kernel")
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
    calls: list[torch.dtype] = []
    real = bilinear_pair.forward

    def spy(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(x.dtype)
        return real(x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bilinear.native_pair, "forward", spy)
    for dtype in (torch.float32, torch.float64):
        layer = BilinearProjection(1, 1, in_grid=(4, 4), out_grid=(2, 2), dtype=dtype)
        layer(torch.randn(3, 16, dtype=dtype)).sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        BilinearProjection(1, 1, in_grid=(4, 4), out_grid=(2, 2))(torch.randn(3, 16))
    x = torch.randn(3, 16)
    layer = BilinearProjection(1, 1, in_grid=(4, 4), out_grid=(2, 2))
    single_pair(x, layer.U, layer.V, layer.bias, out_shape=(2, 2), native=False)
    assert calls == ([torch.float32] if CAN_BUILD else [])


def test_layer_gives_the_same_values_on_both_paths() -> None:
    torch.manual_seed(10)
    layer = BilinearProjection(1, 1, in_grid=(28, 28), out_grid=(16, 16))
    x = torch.randn(64, 784)
    fast = single_pair(x, layer.U, layer.V, layer.bias, out_shape=(256,))
    plain = single_pair(x, layer.U, layer.V, layer.bias, out_shape=(256,), native=False)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


# --- building -------------------------------------------------------------------------------

needs_compiler = pytest.mark.skipif(
    COMPILER is None or not Path("/proc/cpuinfo").exists(), reason="needs Linux and a C compiler")


@pytest.fixture
def tiny_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A one-function kernel in a folder of its own, a fresh cache, and a compiler wrapper
    that logs each call."""
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "tiny.c").write_text("int answer(void) { return 42; }\n")
    log = tmp_path / "cc.log"
    wrapper = tmp_path / "cc"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {COMPILER} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(build, "SOURCE_DIR", sources)
    monkeypatch.setenv("PARETONAS_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.delenv("PARETONAS_NATIVE_KERNELS", raising=False)
    yield log


def _load(name: str, needs: tuple[str, ...] = ()) -> object:
    return build.load.__wrapped__(name, needs=needs)  # type: ignore[attr-defined]


@needs_compiler
def test_a_kernel_is_built_once_then_loaded_from_the_cache(tiny_source: Path,
                                                           tmp_path: Path) -> None:
    lib = _load("tiny")
    assert lib is not None and lib.answer() == 42  # type: ignore[attr-defined]
    compiles = [line for line in tiny_source.read_text().splitlines() if "-o " in line]
    assert len(compiles) == 1 and "-march=native" in compiles[0]
    (built,) = (tmp_path / "cache").glob("tiny-*.so")
    assert _load("tiny") is not None
    assert len([line for line in tiny_source.read_text().splitlines() if "-o " in line]) == 1
    assert list((tmp_path / "cache").iterdir()) == [built]  # no scratch left behind


@needs_compiler
def test_processes_that_build_at_once_all_load_a_whole_library(tiny_source: Path,
                                                               tmp_path: Path) -> None:
    """Search workers start together: each compiles into a scratch folder and renames the
    result into place, so none loads a half-written file and one library is left."""
    script = ("import sys; from pathlib import Path; from models.native import build; "
              "build.SOURCE_DIR = Path(sys.argv[1]); lib = build.load('tiny'); "
              "print(lib.answer() if lib else build.unavailable_reason('tiny'))")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(build.SOURCE_DIR)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
             for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["42"] * 4
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        p.name for p in (tmp_path / "cache").glob("tiny-*.so")]
    assert len(list((tmp_path / "cache").iterdir())) == 1


@needs_compiler
def test_a_compiler_error_is_reported_and_nothing_is_cached(tiny_source: Path,
                                                            tmp_path: Path) -> None:
    (build.SOURCE_DIR / "broken.c").write_text("int answer(void) { return }\n")
    assert _load("broken") is None
    reason = build.unavailable_reason("broken")
    assert reason is not None and "failed (exit 1)" in reason and "broken.c" in reason
    assert list((tmp_path / "cache").iterdir()) == []


@needs_compiler
def test_each_reason_not_to_build_is_named(tiny_source: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load("tiny", ("no_such_cpu_flag",)) is None
    assert "needs a Linux CPU with no_such_cpu_flag" in str(build.unavailable_reason("tiny"))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert _load("tiny") is None
    assert build.unavailable_reason("tiny") == (
        "no C compiler '/nonexistent/cc' on PATH (set CC, or install gcc)")
    monkeypatch.setenv("PARETONAS_NATIVE_KERNELS", "0")
    assert _load("tiny") is None
    assert build.unavailable_reason("tiny") == "turned off by PARETONAS_NATIVE_KERNELS"
    assert not tiny_source.exists()  # none of these ran the compiler


@needs_compiler
def test_a_cache_folder_that_cannot_be_made_is_reported(tiny_source: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PARETONAS_KERNEL_CACHE", str(blocker / "kernels"))
    assert _load("tiny") is None
    reason = str(build.unavailable_reason("tiny"))
    assert reason.startswith(("FileExistsError", "NotADirectoryError")), reason
    assert str(blocker) in reason


def test_usable_refuses_what_the_kernel_cannot_take() -> None:
    x = torch.randn(2, 4)
    assert not bilinear_pair.usable(x.double())
    assert not bilinear_pair.usable(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not bilinear_pair.usable(x)
    assert bilinear_pair.usable(x, None) == CAN_BUILD
