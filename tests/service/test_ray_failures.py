"""What a failed Ray task writes into ``trials.error`` (Ray's real exception types, no cluster)."""

from __future__ import annotations

import pytest

from service.worker.ray_failures import describe_failure

ray = pytest.importorskip("ray")


def test_a_training_error_reads_like_the_plain_workers() -> None:
    error = ray.exceptions.RayTaskError(
        function_name="run_trial", traceback_str="Traceback ...", cause=ValueError("lr: got -1")
    ).as_instanceof_cause()
    assert describe_failure(ray, error) == "training raised ValueError: lr: got -1"


def test_a_dead_ray_worker_or_node_is_named() -> None:
    assert describe_failure(ray, ray.exceptions.WorkerCrashedError()) == (
        "ray worker died mid-trial (WorkerCrashedError): The worker died unexpectedly while "
        "executing this task. Check python-core-worker-*.log files for more information."
    )
    assert describe_failure(ray, ray.exceptions.TaskCancelledError()).startswith(
        "ray task lost (TaskCancelledError): "
    )
