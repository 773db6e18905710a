"""Benchmark: search.training.train against a textbook PyTorch loop, measured in the same run.

Textbook baseline: DataLoader(TensorDataset(x, y), batch_size, shuffle=True), the same model (a
deep copy of the same initial weights), the same optimizer class and learning rate, the same
epochs and batch size, ``loss.item()`` per step for the running loss, then an evaluation of the
validation and test parts through DataLoaders. The trainer is timed for the whole ``train`` call
(moving the data to the device, training, final evaluation). One warm-up run of each goes first,
then ``--rounds`` alternating timed rounds (textbook, trainer, floor). The verdict uses the
median over rounds of each round's textbook / trainer time ratio; best times are shown too.

A third loop, the compute floor (``compute_floor``), runs only the model's own steps (stock
torch.optim fused Adam) on batches cut in advance; textbook / floor bounds what any data pipeline
could gain for that model.

Run (digits, then synthetic 60,000 x 28 x 28 at batch 64 and 128):
    .venv/bin/python tests/benchmarks/bench_trainer.py [--rounds 7]

Where the synthetic model's step goes (2026-11-24, 2 threads; scratch scripts, not kept): the
trainer's step is about 0.8 ms, of which the two 12.8M multiply-add GEMMs and the Adam pass take
about half and per-op framework cost (Python, dispatcher, autograd) most of the rest: the same
trainer on a 16-4-10 MLP still takes 0.27 ms a step on one thread. Tried and dropped: a C kernel
that sums the first layer's weight gradient in registers and applies Adam to each tile at once
(dW never written). Alone it ran 1.15-1.5x as fast as mm + fused Adam; inside the trainer it
moved whole runs by -11 % (256 x 256 weights, where its Python autograd node costs more than it
saves) to +15 % (784 x 256), medians of alternating A/B runs on this noisy machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from models import build_model
from models.spec import ArchSpec, LayerSpec
from search.datasets import Dataset, Splits, split_dataset
from search.datasets.builtin import load_digits_dataset
from search.heap import retain_freed_memory
from search.training import TrainConfig, train


def textbook_loop(model: nn.Module, splits: Splits, config: TrainConfig) -> float:
    """The loop most tutorials show; returns the validation accuracy."""
    train_set = TensorDataset(torch.from_numpy(splits.train.x), torch.from_numpy(splits.train.y))
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(config.epochs):
        model.train()
        running = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item()
    accuracies = []
    for part in (splits.val, splits.test):
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in DataLoader(TensorDataset(torch.from_numpy(part.x),
                                                   torch.from_numpy(part.y)), batch_size=1000):
                correct += int((model(xb).argmax(1) == yb).sum().item())
        accuracies.append(correct / len(part))
    return accuracies[0]


def compute_floor(model: nn.Module, splits: Splits, config: TrainConfig) -> None:
    """The same training steps with no data pipeline at all: every epoch's shuffled batches are
    cut once, up front, and the loop runs only forward, backward and torch.optim's fused Adam.
    Textbook time / floor time is the most that removing the data pipeline alone can gain; the
    trainer goes past it only by cheaper steps (search.training.optimizer)."""
    x, y = torch.from_numpy(splits.train.x), torch.from_numpy(splits.train.y)
    generator = torch.Generator().manual_seed(config.seed)
    epochs = []
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=generator)
        epochs.append(list(zip(x[order].split(config.batch_size),
                               y[order].split(config.batch_size), strict=True)))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    model.train()
    for batches in epochs:
        for xb, yb in batches:
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def synthetic(n: int = 60_000, *, seed: int = 0) -> Dataset:
    """n random 28 x 28 images labelled by a random linear teacher (learnable, not trivial)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 28, 28)).astype(np.float32)
    teacher = rng.normal(size=(784, 10)).astype(np.float32)
    y = (x.reshape(n, 784) @ teacher).argmax(axis=1).astype(np.int64)
    return Dataset(x=x, y=y, num_classes=10, name="synthetic-28x28")


