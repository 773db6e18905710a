"""Train one architecture on in-memory splits; SVD-trained layers are regularised, pruned, tuned.

``train`` knows nothing of Optuna: progress, cancellation and early stopping all go through the
``on_epoch`` callback (return False to stop). Phases:

1. ``train``: ``config.epochs`` epochs of cross-entropy, plus, when the model has low-rank layers,
   ``ortho_coef`` x orthogonality loss and ``sparsity_coef`` x singular-value sparsity (l1 | hoyer).
2. Low-rank models only: every low-rank layer is pruned to its energy threshold
   (``models.lowrank.prune_model``), then ``finetune``: ``config.finetune_epochs`` epochs at lr / 10
   without the sparsity term (skipped when the callback stopped training).

The reported parameter count is that of the pruned spec, checked against the pruned model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from models import count_macs, count_params
from models.lowrank import has_lowrank, orthogonality_loss, prune_model, sparsity_loss
from models.spec import ArchSpec
from search.datasets import Splits
from search.errors import SearchError
from search.training.config import TrainConfig
from search.training.loop import DeviceSplits, evaluate, lr_at, run_epoch, uses_conv
from search.training.optimizer import make_optimizer

__all__ = ["EpochReport", "TrainConfig", "TrainResult", "train"]

Phase = Literal["train", "finetune"]
FINETUNE_LR_FACTOR = 0.1


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch. ``epoch`` counts from 1 across both phases; ``epochs_total`` is the
    number planned (training plus fine-tuning)."""

    epoch: int
    phase: Phase
    train_loss: float
    val_accuracy: float
    lr: float
    epochs_total: int
    seconds: float


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A trained (and, for low-rank models, pruned) model with its accuracies and exact costs."""

    val_accuracy: float
    test_accuracy: float
    params: int
    macs: int
    spec: ArchSpec
    train_seconds: float
    epochs_run: int
    stopped: bool
    model: nn.Module


OnEpoch = Callable[[EpochReport], bool]


@dataclass
class _Run:
    """Mutable state shared by the phases of one ``train`` call."""

    model: nn.Module
    data: DeviceSplits
    config: TrainConfig
    device: torch.device
    generator: torch.Generator
    on_epoch: OnEpoch | None
    epochs_total: int
    started: float
    epochs_run: int = 0
    stopped: bool = False

    def phase(
        self,
        *,
        name: Phase,
        epochs: int,
        lr: float,
        extra_loss: Callable[[nn.Module], Tensor | None],
    ) -> None:
        """Run ``epochs`` epochs with a fresh optimizer; stop early when the callback says so."""
        optimizer = make_optimizer(self.model, config=self.config, lr=lr, device=self.device)
        steps_per_epoch = -(-self.data.train_x.shape[0] // self.config.batch_size)
        total_steps = epochs * steps_per_epoch

        def lr_of_step(step: int) -> float:
            return lr_at(step=step, total_steps=total_steps, peak=lr, schedule=self.config.schedule)

        for epoch in range(epochs):
            loss = run_epoch(
                self.model,
                data=self.data,
                optimizer=optimizer,
                generator=self.generator,
                batch_size=self.config.batch_size,
                lr_of_step=lr_of_step,
                first_step=epoch * steps_per_epoch,
                extra_loss=extra_loss,
            )
            self.epochs_run += 1
            if self.on_epoch is None:
                continue
            report = EpochReport(
                epoch=self.epochs_run,
                phase=name,
                train_loss=loss,
                val_accuracy=evaluate(self.model, self.data.val_x, self.data.val_y),
                lr=lr_of_step((epoch + 1) * steps_per_epoch - 1),
                epochs_total=self.epochs_total,
                seconds=time.perf_counter() - self.started,
            )
            if self.on_epoch(report) is False:
                self.stopped = True
                return


def _regulariser(
    *, ortho_coef: float, sparsity: str | None, sparsity_coef: float
) -> Callable[[nn.Module], Tensor | None]:
    """The SVD-training terms: ortho_coef * orthogonality (+ sparsity_coef * sparsity)."""

    def extra(model: nn.Module) -> Tensor | None:
        total: Tensor | None = None
        if ortho_coef > 0:
            total = ortho_coef * orthogonality_loss(model)
        if sparsity is not None and sparsity_coef > 0:
            term = sparsity_coef * sparsity_loss(model, sparsity)
            total = term if total is None else total + term
        return total

    return extra


def _no_extra(model: nn.Module) -> Tensor | None:
    return None


@contextlib.contextmanager
def _cpu_threads(device: torch.device, threads: int | None) -> Iterator[None]:
    """Cap PyTorch's intra-op threads while training on CPU, then restore the previous setting."""
    previous = torch.get_num_threads()
    if device.type != "cpu" or threads is None or threads >= previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train(
    model: nn.Module,
    spec: ArchSpec,
    splits: Splits,
    config: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    on_epoch: OnEpoch | None = None,
    cpu_threads: int | None = 1,
) -> TrainResult:
    """Train ``model`` (built from ``spec``) on ``splits``; see the module doc for the phases.

    Deterministic on CPU: the same initial weights and ``config.seed`` give the same result.
    ``cpu_threads`` caps intra-op threads on CPU (None: leave PyTorch's setting). One thread is
    the default because search trials are small and run beside other work: on a busy 2-core
    machine, OpenMP barriers across 2 threads made a digits trial 4-25x slower than 1 thread.
    """
    with _cpu_threads(torch.device(device), cpu_threads):
        return _train(model, spec, splits, config, device=torch.device(device), on_epoch=on_epoch)


def _train(
    model: nn.Module,
    spec: ArchSpec,
    splits: Splits,
    config: TrainConfig,
    *,
    device: torch.device,
    on_epoch: OnEpoch | None,
) -> TrainResult:
    started = time.perf_counter()
    dev = device
    channels_last = dev.type == "cuda" and uses_conv(model)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    data = DeviceSplits.from_splits(splits, device=dev, channels_last=channels_last)
    generator = torch.Generator(device=dev)
    generator.manual_seed(config.seed)
    lowrank = has_lowrank(model)
    run = _Run(
        model=model, data=data, config=config, device=dev, generator=generator, on_epoch=on_epoch,
        epochs_total=config.epochs + (config.finetune_epochs if lowrank else 0), started=started,
    )
    run.phase(
        name="train", epochs=config.epochs, lr=config.lr,
        extra_loss=_regulariser(ortho_coef=config.ortho_coef, sparsity=config.sparsity,
                                sparsity_coef=config.sparsity_coef) if lowrank else _no_extra,
    )
    if lowrank:
        spec = prune_model(model, spec)
        model.to(dev)
        if channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if not run.stopped and config.finetune_epochs > 0:
            run.phase(
                name="finetune", epochs=config.finetune_epochs,
                lr=config.lr * FINETUNE_LR_FACTOR,
                extra_loss=_regulariser(ortho_coef=config.ortho_coef, sparsity=None,
                                        sparsity_coef=0.0),
            )
    params = count_params(spec)
    real = sum(p.numel() for p in model.parameters())
    if params != real:
        raise SearchError(
            f"params: count_params(spec) = {params} but the trained model holds {real} "
            "parameters; the model was not built from this spec (build it with "
            "models.build_model(spec))"
        )
    return TrainResult(
        val_accuracy=evaluate(model, data.val_x, data.val_y),
        test_accuracy=evaluate(model, data.test_x, data.test_y),
        params=params,
        macs=count_macs(spec),
        spec=spec,
        train_seconds=time.perf_counter() - started,
        epochs_run=run.epochs_run,
        stopped=run.stopped,
        model=model,
    )
