"""The bilinear projection in a C kernel (bilinear_pair.c): forward and backward, any C_in, C_out.

``models.layers.bilinear_paths`` takes this kernel when ``usable`` says it can take the call:
float32 CPU tensors, no autocast, not inside ``torch.compile``, and a kernel that built for this
CPU. One source is built for 512-bit (``avx512``: AVX-512F) or 256-bit (``avx2``: AVX2 + FMA)
vectors, the widest the CPU has unless ``PARETONAS_NATIVE_ISA`` forces one
(``models.native.build.choose_isa``); ``isa=`` here picks one per call (tests, benchmark).

The kernel solves the right order (T = X V first); the left order is passed as the right order
of the transposed problem (U and V, and their grids, swapped; ``tx`` set). For every input
channel the output channels' V's are concatenated, so the products are wide or deep even for
8 x 8 grids of many channels.

Measured with ``tests/benchmarks/bench_bilinear.py`` (1 thread, forward + backward, two runs on
an AMD EPYC with AVX-512 shared at load 13-15), realised/FLOP = speed-up over nn.Linear of the
same features / FLOP ratio, 512-bit build / 256-bit build: one channel at D = 1024 (batch 256)
0.87-0.88 / 0.81-0.89, at D = 4096 1.05-1.23 / 0.91-1.09; 8 x 8 maps at batch 64: 16 -> 16
0.71-0.73 / 0.61-0.64, 32 -> 32 0.65-0.68 / 0.54-0.60, 1 -> 32 0.38-0.46 / 0.35-0.43 (there the
same-shape batched-GEMM floor reaches only 0.48-0.57: six 8 x 8 x 8 products per channel pair
and the layer's fixed cost per call weigh against one 64 -> 2048 GEMM).
"""

from __future__ import annotations

import ctypes
import functools
import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from models.native import build

__all__ = ["NAME", "active_isa", "forward", "library", "unavailable_reason", "usable"]

NAME = "bilinear_pair"  # bilinear_pair.c beside this file
KEEP_MIDDLE_RATIO = 4  # keep T for the backward pass while it is <= 4x a sample's x + y

_INT, _LONG, _PTR = ctypes.c_int, ctypes.c_long, ctypes.c_void_p


def active_isa() -> str | None:
    """The variant the layers take now (``build.choose_isa``), None when there is none."""
    return build.choose_isa()[0]


def library(isa: str | None = None) -> ctypes.CDLL | None:
    """The kernel built for ``isa`` (default: ``active_isa()``) with its signatures set, or
    None (``unavailable_reason`` says why)."""
    isa = isa or active_isa()
    return None if isa is None or not build.enabled() else _library(isa)


@functools.cache
def _library(isa: str) -> ctypes.CDLL | None:
    lib = build.load(NAME, isa=isa)
    if lib is not None:
        lib.bp_forward.argtypes = [_LONG, *[_INT] * 7, *[_PTR] * 6]
        lib.bp_forward.restype = _INT
        lib.bp_backward.argtypes = [_LONG, *[_INT] * 7, *[_PTR] * 10]
        lib.bp_backward.restype = _INT
    return lib


def unavailable_reason(isa: str | None = None) -> str | None:
    """Why ``library(isa)`` is None (None when it is not)."""
    chosen, why = build.choose_isa()
    isa = isa or chosen
    if not build.enabled():
        return "turned off by PARETONAS_NATIVE_KERNELS"
    if isa is None:
        return why
    if library(isa) is not None:
        return None
    return build.unavailable_reason(NAME, isa)


def usable(*tensors: Tensor | None) -> bool:
    """True when the kernel is built and can take these tensors as they are."""
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    if not all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32)
               for t in tensors):
        return False
    return library() is not None


def forward(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *, right: bool,
            out_shape: tuple[int, ...], isa: str | None = None) -> Tensor:
    """x (N, ...) with C_in*d1*d2 features per sample (read as (N, C_in, d1, d2)), u (C_out,
    C_in, d1, k1), v (C_out, C_in, d2, k2), bias (C_out, k1, k2) or None -> (N, *out_shape),
    out_shape holding C_out*k1*k2 values. Call only when ``usable(x, u, v, bias)`` (or with an
    ``isa`` whose ``library(isa)`` is not None)."""
    _check_shapes(x, u, v, bias, out_shape)
    out: Tensor = _NativePair.apply(x, u, v, bias, right, out_shape,  # type: ignore[no-untyped-call]
                                    isa or active_isa())
    return out


