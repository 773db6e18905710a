"""search.training.optimizer: torch.optim's update, called lean, gives bit-identical parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from models import build_model
from models.spec import ArchSpec, LayerSpec
from search.datasets import ArrayPair, Splits
from search.training.config import TrainConfig
from search.training.loop import DeviceSplits, run_epoch
from search.training.optimizer import BETAS, EPS, SGD_MOMENTUM, PhaseOptimizer, make_optimizer

CPU = torch.device("cpu")
LOWRANK_MLP = ArchSpec(input_shape=(1, 2, 3), num_classes=2, base_channels=4,
                       layers=(LayerSpec(kind="lowrank"), LayerSpec(kind="full")))


def _reference(model: nn.Module, groups: list[dict[str, object]], *, kind: str,
               weight_decay: float) -> torch.optim.Optimizer:
    """torch.optim's fused optimizer over the same groups (by position) of ``model``."""
    params = dict(model.named_parameters())
    ref_groups = [{"params": [params[n] for n in g["names"]],  # type: ignore[attr-defined]
                   "lr": g["lr"], "lr_scale": g["lr_scale"]} for g in groups]
    if kind == "sgd":
        return torch.optim.SGD(ref_groups, lr=0.1, momentum=SGD_MOMENTUM, nesterov=True,
                               weight_decay=weight_decay, fused=True)
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return cls(ref_groups, lr=0.1, betas=BETAS, eps=EPS, weight_decay=weight_decay, fused=True)


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_steps_are_bit_identical_to_torch_optim(kind: str) -> None:
    torch.manual_seed(0)
    ours_model = build_model(LOWRANK_MLP)
    ref_model = copy.deepcopy(ours_model)
    config = TrainConfig(optimizer=kind, weight_decay=0.01)
    ours = make_optimizer(ours_model, config=config, lr=0.05, device=CPU)
    assert isinstance(ours, PhaseOptimizer) and len(ours.param_groups) == 2  # s apart
    names = {id(p): n for n, p in ours_model.named_parameters()}
    groups = [{"names": [names[id(p)] for p in g["params"]], "lr": g["lr"],
               "lr_scale": g["lr_scale"]} for g in ours.param_groups]
    reference = _reference(ref_model, groups, kind=kind, weight_decay=0.01)
    x, y = torch.randn(16, 1, 2, 3), torch.randint(0, 2, (16,))
    for step in range(5):
        for model, optimizer in ((ours_model, ours), (ref_model, reference)):
            for group in optimizer.param_groups:  # as run_epoch does: lr changes per step
                group["lr"] = (0.05 - 0.01 * step) * group.get("lr_scale", 1.0)
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for (name, p), q in zip(ours_model.named_parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(p, q), name
        assert p.grad is not None
    ours.zero_grad()
    assert all(p.grad is None for p in ours_model.parameters())


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_a_parameter_without_gradient_is_left_alone_as_torch_optim_does(kind: str) -> None:
    torch.manual_seed(0)
    model = nn.ModuleDict({"used": nn.Linear(3, 2), "unused": nn.Linear(3, 2)})
    ref_model = copy.deepcopy(model)
    ours = make_optimizer(model, config=TrainConfig(optimizer=kind), lr=0.1, device=CPU)
    reference = _reference(ref_model, [{"names": [n for n, _ in model.named_parameters()],
                                        "lr": 0.1, "lr_scale": 1.0}], kind=kind,
                           weight_decay=0.0)
    unused_before = [p.detach().clone() for p in model["unused"].parameters()]
    x = torch.randn(4, 3)
    for _ in range(3):
        for m, optimizer in ((model, ours), (ref_model, reference)):
            optimizer.zero_grad(set_to_none=True)
            m["used"](x).square().sum().backward()
            optimizer.step()
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, before in zip(model["unused"].parameters(), unused_before, strict=True):
        assert torch.equal(p, before)


def tiny_splits(n: int = 32) -> Splits:
    rng = np.random.default_rng(0)

    def pair(count: int) -> ArrayPair:
        x = rng.normal(size=(count, 1, 2, 3)).astype(np.float32)
        return ArrayPair(x=x, y=(x[:, 0, 0, 0] > 0).astype(np.int64))

    return Splits(train=pair(n), val=pair(8), test=pair(8), num_classes=2, name="tiny",
                  mean=np.zeros(1, np.float32), std=np.ones(1, np.float32))


def test_singular_values_learn_at_a_rate_scaled_by_their_size() -> None:
    """Each SVD layer's s has a group of its own, lr x rms(s); run_epoch keeps the scale."""
    torch.manual_seed(0)
    spec = ArchSpec(input_shape=(1, 2, 3), num_classes=2, base_channels=4,
                    layers=(LayerSpec(kind="lowrank"), LayerSpec(kind="full")))
    model = build_model(spec)
    optimizer = make_optimizer(model, config=TrainConfig(), lr=1e-2, device=CPU)
    s = model.layers[0].s
    rms = float(s.detach().square().mean().sqrt())
    assert rms > 1.0
    rest, spectrum = optimizer.param_groups
    assert spectrum["params"] == [s] and spectrum["lr_scale"] == pytest.approx(rms)
    assert len(rest["params"]) == sum(1 for _ in model.parameters()) - 1
    assert rest["lr_scale"] == 1.0
    run_epoch(model, data=DeviceSplits.from_splits(tiny_splits(), device=CPU,
                                                   channels_last=False),
              optimizer=optimizer, generator=torch.Generator().manual_seed(0), batch_size=16,
              lr_of_step=lambda step: 0.5, first_step=0, extra_loss=lambda m: None)
    assert (rest["lr"], spectrum["lr"]) == (0.5, pytest.approx(0.5 * rms))


