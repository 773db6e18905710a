"""A job's per-trial Ray resources in the body: defaults, fractions, whole GPUs, exact errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

P = "https://paretonas.dev/problems/"
JOBS = "/api/v1/jobs"


def _post(
    client: TestClient, auth: dict[str, str], **body: object
) -> tuple[int, dict[str, object]]:
    response = client.post(JOBS, json={"dataset": "digits", "n_trials": 4, **body}, headers=auth)
    return response.status_code, response.json()


def test_defaults_and_a_quarter_gpu_are_stored_and_shown(
    client: TestClient, auth: dict[str, str]
) -> None:
    status, job = _post(client, auth)
    assert status == 202
    assert (job["gpus_per_trial"], job["cpus_per_trial"]) == (0.0, 1.0)
    status, job = _post(client, auth, gpus_per_trial=0.25, cpus_per_trial=2)
    assert status == 202
    shown = client.get(f"{JOBS}/{job['id']}", headers=auth).json()
    assert (shown["gpus_per_trial"], shown["cpus_per_trial"]) == (0.25, 2.0)
    status, job = _post(client, auth, gpus_per_trial=2, cpus_per_trial=0.5)
    assert (status, job["gpus_per_trial"], job["cpus_per_trial"]) == (202, 2.0, 0.5)


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            {"gpus_per_trial": 1.5},
            "body.gpus_per_trial",
            "Value error, gpus_per_trial: got 1.5; a trial shares one GPU (a fraction up to 1, "
            "e.g. 0.25) or takes whole GPUs (2, 3, ...): use 1 or 2",
        ),
        ({"gpus_per_trial": -1}, "body.gpus_per_trial",
         "Input should be greater than or equal to 0"),
        ({"gpus_per_trial": 65}, "body.gpus_per_trial", "Input should be less than or equal to 64"),
        ({"cpus_per_trial": 0}, "body.cpus_per_trial", "Input should be greater than 0"),
        (
            {"cpus_per_trial": "two"},
            "body.cpus_per_trial",
            "Input should be a valid number, unable to parse string as a number",
        ),
    ],
)
def test_bad_resources_are_422_naming_the_field(
    client: TestClient, auth: dict[str, str], body: dict[str, object], path: str, message: str
) -> None:
    status, problem = _post(client, auth, **body)
    assert (status, problem) == (
        422,
        {
            "type": P + "validation-error",
            "title": "Invalid request",
            "status": 422,
            "detail": f"{path}: {message}",
            "instance": JOBS,
            "errors": [{"path": path, "message": message}],
        },
    )
