"""Bodies of a job's results beyond the trial pages: one trial in full, the plot's points.

``TrialDetailPublic`` is ``GET /jobs/{id}/trials/{n}``: the trial, its layers (shapes, ranks and
exact costs from ``models.plan`` / ``models.costs``) and its learning curve. ``TrialPointsPublic``
is ``GET /jobs/{id}/points``: every recorded trial's plot coordinates, column by column.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from service.api.schemas import TrialPublic

__all__ = ["EpochPublic", "LayerPublic", "TrialDetailPublic", "TrialPointsPublic"]

HistoryMode = Literal["all", "changes", "none"]


class LayerPublic(BaseModel):
    """One layer of a trial's (pruned) architecture, in the order the model runs them."""

    path: str = Field(description='Spec path: "convs[0]", "layers[1]", "classifier".')
    kind: str = Field(description="full, bilinear or lowrank.")
    multiplier: float | None = Field(description="The channel multiplier chosen for the layer.")
    in_shape: list[int] = Field(description="(C, H, W) entering the layer.")
    out_shape: list[int] = Field(description="(C, H, W) leaving it (after any pool).")
    rank: int | None = Field(description="The kept rank of a low-rank layer, else null.")
    params: int = Field(description="Trainable parameters, bias included.")
    macs: int = Field(description="Multiply-accumulates per sample.")


class EpochPublic(BaseModel):
    """One epoch of the learning curve; ``epoch`` counts from 1 across both phases."""

    epoch: int
    phase: str = Field(description='"train", then "finetune" (after low-rank pruning).')
    train_loss: float
    val_accuracy: float
    lr: float
    seconds: float


class TrialDetailPublic(TrialPublic):
    """A trial with its layers, its learning curve and, for front members, its model."""

    on_front: bool
    model_url: str | None = Field(description="safetensors download; front members only.")
    model_urls: dict[str, str] = Field(
        description="The model in each format (safetensors, onnx); front members only."
    )
    layers: list[LayerPublic]
    curve: list[EpochPublic]


class TrialPointsPublic(BaseModel):
    """Plot coordinates of the job's finished trials, as columns (index i is one trial).

    At most ``limit`` trials: with more, every ``stride``-th trial number is kept (the front
    itself comes from ``/pareto``, never thinned).
    """

    job_id: str
    total: int = Field(description="Finished trials with an accuracy, before thinning.")
    stride: int
    number: list[int]
    state: list[str]
    val_accuracy: list[float]
    test_accuracy: list[float | None]
    params: list[int | None]
    macs: list[int | None]
    feasible: list[bool | None]
