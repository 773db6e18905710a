"""The schedules page over HTTP (the real app, SQLite and PostgreSQL): the data of
GET /api/v1/schedules, pause / resume as CSRF-checked forms, runs and the compare link."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.service.test_dashboard_session import form_token, sign_in

P = "https://paretonas.dev/problems/"
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


def test_schedules_page_pause_resume_and_runs(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    key = make_key("alice")
    bearer = {"Authorization": f"Bearer {key}"}
    client.app.state.clock = lambda: NOW  # type: ignore[attr-defined]
    body = {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
            "job": {"dataset": "digits", "n_trials": 2}}
    schedule = client.post("/api/v1/schedules", json=body, headers=bearer).json()
    assert client.get("/schedules", follow_redirects=False).headers["location"] == (
        "/signin?next=%2Fschedules"
    )
    sign_in(client, key, next_path="/schedules")
    page = client.get("/schedules")
    assert page.status_code == 200
    row = page.text.split(f'data-schedule="{schedule["id"]}"')[1].split("</tr>")[0]
    assert "At 02:30 every day (Europe/Berlin)" in row
    assert "2026-03-29 03:00 CEST" in row  # the next run, in its zone (spring forward)
    assert "2026-03-29 01:00:00 UTC" in row
    assert ">active<" in row and "no runs yet" in row and 'class="pause"' in row
    url = f"/schedules/{schedule['id']}"
    forged = client.post(f"{url}/pause", data={"csrf_token": "x"}, follow_redirects=False)
    assert (forged.status_code, forged.json()["type"]) == (403, P + "csrf-failed")
    assert client.get(f"/api/v1{url}", headers=bearer).json()["paused"] is False
    paused = client.post(
        f"{url}/pause", data={"csrf_token": form_token(page.text)}, follow_redirects=False
    )
    assert (paused.status_code, paused.headers["location"]) == (
        303, "/schedules?notice=nightly%3A+paused."
    )
    assert client.get(f"/api/v1{url}", headers=bearer).json()["paused"] is True
    page = client.get(paused.headers["location"])
    assert "nightly: paused." in page.text and ">paused<" in page.text
    assert 'class="resume"' in page.text
    run = client.post(f"/api/v1{url}:run", headers=bearer).json()
    page = client.get("/schedules")
    assert f'<a href="/jobs/{run["job_id"]}">{run["job_id"]}</a>' in page.text
    assert f'href="/compare?job={run["job_id"]}"' in page.text
    resumed = client.post(
        f"{url}/resume", data={"csrf_token": form_token(page.text)}, follow_redirects=False
    )
    assert resumed.status_code == 303
    assert client.get(f"/api/v1{url}", headers=bearer).json()["paused"] is False


def test_another_owners_schedule_is_not_shown_nor_paused(
    client: TestClient, make_key: Callable[[str], str]
) -> None:
    bob = {"Authorization": f"Bearer {make_key('bob')}"}
    body = {"name": "bobs", "cron": "0 * * * *", "job": {"dataset": "digits", "n_trials": 2}}
    schedule = client.post("/api/v1/schedules", json=body, headers=bob).json()
    sign_in(client, make_key("alice"), next_path="/schedules")
    page = client.get("/schedules")
    assert schedule["id"] not in page.text and "No schedules." in page.text
    response = client.post(
        f"/schedules/{schedule['id']}/pause", data={"csrf_token": form_token(page.text)}
    )
    assert response.status_code == 404
    assert f"no schedule &#39;{schedule['id']}&#39; among your schedules" in response.text
    assert client.get(f"/api/v1/schedules/{schedule['id']}", headers=bob).json()["paused"] is False
