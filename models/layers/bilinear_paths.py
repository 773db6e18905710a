"""How a bilinear projection runs: the ONE place that picks the path for a call.

- ``"native"``: the C kernel of ``models.native.bilinear_pair`` (float32 CPU tensors, no
  autocast, a kernel built for this CPU: AVX-512F or AVX2 + FMA), any channel counts. Measured
  faster than both torch paths for every shape of ``tests/benchmarks/bench_bilinear.py``
  (one channel up to 64 x 64, many channels of 8 x 8 and 28 x 28), so it wins wherever it runs.
- ``"single"``: C_in = C_out = 1 on the torch path (``bilinear_torch.single_pair_torch``: one
  GEMM and one broadcast bmm, one autograd node).
- ``"batched"``: any channel counts on the torch path (``bilinear_torch.batched_pairs``: two
  batched GEMMs over all channels). This is what CUDA tensors, float64 and autocast take.

``path="auto"`` decides as above; naming a path forces it (tests, benchmarks), and a path that
cannot take the call is refused with the reason.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.native import bilinear_pair as native_pair

__all__ = ["PATHS", "choose_path", "describe_auto_path"]

PATHS = ("auto", "native", "single", "batched")


def choose_path(x: Tensor, u: Tensor, v: Tensor, bias: Tensor | None, *, path: str = "auto"
                ) -> str:
    """``"native"``, ``"single"`` or ``"batched"`` for this call (see the module docstring)."""
    if path not in PATHS:
        raise ValueError(f"path={path!r} is not one of {', '.join(PATHS)}")
    one_pair = u.shape[0] == 1 and u.shape[1] == 1
    if path == "auto":
        if native_pair.usable(x, u, v, bias):
            return "native"
        return "single" if one_pair else "batched"
    if path == "native" and not native_pair.usable(x, u, v, bias):
        raise ValueError(f"path='native': the C kernel cannot take this call "
                         f"({_why_not_native(x, u)}); use path='auto'")
    if path == "single" and not one_pair:
        raise ValueError(f"path='single' needs C_in = C_out = 1; got C_out, C_in = "
                         f"{tuple(u.shape[:2])}; use 'batched' or 'auto'")
    return path


def _why_not_native(x: Tensor, u: Tensor) -> str:
    if x.device.type != "cpu" or x.dtype != torch.float32 or u.dtype != torch.float32:
        return f"it takes float32 CPU tensors; got {x.dtype} on {x.device}"
    return native_pair.unavailable_reason() or "autocast or torch.compile is on"


def describe_auto_path(*, device: str = "cpu", channels: tuple[int, int] = (1, 1)) -> str:
    """What ``path="auto"`` takes for float32 tensors on ``device`` with (C_in, C_out)
    channels, and why (for benchmark headers)."""
    torch_path = "'single' (torch: GEMM + broadcast bmm)" if channels == (1, 1) \
        else "'batched' (torch: two batched GEMMs)"
    if device != "cpu":
        return f"{torch_path}, as on every {device} device"
    isa = native_pair.active_isa()
    if isa is not None and native_pair.library(isa) is not None:
        return f"'native' (the C kernel, built for {isa})"
    return f"{torch_path}; the C kernel is unavailable: {native_pair.unavailable_reason()}"