def mlp_spec(input_shape: tuple[int, int, int], hidden: tuple[int, int]) -> ArchSpec:
    """One full hidden projection to 1 x h x w features, then the classifier (an MLP)."""
    return ArchSpec(input_shape=input_shape, num_classes=10, base_channels=1, hidden_hw=hidden,
                    layers=(LayerSpec(kind="full"),))


def compare(
    label: str, splits: Splits, *, spec: ArchSpec, config: TrainConfig, rounds: int
) -> float:
    samples = config.epochs * len(splits.train)
    torch.manual_seed(0)
    model = build_model(spec)
    n_params = sum(p.numel() for p in model.parameters())
    warm = TrainConfig.from_dict({**config.to_dict(), "epochs": 1})
    train(copy.deepcopy(model), spec, splits, warm, cpu_threads=None)
    textbook_loop(copy.deepcopy(model), splits, warm)

    times: dict[str, list[float]] = {"textbook": [], "trainer": [], "floor": []}
    for _ in range(rounds):  # alternate: the machine is shared and noisy
        start = time.perf_counter()
        baseline_acc = textbook_loop(copy.deepcopy(model), splits, config)
        times["textbook"].append(time.perf_counter() - start)
        start = time.perf_counter()
        result = train(copy.deepcopy(model), spec, splits, config, cpu_threads=None)
        times["trainer"].append(time.perf_counter() - start)
        start = time.perf_counter()
        compute_floor(copy.deepcopy(model), splits, config)
        times["floor"].append(time.perf_counter() - start)
    # The headline is the median over rounds of each round's own ratio: the three runs of a round
    # are seconds apart, so they share the machine's mood; a best-of-N would favour the shorter
    # run, which has more chances of a quiet window.
    ratio = statistics.median(b / t for b, t in zip(times["textbook"], times["trainer"],
                                                       strict=True))
    floor_ratio = statistics.median(b / f for b, f in zip(times["textbook"], times["floor"],
                                                             strict=True))
    best = {name: min(ts) for name, ts in times.items()}
    print(f"{label} ({rounds} alternating rounds): {n_params} params, "
          f"{len(splits.train)} train samples x {config.epochs} epochs, "
          f"batch {config.batch_size}, {config.optimizer} lr {config.lr}")
    print(f"  textbook DataLoader loop: {samples / best['textbook']:10.0f} samples/s at best "
          f"({best['textbook']:.2f} s, val acc {baseline_acc:.3f})")
    print(f"  search.training.train:     {samples / best['trainer']:10.0f} samples/s at best "
          f"({best['trainer']:.2f} s, val acc {result.val_accuracy:.3f})")
    print(f"  compute floor (no eval):  {samples / best['floor']:10.0f} samples/s at best "
          f"({best['floor']:.2f} s): the same steps on batches cut in advance")
    print(f"  trainer / textbook, median of per-round ratios: {ratio:.2f}x (target >= 2: "
          f"{'met' if ratio >= 2 else 'NOT met'}; rounds {min_max(times, 'textbook', 'trainer')}); "
          f"floor / textbook: {floor_ratio:.2f}x")
    return ratio


def min_max(times: dict[str, list[float]], slow: str, fast: str) -> str:
    ratios = [a / b for a, b in zip(times[slow], times[fast], strict=True)]
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-epochs", type=int, default=2)
    parser.add_argument("--synthetic-batch", type=int, nargs="+", default=[64, 128],
                        help="batch sizes for the synthetic set (64 is TrainConfig's default)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    retained = retain_freed_memory()  # as `paretonas search` and the workers do; all three loops
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'freed memory retained' if retained else 'glibc default malloc'}")
    digits = split_dataset(load_digits_dataset(), seed=0)
    compare("digits", digits, spec=mlp_spec((1, 8, 8), (8, 8)),
            config=TrainConfig(schedule="constant"), rounds=args.rounds)
    big = split_dataset(synthetic(), seed=0, val_fraction=0.05, test_fraction=0.05)
    for batch in args.synthetic_batch:
        compare("synthetic 28x28", big, spec=mlp_spec((1, 28, 28), (16, 16)), rounds=args.rounds,
                config=TrainConfig(epochs=args.synthetic_epochs, batch_size=batch,
                                   schedule="constant"))


if __name__ == "__main__":
    main()
