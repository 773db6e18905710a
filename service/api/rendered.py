"""Rendered JSON for the read routes clients poll: one serialisation, and a per-process cache.

``json_response(model)`` sends a pydantic model as the JSON FastAPI would send for it, but without
FastAPI's second pass over a returned model (it validates the return value again, and for a plain
``def`` route does that in a thread-pool hop of its own). The route still declares the model as its
``response_model``, so the OpenAPI document is unchanged.

``RenderedCache`` keeps rendered bodies of job results (the front, trial pages) keyed by the
job's *version*: every change to a job's trials, front or hypervolume history is written in the
same transaction that updates the job row's counters and ``updated_at`` (service/worker/record.py,
recovery.py, skipped.py), and the route reads that row anyway to check the owner. So a body is
reused only while the job row still says what it said when the body was rendered; a finished job's
front is rendered once per API process. It is an LRU bounded by bytes
(``PARETONAS_RESPONSE_CACHE_MB``; 0 turns it off): each entry counts its body plus
``ENTRY_OVERHEAD`` for its key and bookkeeping, so a client asking for many tiny pages (every
offset of an empty page is a key of its own) fills the bound instead of growing past it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi import Response
from pydantic import BaseModel

from service.db.tables import Job

__all__ = ["ENTRY_OVERHEAD", "JSON", "RenderedCache", "job_version", "json_response"]

JSON = "application/json"
# What an entry holds besides its body: the key tuple (job id, status, times, counters, query
# values), the bytes object's header and the OrderedDict's node. tracemalloc put it at about
# 410 bytes for a trials-page key; rounded up.
ENTRY_OVERHEAD = 512


def json_response(model: BaseModel) -> Response:
    """``model`` as a JSON response (the body FastAPI would render for it)."""
    return Response(model.model_dump_json(), media_type=JSON)


def job_version(job: Job) -> tuple[Hashable, ...]:
    """What changes whenever anything a job's results show changes (see the module doc)."""
    return (
        job.id, job.status, job.updated_at, job.n_complete, job.n_failed, job.n_stopped_early,
        job.n_skipped, job.n_running, job.front_size, job.hypervolume,
    )


class RenderedCache:
    """Rendered bodies by key, least recently used evicted first, at most ``max_bytes`` in all.

    Thread-safe: sync routes run in the thread pool. Two requests that miss at once both render
    (the same bytes); the lock is never held while rendering.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_render(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The body for ``key``: the cached one, or ``render()`` (kept when it fits)."""
        with self._lock:
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return body
            self.misses += 1
        body = render()
        if len(body) + ENTRY_OVERHEAD > self.max_bytes:
            return body
        with self._lock:
            if key not in self._entries:
                self._entries[key] = body
                self._size += len(body) + ENTRY_OVERHEAD
            while self._size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted) + ENTRY_OVERHEAD
        return body

    def __len__(self) -> int:
        return len(self._entries)

    def response(self, key: Hashable, render: Callable[[], BaseModel]) -> Response:
        """A JSON response for ``key``, rendering ``render()``'s model on a miss."""
        return Response(
            self.get_or_render(key, lambda: render().model_dump_json().encode()), media_type=JSON
        )
