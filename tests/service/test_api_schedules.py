"""/api/v1/schedules on both backends: exact status codes, problem bodies, keyset pages, :run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from service.settings import Settings

P = "https://paretonas.dev/problems/"
SCHEDULES = "/api/v1/schedules"
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
JOB = {"dataset": "digits", "n_trials": 4}


def _at(client: TestClient, now: datetime) -> None:
    client.app.state.clock = lambda: now  # type: ignore[attr-defined]


def _create(client: TestClient, auth: dict[str, str], **body: object) -> dict[str, object]:
    data = {"name": "nightly", "cron": "30 2 * * *", "job": JOB} | body
    response = client.post(SCHEDULES, json=data, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_shows_next_due_in_zone_and_utc(client: TestClient, auth: dict[str, str]) -> None:
    _at(client, NOW)
    body = {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "job": JOB}
    response = client.post(SCHEDULES, json=body, headers=auth)
    assert response.status_code == 201
    schedule = response.json()
    assert response.headers["location"] == f"{SCHEDULES}/{schedule['id']}"
    assert schedule["id"].startswith("sch_") and len(schedule["id"]) == 30
    assert {k: v for k, v in schedule.items() if k not in ("id", "created_at", "updated_at")} == {
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "description": "At 02:30 every day (Europe/Berlin)",
        "job": JOB,
        "overlap": "skip",
        "warm_start": "none",
        "paused": False,
        # the spring-forward night: 02:30 does not exist, the run is at 03:00 CEST
        "next_run_at": "2026-03-29T03:00:00+02:00",
        "next_run_at_utc": "2026-03-29T01:00:00Z",
        "last_run": None,
        "job_ids": [],
    }
    shown = client.get(f"{SCHEDULES}/{schedule['id']}", headers=auth)
    assert (shown.status_code, shown.json()) == (200, schedule)


def test_idempotency_key_replays_and_conflicts(client: TestClient, auth: dict[str, str]) -> None:
    body = {"name": "n", "cron": "0 * * * *", "job": JOB}
    headers = auth | {"Idempotency-Key": "k-1"}
    first = client.post(SCHEDULES, json=body, headers=headers)
    again = client.post(SCHEDULES, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    other = client.post(SCHEDULES, json=body | {"cron": "5 * * * *"}, headers=headers)
    assert other.status_code == 409
    assert other.json() == {
        "type": P + "idempotency-conflict",
        "title": "Idempotency key reused with a different body",
        "status": 409,
        "detail": f"Idempotency-Key 'k-1' was used for schedule {first.json()['id']} with a "
        "different body; send a new key for a new schedule",
        "instance": SCHEDULES,
        "schedule_id": first.json()["id"],
    }
    assert len(client.get(SCHEDULES, headers=auth).json()["data"]) == 1


def test_a_long_conflicting_key_is_clipped_in_the_detail(
    client: TestClient, auth: dict[str, str]
) -> None:
    """As for POST /jobs (one lookup serves both): the key is quoted cut to 64 characters."""
    body = {"name": "n", "cron": "0 * * * *", "job": JOB}
    headers = auth | {"Idempotency-Key": "k" * 200}
    first = client.post(SCHEDULES, json=body, headers=headers)
    other = client.post(SCHEDULES, json=body | {"name": "m"}, headers=headers)
    assert (first.status_code, other.status_code) == (201, 409)
    assert other.json()["detail"] == (
        f"Idempotency-Key '{'k' * 63}... (202 characters) was used for schedule "
        f"{first.json()['id']} with a different body; send a new key for a new schedule"
    )


def test_bad_cron_and_zone_name_field_and_value(client: TestClient, auth: dict[str, str]) -> None:
    bad_cron = client.post(
        SCHEDULES, json={"name": "n", "cron": "61 2 * * *", "job": JOB}, headers=auth
    )
    assert bad_cron.status_code == 422
    assert bad_cron.headers["content-type"] == "application/problem+json"
    assert bad_cron.json() == {
        "type": P + "invalid-cron",
        "title": "Invalid cron expression",
        "status": 422,
        "detail": "cron: got '61 2 * * *': Bad minute; use five fields: minute hour "
        "day-of-month month day-of-week, e.g. '30 2 * * *'",
        "instance": SCHEDULES,
        "path": "cron",
        "value": "61 2 * * *",
    }
    bad_zone = client.post(
        SCHEDULES,
        json={"name": "n", "cron": "0 * * * *", "timezone": "Europe/Atlantis", "job": JOB},
        headers=auth,
    )
    assert bad_zone.status_code == 422
    assert bad_zone.json() == {
        "type": P + "invalid-timezone",
        "title": "Invalid time zone",
        "status": 422,
        "detail": "timezone: got 'Europe/Atlantis'; use an IANA time zone name such as 'UTC', "
        "'Europe/Berlin' or 'America/New_York'",
        "instance": SCHEDULES,
        "path": "timezone",
        "value": "Europe/Atlantis",
    }
    assert client.get(SCHEDULES, headers=auth).json()["data"] == []


def test_template_refused_exactly_as_post_jobs(client: TestClient, auth: dict[str, str]) -> None:
    for template in (
        {"dataset": "imagenet"},
        {"dataset": "digits", "n_trials": 501},
        {"dataset": "digits", "sampler": "grid"},
        {"dataset": "digits", "space": {"depth": [9]}},
    ):
        job = client.post("/api/v1/jobs", json=template, headers=auth)
        schedule = client.post(
            SCHEDULES, json={"name": "n", "cron": "0 * * * *", "job": template}, headers=auth
        )
        assert job.status_code == schedule.status_code == 422, template
        job_body, schedule_body = job.json(), schedule.json()
        assert job_body.pop("instance") == "/api/v1/jobs"
        assert schedule_body.pop("instance") == SCHEDULES
        assert schedule_body == job_body
    typed = client.post(
        SCHEDULES, json={"name": "n", "cron": "0 * * * *", "job": {"n_trials": 3}}, headers=auth
    )
    assert typed.status_code == 422
    assert typed.json()["errors"] == [
        {"path": "body.job.dataset", "message": "Field required"}
    ]
    assert client.get(SCHEDULES, headers=auth).json()["data"] == []


def test_list_keyset_pages_and_owners(
    client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    ids = [str(_create(client, auth, name=f"s{i}")["id"]) for i in range(3)]
    first = client.get(SCHEDULES, params={"limit": 2}, headers=auth).json()
    assert [s["id"] for s in first["data"]] == ids[::-1][:2]
    second = client.get(
        SCHEDULES, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth
    ).json()
    assert [s["id"] for s in second["data"]] == [ids[0]]
    assert second["next_cursor"] is None
    bob = {"Authorization": f"Bearer {make_key('bob')}"}
    assert client.get(SCHEDULES, headers=bob).json() == {"data": [], "next_cursor": None}
    foreign = client.get(f"{SCHEDULES}/{ids[0]}", headers=bob)
    assert foreign.status_code == 404
    assert foreign.json() == {
        "type": P + "schedule-not-found",
        "title": "Schedule not found",
        "status": 404,
        "detail": f"no schedule {ids[0]!r} among your schedules; list them with "
        "GET /api/v1/schedules",
        "instance": f"{SCHEDULES}/{ids[0]}",
    }
    for method in ("patch", "delete"):
        kwargs = {"json": {"paused": True}} if method == "patch" else {}
        assert getattr(client, method)(
            f"{SCHEDULES}/{ids[0]}", headers=bob, **kwargs
        ).status_code == 404
    assert client.post(f"{SCHEDULES}/{ids[0]}:run", headers=bob).status_code == 404
    assert client.get(SCHEDULES).status_code == 401
    bad = client.get(SCHEDULES, params={"cursor": "nope"}, headers=auth)
    assert (bad.status_code, bad.json()["type"]) == (422, P + "invalid-cursor")


def test_patch_pause_resume_and_retime(client: TestClient, auth: dict[str, str]) -> None:
    _at(client, NOW)
    schedule = _create(client, auth, cron="0 9 * * *", timezone="America/New_York")
    url = f"{SCHEDULES}/{schedule['id']}"
    assert schedule["next_run_at"] == "2026-03-28T09:00:00-04:00"
    paused = client.patch(url, json={"paused": True}, headers=auth)
    assert paused.status_code == 200
    assert (paused.json()["paused"], paused.json()["next_run_at"]) == (True, None)
    _at(client, datetime(2026, 4, 2, 20, 0, tzinfo=UTC))
    resumed = client.patch(url, json={"paused": False}, headers=auth).json()
    assert resumed["next_run_at_utc"] == "2026-04-03T13:00:00Z"  # from now, no catch-up
    retimed = client.patch(
        url, json={"cron": "15 3 * * 0", "timezone": "Asia/Tokyo", "name": "weekly"}, headers=auth
    ).json()
    assert (retimed["name"], retimed["description"]) == (
        "weekly",
        "At 03:15 on Sunday (Asia/Tokyo)",
    )
    assert retimed["next_run_at"] == "2026-04-05T03:15:00+09:00"
    job = client.patch(url, json={"job": {"dataset": "digits", "n_trials": 7}}, headers=auth)
    assert job.json()["job"] == {"dataset": "digits", "n_trials": 7}
    assert client.patch(url, json={"cron": "* * *"}, headers=auth).json()["type"] == (
        P + "invalid-cron"
    )
    refused = client.patch(url, json={"job": {"dataset": "imagenet"}}, headers=auth)
    assert (refused.status_code, refused.json()["type"]) == (422, P + "unknown-dataset")
    nulled = client.patch(url, json={"cron": None}, headers=auth)
    assert (nulled.status_code, nulled.json()["detail"]) == (
        422,
        "cron: null; send a value or leave the field out",
    )
    assert client.get(url, headers=auth).json()["job"] == {"dataset": "digits", "n_trials": 7}


def test_run_now_then_delete_keeps_the_job(client: TestClient, auth: dict[str, str]) -> None:
    schedule = _create(client, auth)
    url = f"{SCHEDULES}/{schedule['id']}"
    response = client.post(f"{url}:run", headers=auth)
    assert response.status_code == 202
    run = response.json()
    assert (run["trigger"], run["status"], run["reason"], run["fired_by"]) == (
        "manual", "started", None, "api"
    )
    job = client.get(f"/api/v1/jobs/{run['job_id']}", headers=auth)
    assert (job.status_code, job.json()["status"], job.json()["n_trials"]) == (200, "queued", 4)
    second = client.post(f"{url}:run", headers=auth).json()  # manual runs ignore overlap=skip
    shown = client.get(url, headers=auth).json()
    assert shown["job_ids"] == [second["job_id"], run["job_id"]]
    assert shown["last_run"] == second
    runs = client.get(f"{url}/runs", params={"limit": 1}, headers=auth).json()
    assert [r["id"] for r in runs["data"]] == [second["id"]]
    older = client.get(f"{url}/runs", params={"cursor": runs["next_cursor"]}, headers=auth).json()
    assert (older["data"], older["next_cursor"]) == ([run], None)
    assert client.delete(url, headers=auth).status_code == 204
    assert client.get(url, headers=auth).status_code == 404
    assert client.get(f"/api/v1/jobs/{run['job_id']}", headers=auth).status_code == 200


def test_run_that_cannot_start_is_recorded_failed(
    client: TestClient, auth: dict[str, str], settings: Settings
) -> None:
    schedule = _create(client, auth, job={"dataset": "digits", "n_trials": 400})
    url = f"{SCHEDULES}/{schedule['id']}"
    settings.limits.max_trials = 100  # an operator lowered the limit after creation
    response = client.post(f"{url}:run", headers=auth)
    assert response.status_code == 422
    body = response.json()
    reason = (
        "limit-exceeded: n_trials: got 400; this service allows at most 100 per job "
        "(operators raise PARETONAS_LIMITS__MAX_TRIALS)"
    )
    assert body == {
        "type": P + "run-failed",
        "title": "The run could not start",
        "status": 422,
        "detail": f"schedule {schedule['id']}: the run could not start: {reason}",
        "instance": f"{url}:run",
        "run_id": body["run_id"],
    }
    runs = client.get(f"{url}/runs", headers=auth).json()["data"]
    assert [(r["id"], r["status"], r["reason"], r["job_id"]) for r in runs] == [
        (body["run_id"], "failed", reason, None)
    ]
    assert client.get("/api/v1/jobs", headers=auth).json()["data"] == []
