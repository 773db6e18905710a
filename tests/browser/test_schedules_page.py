"""The schedules page in headless Chromium against the session's real ``paretonas serve``
(whose scheduler thread runs): create through the API, see it listed, pause it from the page
(a CSRF-checked form), fire a run (``:run``) and see the run's job on the page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.browser.conftest import Served, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_schedule_listed_paused_from_the_page_and_its_run_shown(
    page: Any, served: Served
) -> None:
    body = {
        "name": "nightly digits",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "job": {"dataset": "digits", "n_trials": 1, "train": {"epochs": 1, "finetune_epochs": 0}},
    }
    schedule = served.api("/api/v1/schedules", method="POST", json=body)
    sign_in(page, served, next_path="/schedules")
    page.wait_for_url(served.base + "/schedules")
    row = page.locator(f'tr[data-schedule="{schedule["id"]}"]')
    assert "nightly digits" in row.inner_text()
    assert "At 02:30 every day (Europe/Berlin)" in row.inner_text()
    assert row.locator(".state").inner_text() == "active"
    assert "no runs yet" in row.locator(".runs").inner_text()

    row.locator("button.pause").click()
    page.wait_for_url(f"{served.base}/schedules?*")
    assert page.inner_text("#notice") == "nightly digits: paused."
    row = page.locator(f'tr[data-schedule="{schedule["id"]}"]')
    assert row.locator(".state").inner_text() == "paused"
    shown = served.api(f"/api/v1/schedules/{schedule['id']}")
    assert (shown["paused"], shown["next_run_at"]) == (True, None)

    run = served.api(f"/api/v1/schedules/{schedule['id']}:run", method="POST")
    page.reload()
    row = page.locator(f'tr[data-schedule="{schedule["id"]}"]')
    link = row.locator(f'.runs a[href="/jobs/{run["job_id"]}"]')
    assert link.inner_text() == run["job_id"]
    compare = row.locator("a.compare")
    assert compare.get_attribute("href") == f"/compare?job={run['job_id']}"
    link.click()
    page.wait_for_url(f"{served.base}/jobs/{run['job_id']}")

    # A form without the session's CSRF token is refused (403), and nothing changes.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    forged = httpx.post(f"{served.base}/schedules/{schedule['id']}/resume", cookies=cookies,
                        data={"csrf_token": "forged"}, timeout=30)
    assert forged.status_code == 403
    assert served.api(f"/api/v1/schedules/{schedule['id']}")["paused"] is True
