"""search.training.train end to end on digits: determinism, the callback, costs, SVD training."""

from __future__ import annotations

import math

import pytest
import torch

from models import build_model, count_macs, count_params
from models.spec import ArchSpec, LayerSpec
from search.datasets import Splits
from search.errors import SearchError
from search.training import EpochReport, TrainConfig, train

MLP = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=1, hidden_hw=(8, 8),
               layers=(LayerSpec(kind="full"),))
LOWRANK = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=1, hidden_hw=(8, 8),
                   layers=(LayerSpec(kind="lowrank", energy_threshold=0.05),))


def fresh(spec: ArchSpec, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(spec)


def test_default_config_learns_digits(splits: Splits) -> None:
    result = train(fresh(MLP), MLP, splits, TrainConfig())
    assert result.val_accuracy >= 0.9 and result.test_accuracy >= 0.9
    assert result.epochs_run == TrainConfig().epochs and not result.stopped
    assert result.params == count_params(MLP) == sum(p.numel() for p in result.model.parameters())
    assert result.macs == count_macs(MLP)
    assert result.spec == MLP


def test_same_seed_same_result_on_cpu(splits: Splits) -> None:
    config = TrainConfig(epochs=3)
    a = train(fresh(MLP), MLP, splits, config)
    b = train(fresh(MLP), MLP, splits, config)
    assert (a.val_accuracy, a.test_accuracy) == (b.val_accuracy, b.test_accuracy)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                              strict=True):
        assert torch.equal(pa, pb), name
    c = train(fresh(MLP), MLP, splits, TrainConfig(epochs=3, seed=1))
    assert any(not torch.equal(pa, pc) for pa, pc in
               zip(a.model.state_dict().values(), c.model.state_dict().values(), strict=True))


def test_callback_sees_each_epoch_and_can_stop(splits: Splits) -> None:
    reports: list[EpochReport] = []

    def on_epoch(report: EpochReport) -> bool:
        reports.append(report)
        return report.epoch < 3

    result = train(fresh(MLP), MLP, splits, TrainConfig(epochs=6), on_epoch=on_epoch)
    assert result.stopped and result.epochs_run == 3
    assert [(r.epoch, r.phase, r.epochs_total) for r in reports] == [
        (1, "train", 6), (2, "train", 6), (3, "train", 6)]
    assert all(0.0 <= r.val_accuracy <= 1.0 and r.train_loss > 0 for r in reports)
    assert reports[0].train_loss > reports[2].train_loss


def test_lowrank_model_is_regularised_pruned_and_finetuned(splits: Splits) -> None:
    reports: list[EpochReport] = []
    model = fresh(LOWRANK)
    config = TrainConfig(epochs=3, finetune_epochs=2, sparsity="l1", sparsity_coef=1e-2)
    result = train(model, LOWRANK, splits, config,
                   on_epoch=lambda r: reports.append(r) is None)
    assert [(r.epoch, r.phase) for r in reports] == [
        (1, "train"), (2, "train"), (3, "train"), (4, "finetune"), (5, "finetune")]
    # Fine-tuning restarts the cosine at lr / 10; the report gives the lr of the epoch's last step
    # (step 19 of 2 x 20: 1257 training samples in batches of 64).
    finetune_peak = config.lr * 0.1
    assert reports[3].lr == pytest.approx(0.5 * finetune_peak * (1 + math.cos(math.pi * 19 / 40)))
    assert result.epochs_run == 5 and not result.stopped
    kept = result.spec.layers[0].rank
    assert kept is not None and 1 <= kept <= 64
    assert result.params == count_params(result.spec)
    assert result.params == sum(p.numel() for p in result.model.parameters())
    assert result.params < count_params(LOWRANK)  # pruning dropped singular vectors
    build_model(result.spec).load_state_dict(result.model.state_dict())


def test_the_hoyer_term_sparsifies_the_spectrum_so_pruning_keeps_fewer_ranks(
    splits: Splits,
) -> None:
    """Same weights, same data; only the sparsity weight differs. (With a flat initial spectrum
    and s at its plain Adam lr the term was inert: every weight kept the same rank.)"""
    spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=16,
                    layers=(LayerSpec(kind="lowrank", multiplier=0.25, energy_threshold=0.05),))
    kept = {}
    for coef in (0.0, 3.0):
        config = TrainConfig(epochs=8, finetune_epochs=0, sparsity="hoyer", sparsity_coef=coef)
        result = train(fresh(spec), spec, splits, config)
        kept[coef] = result.spec.layers[0].rank
        assert result.val_accuracy > 0.9
    assert kept[0.0] is not None and kept[3.0] is not None
    assert kept[3.0] <= kept[0.0] - 8, kept  # measured: 56 -> 45


def test_stopping_during_training_prunes_without_finetuning(splits: Splits) -> None:
    result = train(fresh(LOWRANK), LOWRANK, splits, TrainConfig(epochs=4, finetune_epochs=2),
                   on_epoch=lambda r: False)
    assert result.stopped and result.epochs_run == 1
    assert result.params == count_params(result.spec)


def test_a_model_not_built_from_the_spec_is_refused(splits: Splits) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    real = 650
    with pytest.raises(SearchError) as info:
        train(model, MLP, splits, TrainConfig(epochs=1))
    assert str(info.value) == (
        f"params: count_params(spec) = {count_params(MLP)} but the trained model holds {real} "
        "parameters; the model was not built from this spec (build it with "
        "models.build_model(spec))"
    )


def test_cpu_threads_are_capped_during_training_and_restored(splits: Splits) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []
        train(fresh(MLP), MLP, splits, TrainConfig(epochs=2),
              on_epoch=lambda r: seen.append(torch.get_num_threads()) is None)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        seen.clear()
        train(fresh(MLP), MLP, splits, TrainConfig(epochs=1), cpu_threads=None,
              on_epoch=lambda r: seen.append(torch.get_num_threads()) is None)
        assert seen == [2]
    finally:
        torch.set_num_threads(previous)
