"""The data behind the dashboard, over HTTP: trial detail, points, history, exports, assets."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from models.costs import count_params
from models.spec import ArchSpec
from service.db.tables import Trial
from tests.service.seed import SeededJob, seed_job
from tests.service.test_dashboard_session import key_id, sign_in

P = "https://paretonas.dev/problems/"


@pytest.fixture
def seeded(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> tuple[SeededJob, dict[str, str]]:
    key = make_key("alice")
    job = seed_job(db_engine, job_id="job_A", owner_id=key_id(db_engine, "alice"), n_trials=120)
    return job, {"Authorization": f"Bearer {key}"}


def test_trial_detail_has_layers_whose_costs_add_up_and_its_curve(
    client: TestClient, seeded: tuple[SeededJob, dict[str, str]]
) -> None:
    job, auth = seeded
    number = job.front[0]
    body = client.get(f"/api/v1/jobs/job_A/trials/{number}", headers=auth).json()
    spec = ArchSpec.from_dict(body["spec"])
    assert sum(layer["params"] for layer in body["layers"]) == body["params"] == count_params(spec)
    assert [layer["path"] for layer in body["layers"]] == ["layers[0]", "layers[1]", "classifier"]
    assert body["layers"][0]["in_shape"] == [1, 8, 8]
    assert body["layers"][-1]["out_shape"] == [1, 1, 10]
    assert [(e["epoch"], e["phase"]) for e in body["curve"]] == [
        (1, "train"),
        (2, "train"),
        (3, "finetune"),
    ]
    assert body["on_front"] is True
    assert body["model_url"] == f"/api/v1/jobs/job_A/trials/{number}/model"
    assert body["model_urls"] == {
        fmt: f"/api/v1/jobs/job_A/trials/{number}/model?format={fmt}"
        for fmt in ("safetensors", "onnx")
    }
    model = client.get(body["model_url"], headers=auth)
    assert model.status_code == 200 and model.content.startswith(b"w")


def test_trial_detail_of_a_dominated_trial_has_no_model(
    client: TestClient, seeded: tuple[SeededJob, dict[str, str]]
) -> None:
    job, auth = seeded
    number = next(n for n in range(120) if n not in job.front)
    body = client.get(f"/api/v1/jobs/job_A/trials/{number}", headers=auth).json()
    assert (body["on_front"], body["model_url"], body["model_urls"]) == (False, None, {})


def test_unknown_trial_is_a_problem(
    client: TestClient, seeded: tuple[SeededJob, dict[str, str]]
) -> None:
    _, auth = seeded
    response = client.get("/api/v1/jobs/job_A/trials/999", headers=auth)
    assert response.status_code == 404
    assert response.json() == {
        "type": P + "trial-not-found",
        "title": "Trial not found",
        "status": 404,
        "detail": "job job_A has no trial 999; list its trials with GET /api/v1/jobs/job_A/trials",
        "instance": "/api/v1/jobs/job_A/trials/999",
    }


def test_points_thin_by_trial_number(
    client: TestClient, seeded: tuple[SeededJob, dict[str, str]]
) -> None:
    job, auth = seeded
    full = client.get("/api/v1/jobs/job_A/points", headers=auth).json()
    assert full["total"] == len(full["number"]) == 120 - job.n_failed
    assert full["stride"] == 1
    assert set(full["state"]) == {"complete", "stopped"}
    assert False in full["feasible"]
    thin = client.get("/api/v1/jobs/job_A/points?limit=50", headers=auth).json()
    stride = math.ceil(full["total"] / 50)
    assert stride > 1 and thin["stride"] == stride
    assert thin["number"] == [n for n in full["number"] if n % stride == 0]
    assert thin["total"] == full["total"] and len(thin["number"]) <= 50
    assert client.get("/api/v1/jobs/job_A/points?limit=0", headers=auth).status_code == 422


def test_history_changes_is_the_same_step_curve(
    client: TestClient, seeded: tuple[SeededJob, dict[str, str]]
) -> None:
    job, auth = seeded
    full = client.get("/api/v1/jobs/job_A/pareto?history=all", headers=auth).json()
    changes = client.get("/api/v1/jobs/job_A/pareto?history=changes", headers=auth).json()
    assert client.get("/api/v1/jobs/job_A/pareto", headers=auth).json() == changes  # default
    assert len(full["history"]) == job.n_complete
    assert len(changes["history"]) < len(full["history"])

    def step(history: list[dict[str, object]], n: int) -> object:
        return [h["hypervolume"] for h in history if int(h["n_complete"]) <= n][-1]  # type: ignore[call-overload]

    for n in range(1, job.n_complete + 1):
        assert step(changes["history"], n) == step(full["history"], n), n
    assert changes["history"][-1] == full["history"][-1]
    assert (
        client.get("/api/v1/jobs/job_A/pareto?history=none", headers=auth).json()["history"] == []
    )
    assert [m["trial_number"] for m in full["members"]] == list(job.front)


def test_exports(client: TestClient, seeded: tuple[SeededJob, dict[str, str]]) -> None:
    job, auth = seeded
    trials_csv = client.get("/api/v1/jobs/job_A/export/trials.csv", headers=auth)
    assert trials_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert trials_csv.headers["content-disposition"] == 'attachment; filename="job_A-trials.csv"'
    rows = list(csv.DictReader(io.StringIO(trials_csv.text)))
    assert [int(r["number"]) for r in rows] == list(range(120))
    page = client.get("/api/v1/jobs/job_A/trials?limit=1", headers=auth).json()["data"][0]
    assert float(rows[0]["val_accuracy"]) == page["val_accuracy"]
    assert json.loads(rows[0]["spec"]) == page["spec"]
    trials_json = client.get("/api/v1/jobs/job_A/export/trials.json", headers=auth).json()
    assert len(trials_json) == 120 and trials_json[0] == page
    front_csv = list(
        csv.DictReader(
            io.StringIO(client.get("/api/v1/jobs/job_A/export/front.csv", headers=auth).text)
        )
    )
    assert [int(r["trial_number"]) for r in front_csv] == list(job.front)
    assert front_csv[0]["layers"].endswith("classifier:full")
    front_json = client.get("/api/v1/jobs/job_A/export/front.json", headers=auth).json()
    pareto = client.get("/api/v1/jobs/job_A/pareto", headers=auth).json()
    assert front_json == pareto["members"]


def test_exports_write_nan_as_null_and_defuse_formulas(
    client: TestClient, seeded: tuple[SeededJob, dict[str, str]], db_engine: Engine
) -> None:
    """PostgreSQL keeps a NaN float (SQLite stores NULL): trials.json wrote a bare NaN, which
    no JSON parser takes. A text cell starting with = + - @ is a formula to a spreadsheet."""
    _, auth = seeded
    with db_engine.begin() as connection:
        connection.execute(update(Trial).where(Trial.job_id == "job_A", Trial.number == 0)
                           .values(train_seconds=float("nan"), error="=HYPERLINK(\"x\")"))
    body = client.get("/api/v1/jobs/job_A/export/trials.json", headers=auth).text
    first = json.loads(body, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))[0]
    assert (first["train_seconds"], first["error"]) == (None, '=HYPERLINK("x")')
    assert first == client.get("/api/v1/jobs/job_A/trials?limit=1", headers=auth).json()["data"][0]
    text = client.get("/api/v1/jobs/job_A/export/trials.csv", headers=auth).text
    row = next(csv.DictReader(io.StringIO(text)))
    assert (row["train_seconds"], row["error"]) == ("", "'=HYPERLINK(\"x\")")
    assert float(row["val_accuracy"]) == first["val_accuracy"]  # numbers stay numbers


def test_exports_stream_past_one_batch(
    client: TestClient, make_key: Callable[[str], str], db_engine: Engine
) -> None:
    key = make_key("alice")
    seed_job(
        db_engine, job_id="job_B", owner_id=key_id(db_engine, "alice"), n_trials=4500, epochs=0
    )
    body = client.get(
        "/api/v1/jobs/job_B/export/trials.json", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert [t["number"] for t in body] == list(range(4500))


def test_pages_embed_the_api_data(
    client: TestClient, seeded: tuple[SeededJob, dict[str, str]], make_key: Callable[[str], str]
) -> None:
    job, auth = seeded
    sign_in(client, make_key("alice2"))
    # alice2 sees none of alice's jobs; sign in as alice through a session of her own key.
    client.cookies.clear()
    sign_in(client, auth["Authorization"].removeprefix("Bearer "))
    html = client.get("/jobs/job_A").text
    embedded = html.split('<script type="application/json" id="pareto-data">')[1].split(
        "</script>"
    )[0]
    api = client.get("/api/v1/jobs/job_A/pareto?history=changes", headers=auth).json()
    assert json.loads(embedded) == api
    trial = client.get(f"/jobs/job_A/trials/{job.front[0]}").text
    detail = client.get(f"/api/v1/jobs/job_A/trials/{job.front[0]}", headers=auth).json()
    assert f'id="params-total">{detail["params"]:,}<' in trial
    assert f'href="{detail["model_url"]}"' in trial
    assert f'id="download-onnx" href="{detail["model_urls"]["onnx"]}"' in trial


def test_assets_come_from_installed_packages(client: TestClient) -> None:
    spec = importlib.util.find_spec("plotly")
    assert spec is not None and spec.submodule_search_locations
    shipped = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    response = client.get("/assets/plotly.min.js")
    assert response.status_code == 200 and response.content == shipped.read_bytes()
    assert response.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/dashboard.css").status_code == 200
    docs, redoc = client.get("/docs").text, client.get("/redoc").text
    for html, asset in (
        (docs, "/assets/docs/swagger-ui-bundle.js"),
        (docs, "/assets/docs/swagger-ui.css"),
        (redoc, "/assets/docs/redoc.standalone.js"),
    ):
        assert asset in html
        assert client.get(asset).status_code == 200
    assert "cdn." not in docs and "cdn." not in redoc
