"""Benchmark: bilinear projection (C_in = C_out = 1, d1 = d2 = k1 = k2 = sqrt(D)) against
nn.Linear(D, D), forward + backward, measured in the same run.

Both layers see the same contiguous (N, D) float32 input (requires_grad, as a hidden layer's input
does) and a contiguous random output gradient; each step is forward, backward, grads reset to None.

Timing. A shared VM steals CPU time in bursts (``top`` shows 40-50 % "st" here), and a burst
costs a 3 ms step far more, relatively, than a 25 ms one. So each timed sample is a *block* of
steps sized to about --block-ms (several bilinear steps, one or two dense ones) and the
layers' blocks alternate. The speed-up judged against the target is the median over block pairs
of each pair's dense / bilinear ratio (adjacent blocks share the machine's mood); median and best
per-step times are printed beside it ("best" is what the code does when left alone). The first
few bilinear steps after a dense block run slower (the first 1.3-1.4x, the next two or three
1.05-1.2x, timed step by step), which costs a 50 ms bilinear block 4-5 % against the same steps
measured after other bilinear work. The verdict keeps that cost.

Threads: fixed with --threads (default 1). On the torch path, 2 threads turn every one of the
layer's small GEMMs into an OpenMP barrier that a descheduled thread stalls; the C kernel splits
the batch once per pass and gains from the second core (at D = 1024 here: 1.56 -> 0.99 ms per
step with 2 threads, the torch path 2.2 -> 2.0 ms).

FLOP ratio = D^2 / (d1*d2*k2 + d1*k1*k2) MACs per sample (the backward pass has the same ratio);
the target is a realised speed-up of at least 60% of it.

Paths: the bilinear layer runs as the model uses it: the C kernel of models/native where it
builds (float32 on a CPU with AVX-512F), the torch path elsewhere; the header line says which.
A third block per round runs the same layer on its torch path (``single_pair(native=False)``),
and "kernel gain*" is the median over rounds of torch-path / bilinear block time. Run with
PARETONAS_NATIVE_KERNELS=0 to judge the torch path alone.

Memory: the process keeps freed heap memory (search.heap.retain_freed_memory, as the
`paretonas search` and worker processes do), so neither layer's steps page-fault their
activations back in; --glibc-default leaves glibc's malloc as it is for comparison.

Run:  .venv/bin/python tests/benchmarks/bench_bilinear.py [--threads 2] [--blocks 20]
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
from models.layers.bilinear import BilinearProjection, single_pair
from models.native import bilinear_pair, build
from search.heap import retain_freed_memory

TARGET = 0.6


def _step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    params = list(layer.parameters())

    def run() -> None:
        layer(x).backward(grad)  # forward + backward
        x.grad = None
        for p in params:
            p.grad = None

    return run


class _TorchPath(nn.Module):
    """The same layer (same parameters) on its torch path, for the kernel's A/B column."""

    def __init__(self, layer: BilinearProjection) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        return single_pair(x, layer.U, layer.V, layer.bias, out_shape=layer.out_shape,
                           native=False)


def _block(fn: Callable[[], None], steps: int) -> float:
    """Seconds per step over ``steps`` back-to-back steps."""
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def measure(size: int, *, batch: int, blocks: int, block_ms: float) -> dict[str, float]:
    d = math.isqrt(size)
    assert d * d == size, f"D={size} is not a square"
    torch.manual_seed(0)
    x = torch.randn(batch, size, requires_grad=True)
    bilinear = BilinearProjection(1, 1, in_grid=(d, d), out_grid=(d, d))
    grad = torch.randn(batch, 1, d, d)
    steps = {
        "dense": _step(nn.Linear(size, size), x, torch.randn(batch, size)),
        "bilinear": _step(bilinear, x, grad),
        "torch_path": _step(_TorchPath(bilinear), x, grad),
    }
    per_block = {}
    for name, fn in steps.items():  # warm up, then size the blocks
        per_block[name] = max(1, round(block_ms / 1e3 / min(_block(fn, 1) for _ in range(3))))
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(blocks):
        for name, fn in steps.items():
            times[name].append(_block(fn, per_block[name]))
    macs = bilinear_macs(in_channels=1, out_channels=1, in_grid=(d, d), out_grid=(d, d))
    pair_speedups = [a / b for a, b in zip(times["dense"], times["bilinear"], strict=True)]
    kernel_gains = [a / b for a, b in zip(times["torch_path"], times["bilinear"], strict=True)]
    return {
        "d": d,
        "flop_ratio": size * size / macs,
        "speedup_median": statistics.median(pair_speedups),
        "kernel_gain_median": statistics.median(kernel_gains),
        **{f"{name}_median": statistics.median(ts) for name, ts in times.items()},
        **{f"{name}_best": min(ts) for name, ts in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 1024, 4096])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block-ms", type=float, default=50.0)
    parser.add_argument("--glibc-default", action="store_true",
                        help="leave malloc as it is (freed memory goes back to the kernel)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    memory = ("glibc default malloc" if args.glibc_default or not retain_freed_memory()
              else "freed memory retained")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"forward + backward, float32, {memory}; {args.blocks} alternating blocks of "
          f"~{args.block_ms:g} ms per layer; times are per step; speed-up* = median of per-pair "
          "dense/bilinear ratios")
    if bilinear_pair.library() is not None:
        print(f"bilinear layer: the C kernel (models/native), built for {build.cpu_flags()[0]!r}; "
              "'torch path' is the same layer with native=False, timed in the same blocks")
    else:
        print("bilinear layer: the torch path; the C kernel is unavailable: "
              f"{build.unavailable_reason(bilinear_pair.NAME)}")
    print(f"{'D':>6} {'grid':>7} {'FLOP ratio':>11} | {'median: dense ms':>16} {'bilinear ms':>12} "
          f"{'speed-up*':>9} {'realised/FLOP':>14} {'target':>10} | {'best: dense ms':>14} "
          f"{'bilinear ms':>12} {'realised/FLOP':>14} | {'torch path ms':>13} "
          f"{'kernel gain*':>12}")
    for size in args.sizes:
        r = measure(size, batch=args.batch, blocks=args.blocks, block_ms=args.block_ms)
        speedup = r["speedup_median"]
        fraction = speedup / r["flop_ratio"]
        verdict = ("met" if fraction >= TARGET else "NOT met") if size >= 1024 else "(D<1024)"
        best = r["dense_best"] / r["bilinear_best"] / r["flop_ratio"]
        print(f"{size:>6} {int(r['d']):>3}x{int(r['d']):<3} {r['flop_ratio']:>11.1f} | "
              f"{r['dense_median'] * 1e3:>16.2f} {r['bilinear_median'] * 1e3:>12.3f} "
              f"{speedup:>9.1f} {fraction:>14.2f} {verdict:>10} | "
              f"{r['dense_best'] * 1e3:>14.2f} {r['bilinear_best'] * 1e3:>12.3f} {best:>14.2f} | "
              f"{r['torch_path_median'] * 1e3:>13.3f} {r['kernel_gain_median']:>11.2f}x")


if __name__ == "__main__":
    main()