def _check_shapes(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None,
                  out_shape: tuple[int, ...]) -> None:
    """The kernel reads and writes raw memory: a shape that does not fit must stop here."""
    us, vs = tuple(u.shape), tuple(v.shape)  # plain ints: cheaper to compare than torch.Size
    if len(us) != 4 or len(vs) != 4 or us[:2] != vs[:2]:
        raise ValueError(f"bilinear kernel: U {us} and V {vs} must be "
                         "(C_out, C_in, d1, k1) and (C_out, C_in, d2, k2)")
    c_out, c_in, d1, k1 = us
    d2, k2 = vs[2:]
    if x.dim() < 1 or x.numel() != x.shape[0] * c_in * d1 * d2:
        raise ValueError(f"bilinear kernel: input shape {tuple(x.shape)} must hold "
                         f"C_in*d1*d2 = {c_in}*{d1}*{d2} = {c_in * d1 * d2} features per sample")
    if bias is not None and tuple(bias.shape) != (c_out, k1, k2):
        raise ValueError(f"bilinear kernel: bias shape {tuple(bias.shape)} must be "
                         f"(C_out, k1, k2) = {(c_out, k1, k2)}")
    if math.prod(out_shape) != c_out * k1 * k2:
        raise ValueError(f"bilinear kernel: out_shape {out_shape} must hold C_out*k1*k2 = "
                         f"{c_out * k1 * k2} values")


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _keeps_middle(c_in: int, c_out: int, d1: int, d2: int, k1: int, k2: int) -> bool:
    """Save T (C_in*C_out*d1*k2 per sample) for the backward pass, or recompute it there: a T
    much larger than the sample's input and output costs more memory traffic than its GEMMs."""
    return c_in * c_out * d1 * k2 <= KEEP_MIDDLE_RATIO * (c_in * d1 * d2 + c_out * k1 * k2)


class _NativePair(torch.autograd.Function):
    """``a``, ``b`` are U, V (right order) or V, U (left order: the transposed problem)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, right: bool,
        out_shape: tuple[int, ...], isa: str,
    ) -> Tensor:
        lib = library(isa)
        assert lib is not None, "call only when the kernel is built"
        n = x.shape[0]
        a, b = (u, v) if right else (v, u)
        c_out, c_in, d1, k1 = a.shape
        d2, k2 = b.shape[2:]
        xc, ac, bc = x.contiguous(), a.contiguous(), b.contiguous()  # no copy when contiguous
        vcat = bc.detach().permute(1, 2, 0, 3).contiguous()  # (C_in, d2, C_out, k2): V_i^cat
        bias_c = None if bias is None else bias.contiguous()
        keep = _keeps_middle(c_in, c_out, d1, d2, k1, k2)
        mid = x.new_empty(n, c_in * d1 * c_out * k2) if keep else None
        y = x.new_empty(n, *out_shape)
        status = lib.bp_forward(n, c_in, c_out, d1, d2, k1, k2, int(not right), _ptr(xc),
                                _ptr(ac), _ptr(vcat), _ptr(bias_c), _ptr(mid), _ptr(y))
        if status != 0:
            raise MemoryError("bilinear_pair kernel: out of memory for its per-thread buffers")
        ctx.right, ctx.has_bias, ctx.x_shape, ctx.isa = right, bias is not None, x.shape, isa
        ctx.save_for_backward(xc, ac, bc, vcat, mid)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        lib = library(ctx.isa)
        assert lib is not None
        x, a, b, vcat, mid = ctx.saved_tensors
        need_x, need_u, need_v, need_bias = ctx.needs_input_grad[:4]
        need_a, need_b = (need_u, need_v) if ctx.right else (need_v, need_u)
        n = x.shape[0]
        c_out, c_in, d1, k1 = a.shape
        d2, k2 = b.shape[2:]
        g = grad.contiguous()
        gx = x.new_empty(ctx.x_shape) if need_x else None
        ga = a.new_empty(a.shape) if need_a else None
        gb = b.new_empty(b.shape) if need_b else None
        gbias = b.new_empty(c_out, *(k1, k2) if ctx.right else (k2, k1)) \
            if need_bias and ctx.has_bias else None
        # V_i^cat^T: (C_in, C_out, k2, d2)
        vcatt = b.detach().permute(1, 0, 3, 2).contiguous() if need_x else None
        status = lib.bp_backward(n, c_in, c_out, d1, d2, k1, k2, int(not ctx.right), _ptr(x),
                                 _ptr(a), _ptr(vcat), _ptr(vcatt), _ptr(mid), _ptr(g), _ptr(gx),
                                 _ptr(ga), _ptr(gb), _ptr(gbias))
        if status != 0:
            raise MemoryError("bilinear_pair kernel: out of memory for its per-thread buffers")
        gu, gv = (ga, gb) if ctx.right else (gb, ga)
        return gx, gu, gv, gbias, None, None, None
