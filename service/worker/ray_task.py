"""What runs inside the Ray cluster: one trial's training, and the flags that stop it.

Only the driver touches the databases. A Ray task gets a ticket, the job's config and its dataset
splits (one object per job in Ray's object store), trains with ``search.engine.run_ticket`` and
returns the outcome; after every epoch it asks the driver's ``TrialSignals`` actor whether to stop
(a cancel, a lost lease, a driver stopping on SIGTERM), so a trial stops within one epoch, exactly
as in a plain worker, and its partial outcome still comes back to be recorded as stopped.

This module imports no Ray at the top: the driver wraps ``run_trial`` and ``TrialSignals`` with
``ray.remote`` at run time, so the plain worker never needs the extra.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from search import engine as search_engine
from search.config import SearchConfig
from search.datasets import Splits
from search.engine import TrialOutcome, TrialTicket
from search.heap import retain_freed_memory
from search.training import EpochReport

__all__ = ["TaskResult", "TrialSignals", "run_trial"]

_SPLITS_PER_PROCESS = 2  # a Ray worker process keeps the splits of its last two jobs
_splits_cache: OrderedDict[str, Splits] = OrderedDict()


@dataclass(frozen=True)
class TaskResult:
    """What a trial's Ray task hands back.

    ``outcome`` None: the task never trained because its driver released it before it began.
    ``epoch``: the last epoch trained ("3/10"); ``pid``, ``device``: where.
    """

    outcome: TrialOutcome | None
    epoch: str
    pid: int
    device: str


class TrialSignals:
    """A Ray actor of the driver: which of its trials should stop, and which have begun.

    Two kinds of stop: ``stop`` (a cancel, an ended job, a lost lease: the trial trains on to the
    end of its epoch, then hands back its partial outcome) and ``release`` (the driver is
    shutting down: a trial that has not begun does not train at all). Its methods run one at a
    time (an actor's mailbox), so ``begin`` never races a ``release``.
    """

    def __init__(self) -> None:
        self._stop: set[int] = set()
        self._release: set[int] = set()
        self._begun: set[int] = set()

    def begin(self, key: int) -> bool:
        """A task starts trial ``key``; True when it should not train at all (released)."""
        self._begun.add(key)
        return key in self._release

    def should_stop(self, key: int) -> bool:
        """True once the driver asked trial ``key`` to stop or released it."""
        return key in self._stop or key in self._release

    def stop(self, keys: list[int]) -> None:
        """Ask trials ``keys`` to stop after their current epoch."""
        self._stop.update(keys)

    def release(self, keys: list[int]) -> list[int]:
        """Release trials ``keys``; returns those of them whose task has not begun yet."""
        self._release.update(keys)
        return [key for key in keys if key not in self._begun]

    def forget(self, key: int) -> None:
        """Trial ``key`` is settled; drop its flags."""
        for flags in (self._stop, self._release, self._begun):
            flags.discard(key)


def run_trial(
    *,
    ticket: TrialTicket,
    config: SearchConfig,
    splits: list[Any],
    signals: Any,
    key: int,
) -> TaskResult:
    """Train ``ticket`` on the GPU Ray assigned (``cuda:0`` of the visible ones), else the CPU.

    ``splits``: ``[ref]``, the job's splits in Ray's object store (in a list, so Ray hands the
    reference, not the value: ``_job_splits`` copies it once per process); ``signals``: the
    driver's ``TrialSignals`` actor handle; ``key``: the trial's row id. A driver that is gone
    (its actor died with it) counts as "stop".
    """
    import os

    import ray

    retain_freed_memory()  # a training process (search/heap.py); idempotent per process
    device = "cuda:0" if ray.get_gpu_ids() else "cpu"
    if _ask(signals.begin, key):
        return TaskResult(outcome=None, epoch="0", pid=os.getpid(), device=device)
    last: list[EpochReport] = []

    def on_epoch(report: EpochReport) -> bool:
        last[:] = [report]
        return not _ask(signals.should_stop, key)

    outcome = search_engine.run_ticket(
        ticket=ticket, config=config, splits=_job_splits(splits[0]), device=device,
        on_epoch=on_epoch,
    )
    epoch = f"{last[-1].epoch}/{last[-1].epochs_total}" if last else "0"
    return TaskResult(outcome=outcome, epoch=epoch, pid=os.getpid(), device=device)


def _job_splits(ref: Any) -> Splits:
    """The splits behind ``ref``, as writable arrays, fetched and copied once per process.

    Ray maps objects read-only; torch warns on (and must never write to) read-only arrays.
    """
    import ray

    name = ref.hex()
    if name not in _splits_cache:
        _splits_cache[name] = copy.deepcopy(ray.get(ref))
        while len(_splits_cache) > _SPLITS_PER_PROCESS:
            _splits_cache.popitem(last=False)
    _splits_cache.move_to_end(name)
    return _splits_cache[name]


def _ask(method: Any, key: int) -> bool:
    import ray

    try:
        return bool(ray.get(method.remote(key)))
    except ray.exceptions.RayActorError:
        return True  # the driver is gone: its trials are retried elsewhere, stop training
