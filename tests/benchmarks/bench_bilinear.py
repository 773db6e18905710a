"""Benchmark: bilinear projections against nn.Linear of the same in/out features, forward +
backward, every path of the layer measured in the same run.

Cases: one channel, d1 = d2 = k1 = k2 = sqrt(D), at D = 784, 1024, 4096 (batch 256); and many
channels of small grids, C_in -> C_out at 8 x 8 (1 -> 32, 16 -> 16, 32 -> 32: the digits space)
and 28 x 28 (1 -> 4, 4 -> 4), at batch 64 and 256. Each layer sees the same contiguous float32
input (requires_grad, as a hidden layer's input does) and a random output gradient; a step is
forward, backward, grads reset to None.

Columns, all timed in the same alternating blocks: ``dense`` (nn.Linear), the C kernel in every
ISA variant this CPU can run (``avx512``, ``avx2``; forced per call, so an AVX-512 machine also
shows the 256-bit code an AVX2-only CPU runs), ``torch`` (the layer's torch path: 'single' for
one channel, 'batched' otherwise, as CUDA runs it) and ``floor``: the products of the same
forward and backward as six batched GEMMs of the same shapes (torch.bmm into preallocated
outputs: no autograd, no layout copies, no kernel of ours), the best a library GEMM gives on
this machine. Per column: speed-up = median over rounds of dense / column block time, and
realised/FLOP = speed-up / FLOP ratio. The verdict judges each path the layer takes by itself
(``path="auto"``: the kernel's ISA on a CPU that has it, named in the header; the torch path
where no kernel builds).

Targets: realised/FLOP >= 0.6 for one channel at D >= 1024, >= 0.5 for the many-channel 8 x 8
cases (2x the dense layer's speed at a FLOP ratio of 4). Where a path misses its target, the row
says what binds: the floor (when the same-shape GEMMs miss it too, the target is beyond this
machine's GEMMs at these shapes) or the implementation (when the floor reaches it), and the
path's speed as a fraction of the floor's.

Timing. A shared VM steals CPU time in bursts, and a burst costs a 1 ms step far more,
relatively, than a 25 ms one. So each timed sample is a *block* of steps sized to about
--block-ms and the columns' blocks alternate; ratios are medians over rounds of adjacent
blocks. Run it more than once on a shared machine; expect 10-30 % spread between runs.

Threads: fixed with --threads (default 1, as trials train). FLOP ratio = dense MACs /
bilinear MACs per sample (models.costs.bilinear_macs; the backward pass has the same ratio).

Memory: the process keeps freed heap memory (search.heap.retain_freed_memory, as the
`paretonas search` and worker processes do); --glibc-default leaves malloc as it is.

Run:  .venv/bin/python tests/benchmarks/bench_bilinear.py [--threads 2] [--blocks 15]
      [--cases single many] [--batches 64 256]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from models.costs import bilinear_macs, bilinear_order
from models.layers.bilinear import BilinearProjection, bilinear_projection
from models.layers.bilinear_paths import describe_auto_path
from models.native import bilinear_pair, build
from search.heap import retain_freed_memory

SINGLE = [(1, 1, 28), (1, 1, 32), (1, 1, 64)]
MANY = [(1, 32, 8), (16, 16, 8), (32, 32, 8), (1, 4, 28), (4, 4, 28)]


@dataclass(frozen=True)
class Case:
    c_in: int
    c_out: int
    grid: int
    batch: int

    @property
    def name(self) -> str:
        return f"{self.c_in}->{self.c_out} {self.grid}x{self.grid}"

    @property
    def flop_ratio(self) -> float:
        g = (self.grid, self.grid)
        dense = self.c_in * self.c_out * self.grid ** 4
        return dense / bilinear_macs(in_channels=self.c_in, out_channels=self.c_out,
                                     in_grid=g, out_grid=g)

    @property
    def target(self) -> float | None:
        if self.c_in == self.c_out == 1:
            return 0.6 if self.grid ** 2 >= 1024 else None
        return 0.5 if self.grid == 8 else None


def _step(fn: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor],
          x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        fn(x).backward(grad)  # forward + backward
        x.grad = None
        for p in params:
            p.grad = None

    return run


def _floor(case: Case) -> Callable[[], None]:
    """The six products of forward + backward as batched GEMMs of the same shapes (right
    order, V's concatenated per input channel, U's per output channel), outputs preallocated."""
    ci, co, g, n = case.c_in, case.c_out, case.grid, case.batch
    r = torch.randn
    x, vcat, ucat_t = r(ci, n * g, g), r(ci, g, co * g), r(co, g, ci * g)
    t, y, gy = r(co, ci * g, n * g), r(co, g, n * g), r(co, g, n * g)
    dt, dt_i = r(co, ci * g, n * g), r(ci, n * g, co * g)
    t_i, dx, dv, du = r(ci, n * g, co * g), r(ci, n * g, g), r(ci, g, co * g), r(co, ci * g, g)

    def run() -> None:
        torch.bmm(x, vcat, out=t_i)  # T = X_i V_i^cat
        torch.bmm(ucat_t, t, out=y)  # Y = U_o^cat^T T_o
        torch.bmm(ucat_t.transpose(1, 2), gy, out=dt)  # dT = U_o^cat G_o
        torch.bmm(t, gy.transpose(1, 2), out=du)  # dU = T_o G_o^T (sum over the batch)
        torch.bmm(dt_i, vcat.transpose(1, 2), out=dx)  # dX = dT_i V_i^cat^T
        torch.bmm(x.transpose(1, 2), dt_i, out=dv)  # dV = X_i^T dT_i (sum over the batch)

    return run


def _block(fn: Callable[[], None], steps: int) -> float:
    """Seconds per step over ``steps`` back-to-back steps."""
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def measure(case: Case, *, isas: list[str], blocks: int, block_ms: float) -> dict[str, float]:
    """Median over rounds of dense / column block time, per column."""
    torch.manual_seed(0)
    ci, co, g, n = case.c_in, case.c_out, case.grid, case.batch
    features_in, features_out = ci * g * g, co * g * g
    x = torch.randn(n, features_in, requires_grad=True)
    layer = BilinearProjection(ci, co, in_grid=(g, g), out_grid=(g, g), out_shape=(features_out,))
    params = list(layer.parameters())
    grad = torch.randn(n, features_out)
    right = bilinear_order(in_grid=(g, g), out_grid=(g, g)) == "right"
    dense = nn.Linear(features_in, features_out)
    steps: dict[str, Callable[[], None]] = {
        "dense": _step(dense, list(dense.parameters()), x, grad)}
    for isa in isas:
        def native(x: torch.Tensor, isa: str = isa) -> torch.Tensor:
            return bilinear_pair.forward(x, layer.U, layer.V, layer.bias, right=right,
                                         out_shape=(features_out,), isa=isa)
        steps[isa] = _step(native, params, x, grad)
    torch_path = "single" if ci == co == 1 else "batched"

    def plain(x: torch.Tensor) -> torch.Tensor:
        y = bilinear_projection(x.view(n, ci, g, g), layer.U, layer.V, layer.bias,
                                path=torch_path)
        return y.reshape(n, features_out)

    steps["torch"] = _step(plain, params, x, grad)
    steps["floor"] = _floor(case)
    per_block = {}
    for name, fn in steps.items():  # warm up, then size the blocks
        per_block[name] = max(1, round(block_ms / 1e3 / min(_block(fn, 1) for _ in range(3))))
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(blocks):
        for name, fn in steps.items():
            times[name].append(_block(fn, per_block[name]))
    result = {"dense_ms": statistics.median(times["dense"]) * 1e3}
    for name in steps:
        if name != "dense":
            result[name] = statistics.median(
                d / b for d, b in zip(times["dense"], times[name], strict=True))
    return result


def _verdict(case: Case, r: dict[str, float], paths: list[str]) -> str:
    """Per path of the layer (each kernel ISA, or the torch path where no kernel runs): met,
    or NOT met with what binds and the path's speed as a fraction of the floor's."""
    if case.target is None:
        return "-"
    floor = r["floor"] / case.flop_ratio
    verdicts = []
    for path in paths:
        fraction = r[path] / case.flop_ratio
        if fraction >= case.target:
            verdicts.append(f"{path} met")
            continue
        binds = "floor" if floor < case.target else "implementation"
        verdicts.append(f"{path} NOT met ({binds} binds: floor {floor:.2f}, {path} at "
                        f"{r[path] / r['floor']:.2f}x the floor's speed)")
    return "; ".join(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=["single", "many"],
                        default=["single", "many"])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256],
                        help="batches of the many-channel cases (one channel: batch 256)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--block-ms", type=float, default=40.0)
    parser.add_argument("--glibc-default", action="store_true",
                        help="leave malloc as it is (freed memory goes back to the kernel)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    memory = ("glibc default malloc" if args.glibc_default or not retain_freed_memory()
              else "freed memory retained")
    isas = [isa.name for isa in build.ISAS if bilinear_pair.library(isa.name) is not None]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward + backward, "
          f"float32, {memory}; {args.blocks} alternating blocks of ~{args.block_ms:g} ms per "
          f"column; CPU {build.cpu_flags()[0]!r}; a shared machine: compare ratios, not times")
    print(f"the layer (path='auto') takes: one channel {describe_auto_path()}; "
          f"many channels {describe_auto_path(channels=(2, 2))}")
    for isa in (i.name for i in build.ISAS if i.name not in isas):
        print(f"no {isa} column: {bilinear_pair.unavailable_reason(isa)}")
    columns = [*isas, "torch", "floor"]
    judged = isas or ["torch"]  # the paths the layer takes on a CPU with each ISA
    print("per column: speed-up vs dense (median of per-round ratios) and realised/FLOP; "
          f"verdict per path the layer takes: {', '.join(judged)}")
    print(f"{'case':>15} {'batch':>5} {'FLOP':>5} {'dense ms':>9} | "
          + " | ".join(f"{c:>6} x  r/F" for c in columns) + f" | {'target':>6} verdict")
    cases = []
    if "single" in args.cases:
        cases += [Case(*c, batch=256) for c in SINGLE]
    if "many" in args.cases:
        cases += [Case(*c, batch=b) for b in args.batches for c in MANY]
    for case in cases:
        r = measure(case, isas=isas, blocks=args.blocks, block_ms=args.block_ms)
        cells = " | ".join(f"{r[c]:>8.2f} {r[c] / case.flop_ratio:>5.2f}" for c in columns)
        target = f"{case.target:>6.2f}" if case.target is not None else f"{'-':>6}"
        print(f"{case.name:>15} {case.batch:>5} {case.flop_ratio:>5.1f} {r['dense_ms']:>9.2f} | "
              f"{cells} | {target} {_verdict(case, r, judged)}", flush=True)


if __name__ == "__main__":
    main()
