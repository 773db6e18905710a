"""The inner loops: whole splits as device tensors, index-tensor batches, large-batch evaluation.

No DataLoader and no per-sample Python: each epoch draws one ``torch.randperm`` on the training
device and slices it into batches; the loss is summed on the device and read once per epoch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from models.lowrank import singular_values
from search.datasets import ArrayPair, Splits
from search.training.config import TrainConfig

__all__ = [
    "EVAL_BATCH",
    "DeviceSplits",
    "evaluate",
    "make_optimizer",
    "run_epoch",
    "uses_conv",
]

EVAL_BATCH = 2048

ExtraLoss = Callable[[nn.Module], Tensor | None]


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


def make_optimizer(
    model: nn.Module, *, config: TrainConfig, lr: float, device: torch.device
) -> torch.optim.Optimizer:
    """The configured optimizer over the model's trainable parameters; fused kernels where
    PyTorch has them for the device.

    The singular values ``s`` of each SVD-trained layer get a group of their own whose learning
    rate is scaled by their root mean square (``group["lr_scale"]``, applied by ``run_epoch``):
    Adam moves a parameter by about lr per step whatever its size, and s_j ~ 5 at a He scale, so
    at the plain lr they could move by well under one over a search trial's few hundred steps and
    the sparsity term could not drive any of them towards 0. Scaled, s changes at a relative rate
    like that of U and V (never below the plain lr: the scale is at least 1).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    spectra = {id(s): s for s in singular_values(model) if s.requires_grad}
    groups: list[dict[str, Any]] = [
        {"params": [p for p in trainable if id(p) not in spectra], "lr_scale": 1.0}
    ]
    for s in spectra.values():
        rms = float(s.detach().square().mean().sqrt())
        groups.append({"params": [s], "lr_scale": max(rms, 1.0)})
    groups = [g for g in groups if g["params"]]
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    fused = device.type in ("cpu", "cuda")
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True,
                               weight_decay=config.weight_decay, fused=fused)
    optimizer_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_cls(groups, lr=lr, weight_decay=config.weight_decay, fused=fused)


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
    optimizer: torch.optim.Optimizer,
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
        for group in optimizer.param_groups:
            group["lr"] = lr_of_step(step) * group.get("lr_scale", 1.0)  # see make_optimizer
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
