"""The bilinear projection in a C kernel (bilinear_pair.c): forward and backward, any C_in, C_out.

``models.layers.bilinear`` calls ``forward`` here when ``usable`` says the kernel can take the
call: float32 CPU tensors, no autocast, not inside ``torch.compile``, and a kernel that built for
this CPU (AVX-512F; see ``models.native.build``). Anything else takes the torch path. Measured
against that path for one channel (one thread, batch 256, forward + backward, the "kernel gain"
column of ``tests/benchmarks/bench_bilinear.py``, 6 runs): 1.29-1.82x as fast at D = 1024,
1.40-1.63x at 4096, 1.47-1.68x at 784. Several channels (scratch A/B, one thread): 1.90x for
2 -> 2 channels of 28 x 28 at batch 256, 1.93x for 1 -> 4 at batch 64, 1.30x for 3 -> 2 of
16 x 16.
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

__all__ = ["NAME", "forward", "library", "usable"]

NAME = "bilinear_pair"  # bilinear_pair.c beside this file

_INT, _LONG, _PTR = ctypes.c_int, ctypes.c_long, ctypes.c_void_p


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built kernel with its signatures set, or None (``build.unavailable_reason`` says
    why)."""
    lib = build.load(NAME, needs=("avx512f",))
    if lib is not None:
        lib.bp_forward.argtypes = [_LONG, *[_INT] * 7, *[_PTR] * 6]
        lib.bp_forward.restype = None
        lib.bp_backward.argtypes = [_LONG, *[_INT] * 7, *[_PTR] * 9]
        lib.bp_backward.restype = _INT
    return lib


def usable(*tensors: Tensor | None) -> bool:
    """True when the kernel is built and can take these tensors as they are."""
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    if not all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32)
               for t in tensors):
        return False
    return library() is not None


def forward(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *, right: bool,
            out_shape: tuple[int, ...]) -> Tensor:
    """x (N, ...) with C_in*d1*d2 features per sample (read as (N, C_in, d1, d2)), u (C_out,
    C_in, d1, k1), v (C_out, C_in, d2, k2), bias (C_out, k1, k2) or None -> (N, *out_shape),
    out_shape holding C_out*k1*k2 values. Call only when ``usable(x, u, v, bias)``."""
    _check_shapes(x, u, v, bias, out_shape)
    out: Tensor = _NativePair.apply(x, u, v, bias, right, out_shape)  # type: ignore[no-untyped-call]
    return out


def _check_shapes(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None,
                  out_shape: tuple[int, ...]) -> None:
    """The kernel reads and writes raw memory: a shape that does not fit must stop here."""
    if u.dim() != 4 or v.dim() != 4 or u.shape[:2] != v.shape[:2]:
        raise ValueError(f"bilinear kernel: U {tuple(u.shape)} and V {tuple(v.shape)} must be "
                         "(C_out, C_in, d1, k1) and (C_out, C_in, d2, k2)")
    c_out, c_in, d1, k1 = u.shape
    d2, k2 = v.shape[2:]
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


class _NativePair(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, right: bool,
        out_shape: tuple[int, ...],
    ) -> Tensor:
        lib = library()
        assert lib is not None, "call only when usable()"
        n = x.shape[0]
        c_out, c_in, d1, k1 = u.shape
        d2, k2 = v.shape[2:]
        xc, uc, vc = x.contiguous(), u.detach().contiguous(), v.detach().contiguous()
        bc = None if bias is None else bias.detach().contiguous()
        mid = x.new_empty(n, c_out * c_in * (d1 * k2 if right else k1 * d2))
        y = x.new_empty(n, *out_shape)
        lib.bp_forward(n, c_in, c_out, d1, d2, k1, k2, int(right), _ptr(xc), _ptr(uc), _ptr(vc),
                       _ptr(bc), _ptr(mid), _ptr(y))
        ctx.right, ctx.has_bias, ctx.x_shape = right, bias is not None, x.shape
        ctx.save_for_backward(xc, uc, vc, mid)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        lib = library()
        assert lib is not None
        x, u, v, mid = ctx.saved_tensors
        need_x, need_u, need_v, need_bias = ctx.needs_input_grad[:4]
        n = x.shape[0]
        c_out, c_in, d1, k1 = u.shape
        d2, k2 = v.shape[2:]
        g = grad.contiguous()
        gx = x.new_empty(ctx.x_shape) if need_x else None
        gu = u.new_empty(u.shape) if need_u else None
        gv = v.new_empty(v.shape) if need_v else None
        gb = v.new_empty(c_out, k1, k2) if need_bias and ctx.has_bias else None
        vt = v.transpose(2, 3).contiguous()  # V_oi^T: (C_out, C_in, k2, d2)
        status = lib.bp_backward(n, c_in, c_out, d1, d2, k1, k2, int(ctx.right), _ptr(x),
                                 _ptr(u), _ptr(vt), _ptr(mid), _ptr(g), _ptr(gx), _ptr(gu),
                                 _ptr(gv), _ptr(gb))
        if status != 0:
            raise MemoryError("bilinear_pair kernel: out of memory for its per-thread buffers")
        return gx, gu, gv, gb, None, None
