"""Benchmark: bilinear projection (C_in = C_out = 1, d1 = d2 = k1 = k2 = sqrt(D)) against
nn.Linear(D, D), forward + backward, measured in the same run.

Both layers see the same contiguous (N, D) float32 input (requires_grad, as a hidden layer's input
does) and a contiguous random output gradient; each step is forward, backward, grads reset to None.
Warm-up first, then the layers are timed alternately (so load from other processes hits both) and
the median of the repeats is reported. A third column times the bilinear layer as it runs inside
a stack of bilinear layers, where input and gradient already arrive in its transposed ("p-major")
memory layout and no copies are needed (models/layers/bilinear_gemm.py).

Threads: fixed with --threads (default 1). On a shared 2-core machine, 2 threads turn every one of
the bilinear layer's small GEMMs into an OpenMP barrier that a descheduled thread stalls; run
--threads 2 on an idle machine. FLOP ratio = D^2 / (d1*d2*k2 + d1*k1*k2) MACs per sample (the
backward pass has the same ratio); the target is a realised speed-up of at least 60% of it.

Run:  PYTHONPATH=. python tests/benchmarks/bench_bilinear.py [--threads 2] [--repeats 30]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from models.costs import bilinear_macs
from models.layers.bilinear import BilinearProjection


def _step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    params = list(layer.parameters())

    def run() -> None:
        layer(x).backward(grad)  # forward + backward
        x.grad = None
        for p in params:
            p.grad = None

    return run


def _time(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(size: int, *, batch: int, repeats: int, warmup: int) -> dict[str, float]:
    d = math.isqrt(size)
    assert d * d == size, f"D={size} is not a square"
    torch.manual_seed(0)
    dense = nn.Linear(size, size)
    bilinear = BilinearProjection(1, 1, in_grid=(d, d), out_grid=(d, d))
    x = torch.randn(batch, size, requires_grad=True)
    # p-major: (N, 1, d, d) tensors whose memory is laid out (d, N, d), as inside a stack.
    x_p = torch.randn(d, batch, d).transpose(0, 1).unsqueeze(1).requires_grad_()
    grad_p = torch.randn(d, batch, d).transpose(0, 1).unsqueeze(1)
    steps = {
        "dense": _step(dense, x, torch.randn(batch, size)),
        "bilinear": _step(bilinear, x, torch.randn(batch, 1, d, d)),
        "stacked": _step(bilinear, x_p, grad_p),
    }
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            times[name].append(_time(fn))
    macs = bilinear_macs(in_channels=1, out_channels=1, in_grid=(d, d), out_grid=(d, d))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    return {"d": d, **medians, "flop_ratio": size * size / macs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 1024, 4096])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.repeats} (forward + backward, float32)")
    print(f"{'D':>6} {'grid':>7} {'nn.Linear ms':>13} {'bilinear ms':>12} {'FLOP ratio':>11} "
          f"{'speed-up':>9} {'realised/FLOP':>14}  {'target >= 0.60':<15}"
          f"{'stacked ms':>11} {'speed-up':>9} {'realised/FLOP':>14}")
    for size in args.sizes:
        r = measure(size, batch=args.batch, repeats=args.repeats, warmup=args.warmup)
        speedup = r["dense"] / r["bilinear"]
        fraction = speedup / r["flop_ratio"]
        verdict = ("met" if fraction >= 0.6 else "NOT met") if size >= 1024 else "(D < 1024)"
        stacked = r["dense"] / r["stacked"]
        print(f"{size:>6} {int(r['d']):>3}x{int(r['d']):<3} {r['dense'] * 1e3:>13.2f} "
              f"{r['bilinear'] * 1e3:>12.3f} {r['flop_ratio']:>11.1f} {speedup:>9.1f} "
              f"{fraction:>14.2f}  {verdict:<15}{r['stacked'] * 1e3:>11.3f} {stacked:>9.1f} "
              f"{stacked / r['flop_ratio']:>14.2f}")


if __name__ == "__main__":
    main()
