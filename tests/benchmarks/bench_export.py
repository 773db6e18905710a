"""Benchmark (not a CI test): what the front of a 40-trial digits search costs to deploy.

Runs the default space (TPE, seed 0, the default training budget) for ``--trials`` trials, keeps
every front member's safetensors bytes as the service keeps them, trains the all-full baseline
(every layer full at multiplier 1, the default depth) with the same budget and split, and prints
for each front member and the baseline: parameters, bytes on disk as safetensors and as ONNX,
and CPU inference latency for one sample and for a batch of 256, in PyTorch (the layers' own
paths: the C bilinear kernel where it builds) and in onnxruntime, each with one thread; then each
member's ratios against the baseline. Latency is the median of ``--repeats`` timed calls after
warm-up. It also checks that every ONNX file predicts the raw test split with the member's
reported test accuracy.

    PYTHONPATH=. python tests/benchmarks/bench_export.py [--trials 40] [--seed 0] [--repeats 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from models.export import onnx_values, to_onnx
from models.serialize import from_safetensors
from models.spec import ArchSpec, LayerSpec
from search import engine
from search.config import SearchConfig, parse_config
from search.datasets import Splits, load_dataset, split_dataset
from search.datasets.split import split_indices
from search.heap import retain_freed_memory
from search.records import StudyRef, TrialOutcome, TrialTicket
from search.report import describe


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _search(config: SearchConfig, splits: Splits) -> dict[int, TrialOutcome]:
    """Run the search; the outcomes of the final front members, by number."""
    ref = StudyRef(storage_url="memory://", study_name="bench-export")
    engine.create_study(ref=ref, config=config)
    outcomes: dict[int, TrialOutcome] = {}
    for _ in range(config.n_trials):
        ticket = engine.ask(ref=ref, config=config)
        outcome = engine.run_ticket(ticket=ticket, config=config, splits=splits)
        engine.tell(ref=ref, outcome=outcome)
        outcomes[outcome.number] = outcome
    return {m.number: outcomes[m.number] for m in engine.front(ref=ref, config=config)}


def _baseline(config: SearchConfig, splits: Splits) -> TrialOutcome:
    spec = ArchSpec(input_shape=splits.input_shape, num_classes=splits.num_classes,
                    base_channels=config.space.base_channels,
                    layers=tuple(LayerSpec(kind="full") for _ in range(max(config.space.depths))))
    ticket = TrialTicket(number=-1, params={}, spec_json=spec.to_json())
    return engine.run_ticket(ticket=ticket, config=config, splits=splits)


def _measure(outcome: TrialOutcome, x_test: np.ndarray, y_test: np.ndarray,
             repeats: int) -> dict[str, float]:
    import onnxruntime as ort

    assert outcome.weights is not None
    model, _ = from_safetensors(outcome.weights)
    onnx = to_onnx(model)
    assert onnx_values(onnx).parameters == outcome.params
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"x": x_test})
    accuracy = float((np.asarray(logits).argmax(axis=1) == y_test).sum()) / len(y_test)
    assert accuracy == outcome.test_accuracy, (accuracy, outcome.test_accuracy)
    row: dict[str, float] = {"params": outcome.params, "st_bytes": len(outcome.weights),
                             "onnx_bytes": len(onnx), "test": outcome.test_accuracy}
    for batch in (1, 256):
        xb = np.ascontiguousarray(np.resize(x_test, (batch, *x_test.shape[1:])))
        xt = torch.from_numpy(xb)
        with torch.inference_mode():
            row[f"torch_{batch}"] = _median_seconds(lambda t=xt: model(t), repeats)
        row[f"ort_{batch}"] = _median_seconds(lambda a=xb: session.run(None, {"x": a}), repeats)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    retain_freed_memory()  # as `paretonas search` does
    torch.set_num_threads(1)

    ds = load_dataset("digits")
    splits = split_dataset(ds, seed=args.seed)
    _, _, test = split_indices(ds.y, seed=args.seed, val_fraction=0.15, test_fraction=0.15)
    x_test, y_test = ds.x[test], ds.y[test]  # raw pixels 0..16: the models normalise them
    config = parse_config({"n_trials": args.trials, "seed": args.seed}).with_data(splits)
    started = time.perf_counter()
    front = _search(config, splits)
    search_s = time.perf_counter() - started
    baseline = _baseline(config, splits)

    rows = [("all-full", baseline, _measure(baseline, x_test, y_test, args.repeats))]
    rows += [(f"trial {n}", o, _measure(o, x_test, y_test, args.repeats))
             for n, o in sorted(front.items(), key=lambda item: item[1].params)]
    print(f"digits, default space, seed {args.seed}: {args.trials} trials in {search_s:.0f} s, "
          f"front {len(front)}; CPU, 1 thread, median of {args.repeats} calls; "
          f"{os.cpu_count()} cores shared with other work (expect 20-50 % spread)")
    print("| model | test acc | params | safetensors B | ONNX B | torch 1 (µs) | ORT 1 (µs) | "
          "torch 256 (µs) | ORT 256 (µs) | params / full | ORT 256 / full | layers |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base = rows[0][2]
    for name, outcome, row in rows:
        print(f"| {name} | {row['test']:.4f} | {int(row['params']):,} | {int(row['st_bytes']):,} | "
              f"{int(row['onnx_bytes']):,} | {row['torch_1'] * 1e6:.0f} | "
              f"{row['ort_1'] * 1e6:.0f} | {row['torch_256'] * 1e6:.0f} | "
              f"{row['ort_256'] * 1e6:.0f} | {row['params'] / base['params']:.3f} | "
              f"{row['ort_256'] / base['ort_256']:.2f} | {describe(outcome.spec_json)} |")


if __name__ == "__main__":
    main()
