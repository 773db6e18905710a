"""How much of a Ray cluster the driver may still fill: which jobs' trials fit right now.

The driver claims a trial only of a job whose ``cpus_per_trial`` and ``gpus_per_trial`` fit:

- what the cluster has free: per resource, the smaller of Ray's ``available_resources()`` (which
  sees other users of the cluster, but lags a moment behind) and the cluster's total minus what the
  driver's own trials in flight hold (which never lags); resources of trials the driver settled
  within the last ``RECENT_SECONDS`` are added back to the first, as Ray may not show them free yet;
- and the largest node: a trial asks for its GPUs and CPUs on one node, so a job asking more than
  any node has is never claimed by this driver (a bigger node joining makes it claimable).

Totals come from ``cluster_resources()`` and the alive nodes at each pass, so the number of
trials in flight follows nodes joining, leaving and dying. For an autoscaler, ``demand`` lists one
resource bundle per trial the jobs could run now (their open slots under budget and parallelism):
the driver hands it to ``ray.autoscaler.sdk.request_resources``, so nodes are added for trials
that fit no node that is up (an estimate for the autoscaler; the claim still decides).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, case, select

from service.db.tables import Job

__all__ = ["MAX_BUNDLES", "RECENT_SECONDS", "Released", "Resources", "Room", "demand", "free_room"]

MAX_BUNDLES = 1000  # one autoscaler request names at most this many trials

RECENT_SECONDS = 3.0
_EPS = 1e-9  # fractional GPUs add up with float error: 4 x 0.25 must fit one GPU


@dataclass(frozen=True)
class Resources:
    """What one trial asks for (the job's ``cpus_per_trial``, ``gpus_per_trial``)."""

    cpus: float
    gpus: float

    def ray_options(self) -> dict[str, float]:
        """The task's ``num_cpus`` / ``num_gpus``."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}


@dataclass(frozen=True)
class Released:
    """Resources of a settled trial, and when (``time.monotonic()``) it was settled."""

    resources: Resources
    at: float


@dataclass(frozen=True)
class Room:
    """Free CPUs and GPUs for new trials, and the most any one alive node has."""

    cpus: float
    gpus: float
    node_cpus: float
    node_gpus: float

    def fits(self) -> ColumnElement[bool]:
        """The condition on a job row: one of its trials fits this room."""
        return and_(
            Job.cpus_per_trial <= min(self.cpus, self.node_cpus) + _EPS,
            Job.gpus_per_trial <= min(self.gpus, self.node_gpus) + _EPS,
        )

    def holds(self, resources: Resources) -> bool:
        """True when a trial asking ``resources`` fits (the same rule as ``fits``)."""
        return (
            resources.cpus <= min(self.cpus, self.node_cpus) + _EPS
            and resources.gpus <= min(self.gpus, self.node_gpus) + _EPS
        )

    @property
    def empty(self) -> bool:
        """No CPU free: no trial fits (every trial asks for some CPU)."""
        return self.cpus <= _EPS


def free_room(
    *,
    total: Mapping[str, float],
    available: Mapping[str, float],
    nodes: Iterable[Mapping[str, float]],
    held: Iterable[Resources],
    released: Iterable[Released] = (),
    now: float | None = None,
) -> Room:
    """The room for new trials; see the module docstring for the rule.

    ``total``/``available``: Ray's ``cluster_resources()``/``available_resources()``; ``nodes``:
    each alive node's resources; ``held``: what the driver's trials in flight asked for;
    ``released``: trials settled lately (older than ``RECENT_SECONDS`` are ignored).
    """
    now = time.monotonic() if now is None else now
    held = list(held)
    recent = [r.resources for r in released if now - r.at < RECENT_SECONDS]
    nodes = list(nodes)

    def free(name: str, held_amount: float, recent_amount: float) -> float:
        own = total.get(name, 0.0) - held_amount
        seen = available.get(name, 0.0) + recent_amount
        return max(0.0, min(own, seen))

    return Room(
        cpus=free("CPU", sum(r.cpus for r in held), sum(r.cpus for r in recent)),
        gpus=free("GPU", sum(r.gpus for r in held), sum(r.gpus for r in recent)),
        node_cpus=max((node.get("CPU", 0.0) for node in nodes), default=0.0),
        node_gpus=max((node.get("GPU", 0.0) for node in nodes), default=0.0),
    )


def demand(connection: Connection) -> list[dict[str, float]]:
    """One ``{"CPU": c, "GPU": g}`` bundle per trial the active jobs may run at once now (running
    ones included), oldest job first, at most ``MAX_BUNDLES``."""
    remaining = Job.n_trials - Job.n_complete
    slots = case((Job.parallelism < remaining, Job.parallelism), else_=remaining)
    rows = connection.execute(
        select(Job.cpus_per_trial, Job.gpus_per_trial, slots.label("slots"))
        .where(
            Job.status.in_(("queued", "running")),
            Job.cancel_requested.is_(False),
            Job.n_complete < Job.n_trials,
        )
        .order_by(Job.created_at, Job.id)
    ).all()
    bundles: list[dict[str, float]] = []
    for row in rows:
        bundle = {"CPU": row.cpus_per_trial}
        if row.gpus_per_trial > 0:
            bundle["GPU"] = row.gpus_per_trial
        bundles += [dict(bundle) for _ in range(min(row.slots, MAX_BUNDLES - len(bundles)))]
        if len(bundles) >= MAX_BUNDLES:
            break
    return bundles
