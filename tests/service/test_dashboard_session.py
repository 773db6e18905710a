"""Dashboard sign-in, sessions and CSRF over HTTP (the real app, SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from service.api import create_app
from service.dashboard.session import SESSION_COOKIE, SIGNIN_COOKIE
from service.db.base import utcnow
from service.db.engine import write_session
from service.db.tables import ApiKey, DashboardSession, Job
from service.settings import Settings
from tests.service.seed import seed_job

P = "https://paretonas.dev/problems/"


def form_token(html: str, name: str = "csrf_token") -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no {name} field in the page"
    return match.group(1)


def sign_in(client: TestClient, key: str, *, next_path: str = "/jobs") -> str:
    """Sign in through the form; returns the session cookie value."""
    page = client.get("/signin")
    response = client.post(
        "/signin",
        data={"key": key, "csrf_token": form_token(page.text), "next": next_path},
        follow_redirects=False,
    )
    assert (response.status_code, response.headers["location"]) == (303, next_path)
    return response.cookies[SESSION_COOKIE]


def replace_cookie(client: TestClient, value: str) -> None:
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, value)


def key_id(engine: Engine, name: str) -> int:
    with write_session(engine) as session:
        return session.scalars(select(ApiKey.id).where(ApiKey.name == name)).one()


def _sessions(engine: Engine) -> int:
    with write_session(engine) as session:
        return session.scalar(select(func.count()).select_from(DashboardSession)) or 0


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/jobs/job_X?x=1", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/signin?next=%2Fjobs%2Fjob_X%3Fx%3D1",
    )
    assert client.get("/", follow_redirects=False).headers["location"] == "/jobs"


@pytest.mark.parametrize(("referer", "back"), [
    ("http://testserver/jobs/job_X?notice=hi", "/signin?next=%2Fjobs%2Fjob_X%3Fnotice%3Dhi"),
    ("https://elsewhere.example/jobs/job_X", "/signin?next=%2Fjobs"),
    (None, "/signin?next=%2Fjobs"),
])
def test_a_form_posted_without_a_session_returns_to_its_page(
    client: TestClient, referer: str | None, back: str
) -> None:
    """A cancel or pause form sent after the session expired: after signing in the browser
    went to a GET of the POST-only route (a 405)."""
    headers = {"referer": referer} if referer else {}
    for route in ("/jobs/job_X/cancel", "/schedules/sch_X/pause", "/signout"):
        response = client.post(route, data={"csrf_token": "t"}, headers=headers,
                               follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, back), route


def test_sign_in_sets_a_strict_session_cookie(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    key = make_key("alice")
    page = client.get("/signin?next=/compare")
    assert page.status_code == 200
    assert SIGNIN_COOKIE in page.cookies
    response = client.post(
        "/signin",
        data={"key": key, "csrf_token": form_token(page.text), "next": "/compare"},
        follow_redirects=False,
    )
    assert (response.status_code, response.headers["location"]) == (303, "/compare")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the HTTPS test
    assert _sessions(db_engine) == 1
    jobs = client.get("/jobs")
    assert jobs.status_code == 200 and ">alice</span>" in jobs.text


def test_wrong_key_shows_an_error_and_sets_no_session(
    client: TestClient, db_engine: Engine
) -> None:
    page = client.get("/signin")
    response = client.post(
        "/signin",
        data={"key": "pnas_wrong", "csrf_token": form_token(page.text), "next": "/jobs"},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert "Unknown or revoked API key" in response.text
    assert SESSION_COOKIE not in response.cookies
    assert _sessions(db_engine) == 0


def test_sign_in_form_from_elsewhere_is_refused(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    key = make_key("alice")
    response = client.post(
        "/signin",
        data={"key": key, "csrf_token": "forged", "next": "/jobs"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert SESSION_COOKIE not in response.cookies
    assert _sessions(db_engine) == 0


def test_next_never_leaves_the_site(client: TestClient, make_key: Callable[[str], str]) -> None:
    page = client.get("/signin")
    response = client.post(
        "/signin",
        data={
            "key": make_key("alice"),
            "csrf_token": form_token(page.text),
            "next": "//evil.example/x",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/jobs"


def test_https_sets_a_secure_cookie(settings: Settings, make_key: Callable[[str], str]) -> None:
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get("/signin")
        response = client.post(
            "/signin",
            data={"key": make_key("alice"), "csrf_token": form_token(page.text), "next": "/jobs"},
            follow_redirects=False,
        )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_sign_out_ends_the_session_even_for_a_copied_cookie(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    cookie = sign_in(client, make_key("alice"))
    jobs = client.get("/jobs")
    refused = client.post("/signout", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert refused.json()["type"] == P + "csrf-failed"
    response = client.post(
        "/signout", data={"csrf_token": form_token(jobs.text)}, follow_redirects=False
    )
    assert (response.status_code, response.headers["location"]) == (303, "/signin")
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
    assert _sessions(db_engine) == 0
    replace_cookie(client, cookie)  # the old cookie, replayed
    assert client.get("/jobs", follow_redirects=False).status_code == 303


def test_tampered_or_expired_sessions_are_refused(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    cookie = sign_in(client, make_key("alice"))
    replace_cookie(client, cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB"))
    assert client.get("/jobs", follow_redirects=False).status_code == 303
    replace_cookie(client, cookie)
    assert client.get("/jobs", follow_redirects=False).status_code == 200
    with write_session(db_engine) as session:
        session.execute(update(DashboardSession).values(expires_at=utcnow()))
    assert client.get("/jobs", follow_redirects=False).status_code == 303


def test_a_revoked_key_ends_its_sessions(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    sign_in(client, make_key("alice"))
    with write_session(db_engine) as session:
        session.execute(update(ApiKey).values(revoked_at=utcnow()))
    assert client.get("/jobs", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/jobs").status_code == 401


def test_the_api_reads_with_the_session_but_never_writes(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    sign_in(client, make_key("alice"))
    seeded = seed_job(
        db_engine, job_id="job_A", owner_id=key_id(db_engine, "alice"), n_trials=5, status="queued"
    )
    listed = client.get("/api/v1/jobs")
    assert listed.status_code == 200 and [j["id"] for j in listed.json()["data"]] == ["job_A"]
    assert client.get("/api/v1/jobs/job_A/pareto").json()["job_id"] == seeded.job_id
    refused = client.post("/api/v1/jobs/job_A:cancel")
    assert refused.status_code == 401
    assert refused.json()["type"] == P + "unauthorized"


def test_cancel_from_the_page_needs_the_csrf_token(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    sign_in(client, make_key("alice"))
    seed_job(
        db_engine, job_id="job_A", owner_id=key_id(db_engine, "alice"), n_trials=4, status="queued"
    )
    page = client.get("/jobs/job_A")
    assert 'id="cancel"' in page.text
    forged = client.post("/jobs/job_A/cancel", data={}, follow_redirects=False)
    assert forged.status_code == 403
    assert forged.json()["type"] == P + "csrf-failed"
    wrong = client.post("/jobs/job_A/cancel", data={"csrf_token": "x"}, follow_redirects=False)
    assert wrong.status_code == 403
    with write_session(db_engine) as session:
        assert session.get(Job, "job_A").status == "queued"  # type: ignore[union-attr]
    done = client.post(
        "/jobs/job_A/cancel", data={"csrf_token": form_token(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/jobs/job_A?notice=Cancelled")
    with write_session(db_engine) as session:
        assert session.get(Job, "job_A").status == "cancelled"  # type: ignore[union-attr]
    again = client.post(
        "/jobs/job_A/cancel", data={"csrf_token": form_token(page.text)}, follow_redirects=True
    )
    assert "already cancelled" in again.text


def test_another_owners_job_is_404_and_not_listed(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    make_key("bob")
    sign_in(client, make_key("alice"))
    seed_job(db_engine, job_id="job_ALICE", owner_id=key_id(db_engine, "alice"), n_trials=3)
    seed_job(db_engine, job_id="job_BOB", owner_id=key_id(db_engine, "bob"), n_trials=3)
    jobs = client.get("/jobs").text
    assert "job_ALICE" in jobs and "job_BOB" not in jobs
    for path in ("/jobs/job_BOB", "/jobs/job_BOB/trials/0"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "no job &#39;job_BOB&#39; among your jobs" in response.text
    csrf = form_token(client.get("/jobs").text)
    assert client.post("/jobs/job_BOB/cancel", data={"csrf_token": csrf}).status_code == 404
    assert client.get("/api/v1/jobs/job_BOB/trials/0").status_code == 404
    compare = client.get("/compare?job=job_ALICE&job=job_BOB").text
    assert "Not among your jobs: job_BOB" in compare


def test_a_trial_number_no_trial_can_have_is_a_404_page(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    """Beyond an INTEGER column (it was a 500 on PostgreSQL: integer out of range)."""
    sign_in(client, make_key("alice"))
    seed_job(db_engine, job_id="job_ALICE", owner_id=key_id(db_engine, "alice"), n_trials=3)
    for number in ("2147483648", "463355402936", "-1"):
        response = client.get(f"/jobs/job_ALICE/trials/{number}")
        assert response.status_code == 404, number
        assert f"job job_ALICE has no trial {number}" in response.text
