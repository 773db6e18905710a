"""How a failed trial's ``error`` begins: what the worker writes and what ``/metrics`` counts."""

from __future__ import annotations

__all__ = ["LEASE_EXPIRED", "TIMED_OUT"]

LEASE_EXPIRED = "lease expired"
TIMED_OUT = "exceeded the per-trial wall-time limit"
