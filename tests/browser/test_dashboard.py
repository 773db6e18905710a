"""The dashboard in headless Chromium against a real ``paretonas serve`` and a real worker.

The served job was searched by the embedded worker (4 digits trials by default); see conftest.py.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy import insert, select

from service.api.jobs import new_job_id
from service.db.engine import make_engine, write_session
from service.db.tables import ApiKey, Job
from service.keys import create_key
from tests.browser.conftest import ARTIFACTS, ROOT, Served, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FRONT = "Pareto front"


@pytest.fixture(scope="module")
def long_job(served: Served) -> str:
    """A job of alice's that runs for a long time (the cancel test stops it)."""
    body = {"dataset": "digits", "n_trials": 200, "parallelism": 1, "train": {"epochs": 400}}
    return str(served.api("/api/v1/jobs", method="POST", json=body)["id"])


def test_sign_in_wrong_key_and_sign_out(page: Any, served: Served) -> None:
    page.goto(served.base + "/jobs")
    assert page.url == served.base + "/signin?next=%2Fjobs"
    page.fill("#key", "pnas_not-a-key")
    page.click("#signin")
    assert "Unknown or revoked API key" in page.inner_text("#signin-error")
    assert "paretonas_session" not in {c["name"] for c in page.context.cookies()}
    page.fill("#key", served.alice)
    page.click("#signin")
    page.wait_for_url(served.base + "/jobs")
    session = next(c for c in page.context.cookies() if c["name"] == "paretonas_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Lax"
    assert served.job_id in page.inner_text("#jobs")
    page.click("#signout")
    page.wait_for_url(served.base + "/signin")
    assert "paretonas_session" not in {c["name"] for c in page.context.cookies()}
    page.goto(served.base + "/jobs")
    assert page.url.startswith(served.base + "/signin")


def _loneliest_front_point(page: Any) -> dict[str, float]:
    """The front point farthest (in pixels) from every other plotted point, with its page
    coordinates and trial number: hovering it can only show that trial (equal trials overlap)."""
    return page.evaluate(
        """(name) => {
          const gd = document.getElementById('front-plot');
          const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
          const box = gd.getBoundingClientRect();
          const px = (x, y) => [box.left + xa._offset + xa.l2p(xa.d2l(x)),
                                box.top + ya._offset + ya.l2p(ya.d2l(y))];
          const all = gd._fullData.flatMap(t => t.x.map((x, i) => [t.name, i, ...px(x, t.y[i])]));
          const front = gd._fullData.find(t => t.name === name);
          let best = null;
          front.x.forEach((x, i) => {
            const [fx, fy] = px(x, front.y[i]);
            const gap = Math.min(...all.filter(p => !(p[0] === name && p[1] === i))
              .map(p => Math.hypot(p[2] - fx, p[3] - fy)), 1e9);
            if (!best || gap > best.gap) best = { x: fx, y: fy, gap, number: front.customdata[i] };
          });
          return best;
        }""",
        FRONT,
    )


def test_job_page_plots_the_front_with_hover_details(alice: Any, served: Served) -> None:
    page = alice
    pareto = served.api(f"/api/v1/jobs/{served.job_id}/pareto")
    members = sorted(pareto["members"], key=lambda m: (m["params"], m["trial_number"]))
    page.goto(f"{served.base}/jobs/{served.job_id}")
    page.wait_for_function("document.getElementById('cloud-note').textContent.includes('trials')")
    plotted = page.evaluate(
        "(name) => document.getElementById('front-plot').data.find(t => t.name === name).x.length",
        FRONT,
    )
    assert plotted == len(members) >= 1
    page.locator("#front-plot").scroll_into_view_if_needed()
    hover = None
    for _attempt in range(3):  # a redraw (the cloud arriving) can swallow one hover
        point = _loneliest_front_point(page)
        assert point["gap"] > 3, "every front point overlaps another"
        page.mouse.move(0, 0)
        page.mouse.move(point["x"], point["y"], steps=5)
        try:
            hover = page.wait_for_selector(".hoverlayer .hovertext", timeout=10_000)
            break
        except PlaywrightTimeoutError:
            continue
    assert hover is not None, "no hover text after three tries"
    text = hover.text_content()
    member = next(m for m in members if m["trial_number"] == point["number"])
    assert text.startswith(f"trial {member['trial_number']}layers:")
    assert f"params {member['params']:,}" in text
    assert "val acc" in text and "test acc" in text and "layers:" in text
    # The hypervolume history is drawn over whole trial counts: every tick label an integer,
    # the last one at most the complete trials the API reports.
    job = served.api(f"/api/v1/jobs/{served.job_id}")
    ticks = page.evaluate(
        "() => [...document.querySelectorAll('#hv-plot .xtick text')].map(t => t.textContent)"
    )
    assert ticks and all(tick.replace(",", "").isdigit() for tick in ticks), ticks
    assert int(ticks[-1].replace(",", "")) <= job["trials"]["complete"]
    rows = page.locator("#trials tbody tr")
    rows.first.wait_for()
    # The table shows the API's first page: every recorded trial, duplicates and refusals too
    # (those do not count toward n_trials, so there may be more rows than n_trials).
    listed = served.api(f"/api/v1/jobs/{served.job_id}/trials?limit=25")["data"]
    assert rows.count() == len(listed) >= min(25, served.n_trials)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-job.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("PARETONAS_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "dashboard-job.png")
    assert served.blocked == []


def test_another_owners_job_is_not_listed_and_404(alice: Any, served: Served) -> None:
    page = alice
    page.goto(served.base + "/jobs")
    assert served.job_id in page.inner_text("#jobs")
    assert served.bob_job_id not in page.content()
    response = page.goto(f"{served.base}/jobs/{served.bob_job_id}")
    assert response.status == 404
    assert "among your jobs" in page.inner_text("#not-found")


def test_trial_page_layers_add_up_and_the_model_downloads(alice: Any, served: Served) -> None:
    page = alice
    pareto = served.api(f"/api/v1/jobs/{served.job_id}/pareto")
    number = pareto["members"][0]["trial_number"]
    trial = served.api(f"/api/v1/jobs/{served.job_id}/trials/{number}")
    page.goto(f"{served.base}/jobs/{served.job_id}/trials/{number}")
    cells = page.locator("#layers tbody td[data-params]")
    total = sum(int(cells.nth(i).get_attribute("data-params")) for i in range(cells.count()))
    assert total == trial["params"] > 0
    assert cells.count() == len(trial["layers"])
    # Written by the worker: 1 training epoch, then 1 fine-tune epoch for low-rank models.
    lowrank = any(layer["kind"] == "lowrank" for layer in trial["layers"])
    expected = [(1, "train")] + ([(2, "finetune")] if lowrank else [])
    assert [(e["epoch"], e["phase"]) for e in trial["curve"]] == expected
    page.wait_for_selector("#curve-plot .scatterlayer .trace")
    with page.expect_download() as download:
        page.click("#download")
    downloaded = Path(download.value.path()).read_bytes()
    api = served.api(pareto["members"][0]["model_url"])
    assert downloaded == api.content and len(downloaded) > 1000


def test_cancel_needs_the_csrf_token_and_the_pages_follow_live(
    alice: Any, served: Served, long_job: str
) -> None:
    page = alice
    page.goto(f"{served.base}/jobs/{long_job}")
    forged = page.request.post(f"{served.base}/jobs/{long_job}/cancel", form={"x": "1"})
    assert forged.status == 403
    assert served.api(f"/api/v1/jobs/{long_job}")["cancel_requested"] is False
    page.click("#cancel")
    page.wait_for_url(f"{served.base}/jobs/{long_job}?notice=*")
    assert served.api(f"/api/v1/jobs/{long_job}")["cancel_requested"] is True
    # The page follows the job by polling the API until the worker has stopped it.
    page.wait_for_function(
        "document.getElementById('job-status').textContent === 'cancelled'", timeout=60_000
    )
    page.goto(served.base + "/jobs?status=cancelled")
    assert long_job in page.inner_text("#jobs")


def test_compare_overlays_fronts_with_hypervolumes(
    alice: Any, served: Served, long_job: str
) -> None:
    page = alice
    page.goto(f"{served.base}/compare?job={served.job_id}&job={long_job}")
    page.wait_for_selector("#compare-plot .legend .traces")
    names = page.evaluate("() => document.getElementById('compare-plot').data.map(t => t.name)")
    assert len(names) == 2
    assert names[0].startswith(served.job_id) and "HV" in names[0]
    assert names[1].startswith(long_job)


def test_docs_and_redoc_render_offline(alice: Any, served: Served) -> None:
    page = alice
    page.goto(served.base + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "ParetoNAS" in page.inner_text(".swagger-ui .info .title")
    page.goto(served.base + "/redoc")
    page.wait_for_selector("h1")
    assert "ParetoNAS" in page.inner_text("h1")
    # ReDoc's bundle links its "powered by" logo from its CDN; the page renders without it.
    assert [url for url in served.blocked if not url.endswith("/redoc/logo-mini.svg")] == []


def _insert_jobs(served: Served, owner: str, count: int, *, start: datetime) -> list[str]:
    """``count`` finished jobs of the key named ``owner``, one a minute from ``start``."""
    engine = make_engine(served.database_url)
    ids = []
    try:
        with engine.begin() as connection:
            owner_id = connection.execute(
                select(ApiKey.id).where(ApiKey.name == owner)).scalar_one()
            for i in range(count):
                when = start + timedelta(minutes=i)
                ids.append(new_job_id())
                connection.execute(insert(Job).values(
                    id=ids[-1], owner_id=owner_id, status="succeeded", dataset="digits",
                    config_json="{}", n_trials=1, parallelism=1, study_name=f"s-{ids[-1]}",
                    request_hash="x", reference_point_json="null", created_at=when,
                    updated_at=when, finished_at=when))
    finally:
        engine.dispose()
    return ids


def test_jobs_page_keeps_every_row_through_refreshes_and_new_jobs(
    page: Any, served: Served
) -> None:
    """The 2 s refresh re-read at most 100 rows (after two "Older jobs" clicks, rows 101-150
    vanished), and a job created while the page was open pushed one job out of reach of the
    "Older jobs" cursor."""
    engine = make_engine(served.database_url)
    with write_session(engine) as session:
        carol = create_key(session, name="carol").key
    engine.dispose()
    ids = _insert_jobs(served, "carol", 160, start=datetime(2026, 1, 1, tzinfo=UTC))
    sign_in(page, served, key=carol)
    rows = page.locator("#jobs tbody tr")
    assert rows.count() == 50
    for shown in (100, 150):
        page.click("#more")
        page.wait_for_function(f"document.querySelectorAll('#jobs tbody tr').length === {shown}")
    page.wait_for_timeout(2500)  # a refresh has run
    listed = [rows.nth(i).get_attribute("data-job") for i in range(rows.count())]
    assert listed == list(reversed(ids))[:150]
    (newest,) = _insert_jobs(served, "carol", 1, start=datetime(2026, 2, 1, tzinfo=UTC))
    page.wait_for_function(
        f"document.querySelector('#jobs tbody tr').dataset.job === '{newest}'", timeout=10_000)
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 161")
    listed = [rows.nth(i).get_attribute("data-job") for i in range(rows.count())]
    assert listed == [newest, *reversed(ids)]
    assert page.locator("#more").is_hidden()
