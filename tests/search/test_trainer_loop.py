"""The trainer's inner loops on plain nn.Sequential models (no models/ package needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from search.datasets import ArrayPair, Splits
from search.training.config import TrainConfig
from search.training.loop import DeviceSplits, evaluate, lr_at, run_epoch
from search.training.optimizer import make_optimizer

CPU = torch.device("cpu")


def tiny_splits(n_train: int = 50, *, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)

    def pair(n: int) -> ArrayPair:
        x = rng.normal(size=(n, 1, 2, 3)).astype(np.float32)
        return ArrayPair(x=x, y=(x[:, 0, 0, 0] > 0).astype(np.int64))

    return Splits(train=pair(n_train), val=pair(20), test=pair(20), num_classes=2, name="tiny",
                  mean=np.zeros(1, np.float32), std=np.ones(1, np.float32))


class Recorder(nn.Module):
    """Records the first pixel of every input it sees (an id when inputs are ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 2)
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x[:, 0, 0, 0].detach().clone())
        return self.linear(x.flatten(1))  # (b, 6) -> (b, 2)


def epoch(model: nn.Module, data: DeviceSplits, *, seed: int, batch_size: int = 16) -> float:
    optimizer = make_optimizer(model, config=TrainConfig(), lr=1e-2, device=CPU)
    generator = torch.Generator().manual_seed(seed)
    return run_epoch(model, data=data, optimizer=optimizer, generator=generator,
                     batch_size=batch_size, lr_of_step=lambda step: 1e-2, first_step=0,
                     extra_loss=lambda m: None)


def test_an_epoch_visits_every_sample_once_in_seeded_batches() -> None:
    splits = tiny_splits(50)
    splits.train.x[:, 0, 0, 0] = np.arange(50)  # sample ids in the first pixel
    data = DeviceSplits.from_splits(splits, device=CPU, channels_last=False)
    first, second = Recorder(), Recorder()
    epoch(first, data, seed=4)
    epoch(second, data, seed=4)
    assert [len(b) for b in first.seen] == [16, 16, 16, 2]
    order = torch.cat(first.seen)
    assert sorted(order.tolist()) == list(range(50))
    assert order.tolist() != list(range(50))  # shuffled
    assert torch.equal(order, torch.cat(second.seen))  # same seed, same order
    third = Recorder()
    epoch(third, data, seed=5)
    assert not torch.equal(order, torch.cat(third.seen))


def test_returned_loss_is_the_sample_weighted_mean_of_batch_losses() -> None:
    data = DeviceSplits.from_splits(tiny_splits(50), device=CPU, channels_last=False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    # lr 0: weights stay put, so the epoch loss equals the full-set loss.
    optimizer = make_optimizer(model, config=TrainConfig(), lr=1e-2, device=CPU)
    loss = run_epoch(model, data=data, optimizer=optimizer, generator=torch.Generator(),
                     batch_size=16, lr_of_step=lambda step: 0.0, first_step=0,
                     extra_loss=lambda m: None)
    with torch.no_grad():
        reference = nn.functional.cross_entropy(model(data.train_x), data.train_y).item()
    assert loss == pytest.approx(reference, rel=1e-5)


def test_extra_loss_reaches_the_gradients() -> None:
    data = DeviceSplits.from_splits(tiny_splits(16), device=CPU, channels_last=False)
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    w0 = plain[1].weight.detach().clone()
    penalised = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    penalised.load_state_dict(plain.state_dict())
    for model, extra in ((plain, None), (penalised, 100.0)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def extra_loss(m: nn.Module, coef: float | None = extra) -> Tensor | None:
            return None if coef is None else coef * m[1].weight.pow(2).sum()

        run_epoch(model, data=data, optimizer=optimizer, generator=torch.Generator(),
                  batch_size=16, lr_of_step=lambda step: 0.1, first_step=0, extra_loss=extra_loss)
    # One full-batch SGD step: the penalty adds -lr * 2 * coef * w0 to the weights.
    expected = plain[1].weight.detach() - 0.1 * 2 * 100.0 * w0
    torch.testing.assert_close(penalised[1].weight.detach(), expected)
    torch.testing.assert_close(penalised[1].bias.detach(), plain[1].bias.detach())


def test_evaluate_matches_a_reference_argmax_in_any_batch_size() -> None:
    splits = tiny_splits()
    x, y = torch.from_numpy(splits.val.x), torch.from_numpy(splits.val.y)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    with torch.no_grad():
        reference = (model(x).argmax(1) == y).float().mean().item()
    assert evaluate(model, x, y, batch=7) == pytest.approx(reference)
    assert evaluate(model, x, y) == pytest.approx(reference)
    assert not model.training


def test_cosine_and_constant_schedules() -> None:
    assert lr_at(step=0, total_steps=10, peak=0.2, schedule="cosine") == 0.2
    assert lr_at(step=5, total_steps=10, peak=0.2, schedule="cosine") == pytest.approx(0.1)
    assert lr_at(step=9, total_steps=10, peak=0.2, schedule="cosine") == pytest.approx(
        0.1 * (1 + math.cos(math.pi * 0.9)))
    assert lr_at(step=9, total_steps=10, peak=0.2, schedule="constant") == 0.2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_epoch_uses_channels_last_and_bf16_autocast() -> None:
    cuda = torch.device("cuda")
    splits = tiny_splits(64)
    data = DeviceSplits.from_splits(splits, device=cuda, channels_last=True)
    assert data.train_x.is_cuda and data.train_x.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(24, 2)).to(cuda, memory_format=torch.channels_last)
    dtypes: list[torch.dtype] = []
    model[3].register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    optimizer = make_optimizer(model, config=TrainConfig(), lr=1e-2, device=cuda)
    loss = run_epoch(model, data=data, optimizer=optimizer,
                     generator=torch.Generator(device=cuda).manual_seed(0), batch_size=16,
                     lr_of_step=lambda step: 1e-2, first_step=0, extra_loss=lambda m: None)
    assert math.isfinite(loss) and len(dtypes) == 4 and set(dtypes) == {torch.bfloat16}
    assert model[3].weight.dtype == torch.float32
    x, y = data.val_x, data.val_y
    with torch.no_grad():
        reference = (model(x.float()).argmax(1) == y).float().mean().item()
    assert evaluate(model, x, y) == pytest.approx(reference, abs=0.1)
