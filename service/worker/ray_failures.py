"""Why a trial's Ray task failed, in the words the trial row keeps (``trials.error``).

A training error comes back as ``RayTaskError`` wrapping the training's own exception: it reads
like the plain worker's "training raised ...". A Ray worker process or node that died mid-trial
(``WorkerCrashedError``, ``NodeDiedError``) says so; anything else Ray lost is named by its type.
Every one of them fails the trial, which the service retries under ``max_trial_retries``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_failure"]


def describe_failure(ray: Any, error: BaseException) -> str:
    """The trial's failure reason: the training's own exception, or what Ray lost."""
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause if isinstance(error.cause, BaseException) else error
        return f"training raised {type(cause).__name__}: {_first_line(cause)}"
    if isinstance(error, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return f"ray worker died mid-trial ({type(error).__name__}): {_first_line(error)}"
    return f"ray task lost ({type(error).__name__}): {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""
