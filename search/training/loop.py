"""The inner loops: whole splits as device tensors, index-tensor batches, large-batch evaluation.

No DataLoader and no per-sample Python: each epoch draws one ``torch.randperm`` on the training
device and slices it into batches; the loss is summed on the device and read once per epoch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from search.datasets import ArrayPair, Splits

__all__ = [
    "EVAL_BATCH",
    "DeviceSplits",
    "StepOptimizer",
    "evaluate",
    "run_epoch",
    "uses_conv",
]

EVAL_BATCH = 2048

ExtraLoss = Callable[[nn.Module], Tensor | None]


class StepOptimizer(Protocol):
    """What ``run_epoch`` needs of an optimizer (search.training.optimizer or torch.optim)."""

    param_groups: list[dict[str, Any]]

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> Any: ...


def uses_conv(model: nn.Module) -> bool:
    """True when the model holds a 2-D convolution (then channels-last pays off on CUDA)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass(frozen=True)
class DeviceSplits:
    """The three parts of a split as tensors on the training device: x (n, C, H, W), y (n,)."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor

    @classmethod
    def from_splits(
        cls, splits: Splits, *, device: torch.device, channels_last: bool
    ) -> DeviceSplits:
        fmt = torch.channels_last if channels_last else torch.contiguous_format

        def move(part: ArrayPair) -> tuple[Tensor, Tensor]:
            x = torch.from_numpy(part.x).to(device).contiguous(memory_format=fmt)
            return x, torch.from_numpy(part.y).to(device)

        (train_x, train_y), (val_x, val_y), (test_x, test_y) = map(
            move, (splits.train, splits.val, splits.test)
        )
        return cls(train_x, train_y, val_x, val_y, test_x, test_y)


def lr_at(*, step: int, total_steps: int, peak: float, schedule: str) -> float:
    """Learning rate of ``step`` (0-based) of ``total_steps``: cosine to 0, or constant."""
    if schedule == "constant":
        return peak
    return 0.5 * peak * (1.0 + math.cos(math.pi * step / total_steps))


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_epoch(
    model: nn.Module,
    *,
    data: DeviceSplits,
    optimizer: StepOptimizer,
    generator: torch.Generator,
    batch_size: int,
    lr_of_step: Callable[[int], float],
    first_step: int,
    extra_loss: ExtraLoss,
) -> float:
    """One shuffled pass over the training part; returns the mean training loss (one sync)."""
    model.train()
    x_all, y_all = data.train_x, data.train_y
    n = x_all.shape[0]
    device = x_all.device
    order = torch.randperm(n, generator=generator, device=device)  # (n,)
    total = torch.zeros((), device=device)
    step = first_step
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]  # (b,)
        lr = lr_of_step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # see optimizer.py
        with _autocast(device):
            logits = model(x_all.index_select(0, idx))  # (b, num_classes)
            loss = nn.functional.cross_entropy(logits, y_all.index_select(0, idx))
        extra = extra_loss(model)
        objective = loss if extra is None else loss + extra
        optimizer.zero_grad(set_to_none=True)
        objective.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        total += loss.detach().float() * idx.shape[0]
        step += 1
    return float(total.item()) / n


def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, batch: int = EVAL_BATCH) -> float:
    """Top-1 accuracy of ``model`` on x (n, C, H, W), y (n,), in large inference-mode batches."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.inference_mode(), _autocast(x.device):
        for start in range(0, x.shape[0], batch):
            logits = model(x[start : start + batch])  # (b, num_classes)
            correct += (logits.argmax(dim=1) == y[start : start + batch]).sum()
    return float(correct.item()) / max(1, x.shape[0])
