"""A job's results below the routes: the front, one trial in full, the plot's points.

The API routes and the dashboard's pages call these same functions, so a page always shows what
the JSON API serves. Every read costs the size of what it returns (the front, one trial's epochs,
``limit`` points), never a scan of all trials into Python.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.costs import layer_macs, layer_params
from models.plan import plan_layers
from models.spec import ArchSpec
from service.api.model_formats import FORMATS
from service.api.problems import Problem
from service.api.result_schemas import (
    EpochPublic,
    HistoryMode,
    LayerPublic,
    TrialDetailPublic,
    TrialPointsPublic,
)
from service.api.schemas import (
    HypervolumePoint,
    ParetoMemberPublic,
    ParetoPublic,
    TrialPublic,
)
from service.db.tables import (
    MAX_TRIAL_NUMBER,
    HypervolumeHistory,
    Job,
    ParetoMember,
    Trial,
    TrialEpoch,
    TrialWeights,
)

__all__ = [
    "hypervolume_history",
    "layer_kinds",
    "layers_of",
    "model_url",
    "model_urls",
    "pareto_public",
    "trial_detail",
    "trial_points",
    "trial_public",
]

MAX_POINTS = 100_000


def trial_public(row: Trial) -> TrialPublic:
    """The API's view of a trial row."""
    return TrialPublic(
        number=row.number,
        attempt=row.attempt,
        retry_of=row.retry_of,
        state=row.state,  # type: ignore[arg-type]
        choices=json.loads(row.params_json),
        spec=json.loads(row.spec_json) if row.spec_json else None,
        preprocess=json.loads(row.preprocess_json) if row.preprocess_json else None,
        val_accuracy=row.val_accuracy,
        test_accuracy=row.test_accuracy,
        params=row.params,
        macs=row.macs,
        feasible=row.feasible,
        train_seconds=row.train_seconds,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        duplicate_of=row.duplicate_of,
        stopped_epoch=row.stopped_epoch,
        lost_to=row.lost_to,
    )


def layer_kinds(spec: dict[str, Any] | None) -> str:
    """The layer choices of a spec, in order: convolutions, hidden layers, then the classifier."""
    if not spec:
        return "–"
    parts = [f"conv:{c.get('kind')}×{c.get('multiplier')}" for c in spec.get("convs") or []]
    for layer in spec.get("layers") or []:
        parts.append(f"{layer.get('kind')}×{layer.get('multiplier')}")
    classifier = spec.get("classifier") or {}
    parts.append(f"classifier:{classifier.get('kind')}")
    return " ".join(parts)


def model_url(request: Request, *, job_id: str, number: int) -> str:
    """The path of a front member's safetensors download."""
    return str(request.url_for("get_model", job_id=job_id, number=number).path)


def model_urls(url: str) -> dict[str, str]:
    """Each download format's URL: ``model_url``'s path with ``?format=`` (front and trial)."""
    return {fmt: f"{url}?format={fmt}" for fmt in FORMATS}


def hypervolume_history(
    session: Session, *, job_id: str, mode: HistoryMode
) -> list[HypervolumePoint]:
    """The job's hypervolume history: every row (``all``), only the rows where it changed plus
    the first and the last (``changes``: the same step curve, the size of the front's history
    rather than of the trials), or nothing (``none``)."""
    if mode == "none":
        return []
    order = (HypervolumeHistory.n_complete, HypervolumeHistory.id)
    if mode == "all":
        rows = session.execute(
            select(
                HypervolumeHistory.n_complete,
                HypervolumeHistory.hypervolume,
                HypervolumeHistory.recorded_at,
            )
            .where(HypervolumeHistory.job_id == job_id)
            .order_by(*order)
        ).all()
    else:
        windowed = (
            select(
                HypervolumeHistory.n_complete,
                HypervolumeHistory.hypervolume,
                HypervolumeHistory.recorded_at,
                func.lag(HypervolumeHistory.hypervolume).over(order_by=order).label("previous"),
                func.row_number().over(order_by=order).label("row"),
                func.lead(HypervolumeHistory.id).over(order_by=order).label("following"),
            )
            .where(HypervolumeHistory.job_id == job_id)
            .subquery()
        )
        rows = session.execute(
            select(windowed.c.n_complete, windowed.c.hypervolume, windowed.c.recorded_at)
            .where(
                (windowed.c.row == 1)
                | windowed.c.following.is_(None)
                | windowed.c.hypervolume.is_distinct_from(windowed.c.previous)
            )
            .order_by(windowed.c.row)
        ).all()
    return [
        HypervolumePoint(n_complete=n, hypervolume=volume, recorded_at=at)
        for n, volume, at in rows
    ]


