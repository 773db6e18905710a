"""Trials, Pareto front and model download of a job, from rows the workers write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, insert, update

from service.db.engine import write_session
from service.db.tables import HypervolumeHistory, Job, ParetoMember, Trial, TrialWeights

P = "https://paretonas.dev/problems/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# number -> (state, val_accuracy, params)
TRIALS = {
    0: ("complete", 0.90, 5000),
    1: ("complete", 0.95, 9000),
    2: ("running", None, None),
    3: ("complete", 0.80, 2000),
    4: ("failed", None, None),
    5: ("complete", 0.85, 7000),
}
FRONT = (0, 1, 3)  # 5 is dominated by 0


@pytest.fixture
def job_id(client: TestClient, auth: dict[str, str], db_engine: Engine) -> str:
    response = client.post("/api/v1/jobs", json={"dataset": "digits", "n_trials": 6}, headers=auth)
    job = str(response.json()["id"])
    with write_session(db_engine) as session:
        session.execute(
            insert(Trial),
            [
                {
                    "job_id": job,
                    "number": n,
                    "state": state,
                    "params_json": json.dumps({"depth": n}),
                    "spec_json": json.dumps({"n": n}) if state == "complete" else None,
                    "val_accuracy": acc,
                    "params": params,
                    "started_at": T0 + timedelta(minutes=n),
                }
                for n, (state, acc, params) in TRIALS.items()
            ],
        )
        session.execute(
            insert(ParetoMember),
            [
                {
                    "job_id": job,
                    "trial_number": n,
                    "val_accuracy": TRIALS[n][1],
                    "params": TRIALS[n][2],
                    "spec_json": json.dumps({"n": n}),
                    "added_at": T0,
                }
                for n in FRONT
            ],
        )
        session.execute(
            insert(TrialWeights),
            [{"job_id": job, "trial_number": n, "data": bytes([n]) * 100} for n in FRONT],
        )
        session.execute(insert(TrialWeights), [{"job_id": job, "trial_number": 5, "data": b"x"}])
        session.execute(
            insert(HypervolumeHistory),
            [
                {"job_id": job, "n_complete": k, "hypervolume": 0.1 * k, "recorded_at": T0}
                for k in (1, 2, 3)
            ],
        )
    return job


def _numbers(client: TestClient, auth: dict[str, str], url: str, **params: object) -> list[int]:
    response = client.get(url, params=params, headers=auth)
    assert response.status_code == 200, response.text
    return [trial["number"] for trial in response.json()["data"]]


def test_trials_sorted_and_filtered(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    url = f"/api/v1/jobs/{job_id}/trials"
    assert _numbers(client, auth, url) == [0, 1, 2, 3, 4, 5]
    assert _numbers(client, auth, url, sort="-val_accuracy") == [1, 0, 5, 3, 2, 4]
    assert _numbers(client, auth, url, sort="params") == [3, 0, 5, 1, 2, 4]
    assert _numbers(client, auth, url, sort="-number", state="complete") == [5, 3, 1, 0]
    first = client.get(url, headers=auth).json()["data"][0]
    assert (first["choices"], first["spec"], first["state"]) == ({"depth": 0}, {"n": 0}, "complete")


def test_trials_pages(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    url = f"/api/v1/jobs/{job_id}/trials"
    page = client.get(url, params={"limit": 4, "sort": "-val_accuracy"}, headers=auth).json()
    assert [t["number"] for t in page["data"]] == [1, 0, 5, 3]
    params = {"limit": 4, "sort": "-val_accuracy", "cursor": page["next_cursor"]}
    rest = client.get(url, params=params, headers=auth).json()
    assert ([t["number"] for t in rest["data"]], rest["next_cursor"]) == ([2, 4], None)


def test_unknown_sort(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    response = client.get(f"/api/v1/jobs/{job_id}/trials?sort=accuracy", headers=auth)
    allowed = [
        "number", "-number", "val_accuracy", "-val_accuracy", "test_accuracy", "-test_accuracy",
        "params", "-params", "macs", "-macs", "train_seconds", "-train_seconds",
    ]  # fmt: skip
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "invalid-sort",
            "title": "Invalid sort",
            "status": 422,
            "detail": f"sort: got 'accuracy'; allowed: {', '.join(allowed)}",
            "instance": f"/api/v1/jobs/{job_id}/trials",
            "allowed": allowed,
        },
    )


def test_pareto(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    body = client.get(f"/api/v1/jobs/{job_id}/pareto", headers=auth).json()
    assert [m["trial_number"] for m in body["members"]] == [3, 0, 1]  # by parameters
    assert body["members"][0] == {
        "trial_number": 3,
        "val_accuracy": 0.80,
        "test_accuracy": None,
        "params": 2000,
        "macs": None,
        "spec": {"n": 3},
        "added_at": "2026-03-01T12:00:00Z",
        "model_url": f"/api/v1/jobs/{job_id}/trials/3/model",
        "model_urls": {
            "safetensors": f"/api/v1/jobs/{job_id}/trials/3/model?format=safetensors",
            "onnx": f"/api/v1/jobs/{job_id}/trials/3/model?format=onnx",
        },
    }
    assert [(h["n_complete"], h["hypervolume"]) for h in body["history"]] == [
        (1, 0.1),
        (2, 0.2),
        (3, pytest.approx(0.3)),
    ]
    assert body["objectives"] == ["accuracy", "params"]
    assert len(body["reference_point"]) == 2


def test_results_are_rendered_once_per_job_version(
    client: TestClient, auth: dict[str, str], job_id: str, db_engine: Engine
) -> None:
    """Front and trial pages come from the per-process cache until the job row changes; every
    worker write that changes them also updates the job row (service/api/rendered.py)."""
    rendered = client.app.state.rendered  # type: ignore[attr-defined]
    pareto, trials = f"/api/v1/jobs/{job_id}/pareto", f"/api/v1/jobs/{job_id}/trials"
    first = client.get(pareto, headers=auth).json()
    page = client.get(trials, headers=auth).json()
    hits = rendered.hits
    assert client.get(pareto, headers=auth).json() == first
    assert client.get(trials, headers=auth).json() == page
    assert rendered.hits == hits + 2
    with write_session(db_engine) as session:  # what record.py does when trial 6 completes
        session.execute(insert(Trial).values(
            job_id=job_id, number=6, state="complete", params_json="{}", spec_json="{}",
            val_accuracy=0.99, params=1000, started_at=T0))
        session.execute(delete(ParetoMember).where(ParetoMember.job_id == job_id))
        session.execute(insert(ParetoMember).values(
            job_id=job_id, trial_number=6, val_accuracy=0.99, params=1000, spec_json="{}",
            added_at=T0))
        session.execute(insert(HypervolumeHistory).values(
            job_id=job_id, n_complete=4, hypervolume=0.9, recorded_at=T0))
        session.execute(update(Job).where(Job.id == job_id).values(
            n_complete=Job.n_complete + 1, front_size=1, updated_at=datetime.now(UTC)))
    after = client.get(pareto, headers=auth).json()
    assert [m["trial_number"] for m in after["members"]] == [6]
    assert after["history"][-1]["hypervolume"] == 0.9
    assert [t["number"] for t in client.get(trials, headers=auth).json()["data"]] == [*TRIALS, 6]
    assert rendered.hits == hits + 2  # both were rendered again


def test_model_download(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    response = client.get(f"/api/v1/jobs/{job_id}/trials/1/model", headers=auth)
    assert response.status_code == 200
    assert response.content == bytes([1]) * 100
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{job_id}-trial-1.safetensors"'
    )
    listing = f"front members are listed by GET /api/v1/jobs/{job_id}/pareto"
    why = {
        5: f"trial 5 of job {job_id} is not on the Pareto front (another trial dominates it), "
        f"so its weights were not kept; {listing}",
        2: f"trial 2 of job {job_id} is running: only complete trials on the Pareto front keep "
        f"their weights; {listing}",
        99: f"job {job_id} has no trial 99; {listing}",
    }
    for number, detail in why.items():  # weights but off the front; running; no such trial
        missing = client.get(f"/api/v1/jobs/{job_id}/trials/{number}/model", headers=auth)
        assert (missing.status_code, missing.json()) == (
            404,
            {
                "type": P + "model-not-found",
                "title": "Model not found",
                "status": 404,
                "detail": detail,
                "instance": f"/api/v1/jobs/{job_id}/trials/{number}/model",
            },
        )


def test_unknown_model_format(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    url = f"/api/v1/jobs/{job_id}/trials/1/model"
    response = client.get(url, params={"format": "pt"}, headers=auth)
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "invalid-format",
            "title": "Invalid model format",
            "status": 422,
            "detail": "format: got 'pt'; allowed: safetensors, onnx",
            "instance": url,
            "allowed": ["safetensors", "onnx"],
        },
    )


def test_stored_bytes_that_cannot_be_rebuilt_are_not_exported(
    client: TestClient, auth: dict[str, str], job_id: str
) -> None:
    url = f"/api/v1/jobs/{job_id}/trials/1/model"
    response = client.get(url, params={"format": "onnx"}, headers=auth)
    assert response.status_code == 409
    body = response.json()
    assert body["type"] == P + "model-not-exportable"
    assert body["detail"].startswith(
        f"trial 1 of job {job_id}: its stored weights cannot be exported as ONNX (weights: not a "
        "safetensors blob"
    )
    assert body["detail"].endswith("download format=safetensors instead")
