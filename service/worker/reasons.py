"""How a failed trial's ``error`` begins: what the worker writes and what ``/metrics`` counts."""

from __future__ import annotations

__all__ = ["LEASE_EXPIRED", "RELEASED", "TIMED_OUT"]

LEASE_EXPIRED = "lease expired"
RELEASED = "released by worker"  # given back on shutdown: not the trial's fault
TIMED_OUT = "exceeded the per-trial wall-time limit"