def pareto_public(
    session: Session, *, job: Job, request: Request, history: HistoryMode = "all"
) -> ParetoPublic:
    """The front (by parameters), the reference point and the hypervolume history."""
    members = session.scalars(
        select(ParetoMember)
        .where(ParetoMember.job_id == job.id)
        .order_by(ParetoMember.params, ParetoMember.trial_number)
    ).all()
    return ParetoPublic(
        job_id=job.id,
        objectives=list(json.loads(job.config_json).get("objectives", [])),
        reference_point=json.loads(job.reference_point_json),
        hypervolume=job.hypervolume,
        members=[
            ParetoMemberPublic(
                trial_number=m.trial_number,
                val_accuracy=m.val_accuracy,
                test_accuracy=m.test_accuracy,
                params=m.params,
                macs=m.macs,
                spec=json.loads(m.spec_json),
                added_at=m.added_at,
                model_url=model_url(request, job_id=job.id, number=m.trial_number),
                model_urls=model_urls(model_url(request, job_id=job.id, number=m.trial_number)),
            )
            for m in members
        ],
        history=hypervolume_history(session, job_id=job.id, mode=history),
    )


def layers_of(spec_json: str | None) -> list[LayerPublic]:
    """The layers of an architecture with their shapes, ranks and exact costs."""
    if not spec_json:
        return []
    rows = []
    for plan in plan_layers(ArchSpec.from_json(spec_json)):
        multiplier = getattr(plan.spec, "multiplier", None)
        rows.append(
            LayerPublic(
                path=plan.path,
                kind=plan.kind,
                multiplier=None if plan.path == "classifier" else multiplier,
                in_shape=list(plan.in_shape),
                out_shape=list(plan.out_shape),
                rank=plan.rank if plan.kind == "lowrank" else None,
                params=layer_params(plan),
                macs=layer_macs(plan),
            )
        )
    return rows


def trial_detail(
    session: Session, *, job: Job, number: int, request: Request
) -> TrialDetailPublic:
    """Trial ``number`` of ``job`` with its layers and learning curve; 404 trial-not-found (also
    for a number no trial can have: the dashboard's trial page takes any integer)."""
    row = None
    if 0 <= number <= MAX_TRIAL_NUMBER:
        row = session.scalars(
            select(Trial).where(Trial.job_id == job.id, Trial.number == number)
        ).one_or_none()
    if row is None:
        raise Problem(
            "trial-not-found",
            status=404,
            detail=f"job {job.id} has no trial {number}; list its trials with "
            f"GET /api/v1/jobs/{job.id}/trials",
        )
    on_front = (
        session.scalar(
            select(func.count())
            .select_from(ParetoMember)
            .where(ParetoMember.job_id == job.id, ParetoMember.trial_number == number)
        )
        or 0
    ) > 0
    has_weights = on_front and (
        session.scalar(
            select(func.count())
            .select_from(TrialWeights)
            .where(TrialWeights.job_id == job.id, TrialWeights.trial_number == number)
        )
        or 0
    ) > 0
    epochs = session.scalars(
        select(TrialEpoch)
        .where(TrialEpoch.job_id == job.id, TrialEpoch.trial_number == number)
        .order_by(TrialEpoch.epoch)
    ).all()
    url = model_url(request, job_id=job.id, number=number) if has_weights else None
    return TrialDetailPublic(
        **trial_public(row).model_dump(),
        on_front=on_front,
        model_url=url,
        model_urls=model_urls(url) if url else {},
        layers=layers_of(row.spec_json),
        curve=[
            EpochPublic(
                epoch=e.epoch,
                phase=e.phase,
                train_loss=e.train_loss,
                val_accuracy=e.val_accuracy,
                lr=e.lr,
                seconds=e.seconds,
            )
            for e in epochs
        ],
    )


def trial_points(session: Session, *, job: Job, limit: int) -> TrialPointsPublic:
    """Finished trials with an accuracy, as columns; thinned to at most ``limit`` by number."""
    scored = (Trial.job_id == job.id, Trial.val_accuracy.is_not(None))
    total = session.scalar(select(func.count()).select_from(Trial).where(*scored)) or 0
    stride = max(1, math.ceil(total / limit))
    query = select(
        Trial.number,
        Trial.state,
        Trial.val_accuracy,
        Trial.test_accuracy,
        Trial.params,
        Trial.macs,
        Trial.feasible,
    ).where(*scored)
    if stride > 1:
        query = query.where(Trial.number % stride == 0)
    rows = session.execute(query.order_by(Trial.number)).all()
    return TrialPointsPublic(
        job_id=job.id,
        total=total,
        stride=stride,
        number=[r.number for r in rows],
        state=[r.state for r in rows],
        val_accuracy=[r.val_accuracy for r in rows],
        test_accuracy=[r.test_accuracy for r in rows],
        params=[r.params for r in rows],
        macs=[r.macs for r in rows],
        feasible=[r.feasible for r in rows],
    )
