"""POST/GET /api/v1/jobs and cancel on both backends: exact status codes and problem bodies."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from search.config import parse_config
from search.engine import reference_point
from service.db.engine import write_session
from service.db.tables import Job

P = "https://paretonas.dev/problems/"
JOBS = "/api/v1/jobs"


def _submit(client: TestClient, auth: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post(JOBS, json={"dataset": "digits", "n_trials": 4, **body}, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()


def test_submit_minimal_job(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(JOBS, json={"dataset": "digits", "n_trials": 4}, headers=auth)
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["id"].startswith("job_") and len(job["id"]) == 30
    expected = parse_config({"dataset": "digits", "n_trials": 4})
    assert job["config"] == expected.to_dict()
    assert job["reference_point"] == reference_point(expected)
    assert {k: job[k] for k in ("status", "dataset", "n_trials", "parallelism", "front_size")} == {
        "status": "queued",
        "dataset": "digits",
        "n_trials": 4,
        "parallelism": 4,
        "front_size": 0,
    }
    assert job["trials"] == {
        "running": 0, "complete": 0, "failed": 0, "stopped_early": 0, "skipped": 0
    }
    assert job["finished_reason"] is None
    shown = client.get(f"{JOBS}/{job['id']}", headers=auth)
    assert (shown.status_code, shown.json()) == (200, job)


def test_submit_with_every_field(client: TestClient, auth: dict[str, str]) -> None:
    job = _submit(
        client,
        auth,
        objectives=["accuracy", "params", "macs"],
        sampler="random",
        seed=7,
        max_params=20_000,
        parallelism=2,
        train={"epochs": 3},
    )
    config = job["config"]
    assert isinstance(config, dict)
    assert (config["objectives"], config["sampler"], config["seed"], config["max_params"]) == (
        ["accuracy", "params", "macs"],
        "random",
        7,
        20_000,
    )
    assert config["space"]["train"]["epochs"] == 3
    assert job["parallelism"] == 2
    assert job["reference_point"][:2] == [0.0, 20_000.0]


def test_idempotency_key(client: TestClient, auth: dict[str, str]) -> None:
    body = {"dataset": "digits", "n_trials": 4}
    key = {**auth, "Idempotency-Key": "k-1"}
    first = client.post(JOBS, json=body, headers=key)
    replay = client.post(JOBS, json=body, headers=key)
    assert (first.status_code, replay.status_code) == (202, 200)
    assert replay.json() == first.json()
    assert replay.headers["location"] == first.headers["location"]
    conflict = client.post(JOBS, json={**body, "n_trials": 5}, headers=key)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    assert conflict.json() == {
        "type": P + "idempotency-conflict",
        "title": "Idempotency key reused with a different body",
        "status": 409,
        "detail": f"Idempotency-Key 'k-1' was used for job {first.json()['id']} with a different "
        "body; send a new key for a new job",
        "instance": JOBS,
        "job_id": first.json()["id"],
    }
    listed = client.get(JOBS, headers=auth).json()["data"]
    assert [job["id"] for job in listed] == [first.json()["id"]]


def test_unknown_dataset(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(JOBS, json={"dataset": "/etc/passwd"}, headers=auth)
    assert response.status_code == 422
    assert response.json() == {
        "type": P + "unknown-dataset",
        "title": "Unknown dataset",
        "status": 422,
        "detail": "dataset: got '/etc/passwd'; allowed: digits "
        "(operators register more with PARETONAS_DATASETS)",
        "instance": JOBS,
        "allowed": ["digits"],
    }


def test_invalid_search_space_names_path_and_allowed(
    client: TestClient, auth: dict[str, str]
) -> None:
    response = client.post(JOBS, json={"dataset": "digits", "sampler": "grid"}, headers=auth)
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "invalid-search-space",
            "title": "Invalid search space",
            "status": 422,
            "detail": "sampler: got 'grid'; allowed: tpe, nsga2, random",
            "instance": JOBS,
            "path": "sampler",
            "allowed": ["tpe", "nsga2", "random"],
        },
    )
    nested = client.post(JOBS, json={"dataset": "digits", "space": {"layers": 3}}, headers=auth)
    assert nested.status_code == 422
    assert nested.json()["path"] == "space.layers"


def test_request_validation_errors_are_problems(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(JOBS, json={"n_trials": "4", "path": "/data"}, headers=auth)
    assert response.status_code == 422
    assert response.json() == {
        "type": P + "validation-error",
        "title": "Invalid request",
        "status": 422,
        "detail": "body.dataset: Field required; body.n_trials: Input should be a valid integer; "
        "body.path: Extra inputs are not permitted",
        "instance": JOBS,
        "errors": [
            {"path": "body.dataset", "message": "Field required"},
            {"path": "body.n_trials", "message": "Input should be a valid integer"},
            {"path": "body.path", "message": "Extra inputs are not permitted"},
        ],
    }
    bad_status = client.get(JOBS, params={"status": "done"}, headers=auth).json()
    assert bad_status["errors"] == [
        {
            "path": "query.status",
            "message": "Input should be 'queued', 'running', 'succeeded', 'failed' or 'cancelled'",
            "allowed": "'queued', 'running', 'succeeded', 'failed' or 'cancelled'",
        }
    ]


def test_limits(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(JOBS, json={"dataset": "digits", "n_trials": 501}, headers=auth)
    assert (response.status_code, response.json()["detail"]) == (
        422,
        "n_trials: got 501; this service allows at most 500 per job "
        "(operators raise PARETONAS_LIMITS__MAX_TRIALS)",
    )
    response = client.post(JOBS, json={"dataset": "digits", "parallelism": 9}, headers=auth)
    assert (response.json()["type"], response.json()["limit"]) == (P + "limit-exceeded", 8)


def test_list_pages_newest_first(client: TestClient, auth: dict[str, str]) -> None:
    ids = [_submit(client, auth)["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(JOBS, params=params, headers=auth).json()
        seen += [job["id"] for job in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (pages, seen) == (3, ids[::-1])
    bad = client.get(JOBS, params={"cursor": "not-a-cursor"}, headers=auth)
    assert (bad.status_code, bad.json()["type"]) == (422, P + "invalid-cursor")


def test_status_filter_and_cancel(
    client: TestClient, auth: dict[str, str], db_engine: Engine
) -> None:
    queued, running, done = (_submit(client, auth)["id"] for _ in range(3))
    with write_session(db_engine) as session:
        session.execute(update(Job).where(Job.id == running).values(status="running"))
        session.execute(update(Job).where(Job.id == done).values(status="succeeded"))
    filtered = client.get(JOBS, params={"status": "running"}, headers=auth).json()
    assert [job["id"] for job in filtered["data"]] == [running]

    now_cancelled = client.post(f"{JOBS}/{queued}:cancel", headers=auth)
    assert now_cancelled.status_code == 200
    body = now_cancelled.json()
    assert (body["status"], body["cancel_requested"]) == ("cancelled", True)
    assert body["finished_at"] is not None

    requested = client.post(f"{JOBS}/{running}:cancel", headers=auth)
    assert requested.status_code == 202
    assert (requested.json()["status"], requested.json()["cancel_requested"]) == ("running", True)

    finished = client.post(f"{JOBS}/{done}:cancel", headers=auth)
    assert (finished.status_code, finished.json()) == (
        409,
        {
            "type": P + "job-finished",
            "title": "Job already finished",
            "status": 409,
            "detail": f"job {done} already succeeded; only queued or running jobs cancel",
            "instance": f"{JOBS}/{done}:cancel",
            "job_status": "succeeded",
        },
    )


def test_other_owners_job_is_not_found(
    client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    job_id = _submit(client, auth)["id"]
    bob = {"Authorization": f"Bearer {make_key('bob')}"}
    for method, path in (
        ("GET", f"{JOBS}/{job_id}"),
        ("POST", f"{JOBS}/{job_id}:cancel"),
        ("GET", f"{JOBS}/{job_id}/trials"),
        ("GET", f"{JOBS}/{job_id}/pareto"),
        ("GET", f"{JOBS}/{job_id}/trials/0/model"),
    ):
        response = client.request(method, path, headers=bob)
        assert (response.status_code, response.json()) == (
            404,
            {
                "type": P + "job-not-found",
                "title": "Job not found",
                "status": 404,
                "detail": f"no job {job_id!r} among your jobs; list them with GET /api/v1/jobs",
                "instance": path,
            },
        )
    assert client.get(JOBS, headers=bob).json() == {"data": [], "next_cursor": None}


def test_api_keys_401(
    client: TestClient, auth: dict[str, str], db_engine: Engine, make_key: Callable[[str], str]
) -> None:
    missing = client.get(JOBS)
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert missing.json() == {
        "type": P + "unauthorized",
        "title": "Missing or invalid API key",
        "status": 401,
        "detail": "no API key: send Authorization: Bearer <key> (paretonas keys create "
        "--name NAME)",
        "instance": JOBS,
    }
    wrong = client.get(JOBS, headers={"Authorization": "Bearer pnas_nope"})
    assert (wrong.status_code, wrong.headers["www-authenticate"]) == (401, "Bearer")
    assert wrong.json()["detail"] == (
        "the API key is unknown or revoked; create one with paretonas keys create"
    )
    basic = client.get(JOBS, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    from service.db.tables import ApiKey
    from service.keys import revoke_key

    key = make_key("carol")
    assert client.get(JOBS, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with write_session(db_engine) as session:
        carol = session.query(ApiKey).filter_by(name="carol").one()
        revoke_key(session, key_id=carol.id)
    assert client.get(JOBS, headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_stored_config_round_trips(
    client: TestClient, auth: dict[str, str], db_engine: Engine
) -> None:
    """What the workers read back is exactly the validated config."""
    job_id = _submit(client, auth, seed=3)["id"]
    with write_session(db_engine) as session:
        row = session.get_one(Job, job_id)
        stored = json.loads(row.config_json)
        assert (row.study_name, row.idempotency_key) == (f"paretonas-{job_id}", None)
    assert parse_config(stored).to_dict() == stored


def test_max_params_below_the_space_and_bad_early_stopping_are_422(
    client: TestClient, auth: dict[str, str]
) -> None:
    response = client.post(JOBS, json={"dataset": "digits", "max_params": 100}, headers=auth)
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "invalid-search-space",
            "title": "Invalid search space",
            "status": 422,
            "detail": "max_params: got 100; the smallest architecture of the space has 5451 "
            "parameters (low-rank layers at rank 1): raise max_params to at least 5451 or add "
            "smaller choices to the space",
            "instance": JOBS,
            "path": "max_params",
        },
    )
    for rule, path, detail in (
        (
            {"margin": -0.5},
            "early_stopping.margin",
            "got -0.5; must be a number in [0, 1] (accuracy points below the neighbour)",
        ),
        (
            {"checkpoints": [13]},
            "early_stopping.checkpoints[0]",
            "got 13; must be an epoch in [1, 12] (the trial trains 12 epochs)",
        ),
    ):
        bad = client.post(JOBS, json={"dataset": "digits", "early_stopping": rule}, headers=auth)
        assert (bad.status_code, bad.json()["path"], bad.json()["detail"]) == (
            422,
            path,
            f"{path}: {detail}",
        )
    good = _submit(client, auth, early_stopping={"checkpoints": [4, 8], "margin": 0.05})
    assert good["config"]["early_stopping"] == {  # type: ignore[index]
        "enabled": True,
        "checkpoints": [4, 8],
        "margin": 0.05,
    }
