"""Issue 18's hostile inputs, each on SQLite and PostgreSQL: the exact status and problem body.

Every case here answered 500 (or 202) before: cursors with bad offsets or timestamps, huge trial
numbers, NUL bytes, deep JSON, huge seeds, unbounded training budgets, large bodies, echoed values.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

P = "https://paretonas.dev/problems/"
JOBS = "/api/v1/jobs"


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _job(client: TestClient, auth: dict[str, str], **body: Any) -> str:
    response = client.post(JOBS, json={"dataset": "digits", "n_trials": 4, **body}, headers=auth)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ('{"offset":"abc"}', "'abc'"),
        ('{"offset":null}', "None"),
        ('{"offset":[1]}', "[1]"),
        ('{"offset":NaN}', "nan"),
        ('{"offset":1e400}', "inf"),
        ('{"offset":true}', "True"),
        ('{"offset":-1}', "-1"),
        ('{"offset":9223372036854775808}', "9223372036854775808"),
        ('{"offset":1000000000000000000000000000000}', "1000000000000000000000000000000"),
    ],
)
def test_trials_cursor_with_a_bad_offset(
    client: TestClient, auth: dict[str, str], raw: str, shown: str
) -> None:
    job_id = _job(client, auth)
    token = _token(raw)
    response = client.get(f"{JOBS}/{job_id}/trials", params={"cursor": token}, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": P + "invalid-cursor",
        "title": "Invalid cursor",
        "status": 422,
        "detail": f"cursor: got {token!r} (its offset {shown} is not an integer in "
        "[0, 2147483647]); pass the next_cursor of the previous page unchanged",
        "instance": f"{JOBS}/{job_id}/trials",
        "path": "query.cursor",
    }


@pytest.mark.parametrize(
    ("created_at", "why"),
    [
        ("0001-01-01T00:00:00+14:00", "created_at '0001-01-01T00:00:00+14:00'"),
        ("9999-12-31T23:59:59-14:00", "created_at '9999-12-31T23:59:59-14:00'"),
        ("2026-01-01T00:00:00", "created_at '2026-01-01T00:00:00'"),
    ],
)
def test_jobs_cursor_with_a_bad_timestamp(
    client: TestClient, auth: dict[str, str], created_at: str, why: str
) -> None:
    token = _token(json.dumps({"created_at": created_at, "id": "job_x"}))
    response = client.get(JOBS, params={"cursor": token}, headers=auth)
    body = response.json()
    assert (response.status_code, body["type"], body["path"]) == (
        422,
        P + "invalid-cursor",
        "query.cursor",
    )
    assert body["detail"].endswith(
        f"(its {why} is not an ISO 8601 time with a UTC offset within years 1 to 9999); pass "
        "the next_cursor of the previous page unchanged"
    )


def test_jobs_cursor_id_with_a_nul_byte(client: TestClient, auth: dict[str, str]) -> None:
    token = _token(json.dumps({"created_at": "2026-01-01T00:00:00+00:00", "id": "job_\x00abc"}))
    response = client.get(JOBS, params={"cursor": token}, headers=auth)
    assert response.status_code == 422
    assert response.json()["type"] == P + "invalid-cursor"
    assert "(its id 'job_\\x00abc' is not an id)" in response.json()["detail"]


SCHEDULES = "/api/v1/schedules"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"created_at": "2026-01-01T00:00:00+00:00", "id": "sch_\x00"}, "its id 'sch_\\x00'"),
        ({"created_at": "2026-01-01T00:00:00+00:00", "id": "\ud800"}, "its id '\\ud800'"),
        ({"created_at": "2026-01-01T00:00:00+00:00", "id": 7}, "its id 7"),
        ({"created_at": "0001-01-01T00:00:00+14:00", "id": "sch_x"}, "its created_at '0001-"),
        ({"created_at": "9999-12-31T23:59:59-14:00", "id": "sch_x"}, "its created_at '9999-"),
    ],
)
def test_schedules_cursor_checked_like_the_jobs_cursor(
    client: TestClient, auth: dict[str, str], data: dict[str, Any], why: str
) -> None:
    """A NUL was a 500 on PostgreSQL, a lone surrogate and the out-of-range times on both."""
    for url in (SCHEDULES, JOBS):
        token = _token(json.dumps(data))
        response = client.get(url, params={"cursor": token}, headers=auth)
        assert response.status_code == 422, (url, response.text)
        body = response.json()
        assert (body["type"], body["path"]) == (P + "invalid-cursor", "query.cursor")
        assert why in body["detail"], body["detail"]


@pytest.mark.parametrize(
    ("raw", "shown"), [('{"id":true}', "True"), ('{"id":1180591620717411303424}',
                                                  "1180591620717411303424"), ('{"id":-1}', "-1")]
)
def test_schedule_runs_cursor_with_a_bad_id(
    client: TestClient, auth: dict[str, str], raw: str, shown: str
) -> None:
    """true and 2**70 were 500s on both backends (a bool passed the int check)."""
    body = {"name": "nightly", "cron": "30 2 * * *", "timezone": "UTC",
            "job": {"dataset": "digits", "n_trials": 2}}
    created = client.post(SCHEDULES, json=body, headers=auth)
    assert created.status_code == 201, created.text
    token = _token(raw)
    url = f"{SCHEDULES}/{created.json()['id']}/runs"
    response = client.get(url, params={"cursor": token}, headers=auth)
    assert (response.status_code, response.json()["detail"]) == (
        422,
        f"cursor: got {token!r} (its id {shown} is not an integer in [0, 2147483647]); pass the "
        "next_cursor of the previous page unchanged",
    )


def test_a_nul_byte_in_a_job_id_is_not_found(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get(f"{JOBS}/job_%00abc", headers=auth)
    assert (response.status_code, response.json()) == (
        404,
        {
            "type": P + "job-not-found",
            "title": "Job not found",
            "status": 404,
            "detail": "no job 'job_\\x00abc' among your jobs; list them with GET /api/v1/jobs",
            "instance": f"{JOBS}/job_\x00abc",
        },
    )


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/runs"), ("PATCH", ""), ("DELETE", "")]
)
def test_a_schedule_id_that_cannot_be_one_is_not_found(
    client: TestClient, auth: dict[str, str], method: str, suffix: str
) -> None:
    """A NUL byte was a 500 on PostgreSQL; a long id is echoed cut short."""
    for raw, shown in (("sch_%00abc", "'sch_\\x00abc'"), ("x" * 5000, "'" + "x" * 61)):
        body = {"paused": True} if method == "PATCH" else None
        response = client.request(method, f"/api/v1/schedules/{raw}{suffix}", json=body,
                                  headers=auth)
        assert response.status_code == 404, (method, suffix, raw[:10])
        assert response.json()["type"] == P + "schedule-not-found"
        assert response.json()["detail"].startswith(f"no schedule {shown}")
        assert len(response.json()["detail"]) < 250


@pytest.mark.parametrize("field", ["name", "cron", "timezone"])
def test_a_nul_byte_in_a_schedule_field_is_refused(
    client: TestClient, auth: dict[str, str], field: str
) -> None:
    """Stored as sent, and PostgreSQL text cannot hold a NUL: it was a 500 there."""
    body = {"name": "nightly", "cron": "30 2 * * *", "timezone": "UTC",
            "job": {"dataset": "digits", "n_trials": 2}}
    created = client.post("/api/v1/schedules", json=body, headers=auth)
    assert created.status_code == 201, created.text
    detail = f"body.{field}: Value error, contains a NUL byte (\\u0000); remove it"
    for method, url in (("POST", "/api/v1/schedules"),
                        ("PATCH", f"/api/v1/schedules/{created.json()['id']}")):
        sent = {**body, field: body[field] + "\x00"} if method == "POST" else {field: "a\x00"}
        response = client.request(method, url, json=sent, headers=auth)
        assert (response.status_code, response.json()["detail"]) == (422, detail), method


def test_a_long_path_is_echoed_cut_short(client: TestClient, auth: dict[str, str]) -> None:
    """The id in ``detail`` and the path in ``instance`` (a 10 KB id came back in a 10 KB 404)."""
    path = f"{JOBS}/{'j' * 10_000}/pareto"
    response = client.get(path, headers=auth)
    body = response.json()
    assert (response.status_code, body["type"]) == (404, P + "job-not-found")
    assert body["instance"] == f"{path[:200]}... ({len(path)} characters)"
    assert len(response.content) < 1000


def test_a_nul_byte_in_the_query_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get(f"{JOBS}?cursor=ab%00c", headers=auth)
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "validation-error",
            "title": "Invalid request",
            "status": 422,
            "detail": "query parameter 'cursor': contains a NUL byte (%00); remove it",
            "instance": JOBS,
            "errors": [{"path": "query.cursor", "message": "NUL byte not allowed"}],
        },
    )


@pytest.mark.parametrize("route", ["trials/{n}/model", "trials/{n}"])
@pytest.mark.parametrize("number", ["2147483648", "9223372036854775808", "99999999999999999999"])
def test_huge_trial_numbers(
    client: TestClient, auth: dict[str, str], number: str, route: str
) -> None:
    """Before the bound, /trials/{n} answered 500 on PostgreSQL (integer out of range): the
    stateful fuzz phase found it."""
    job_id = _job(client, auth)
    response = client.get(f"{JOBS}/{job_id}/{route.format(n=number)}", headers=auth)
    assert response.status_code == 422
    body = response.json()
    assert (body["type"], body["errors"][0]["path"]) == (P + "validation-error", "path.number")
    assert body["detail"] == "path.number: Input should be less than or equal to 2147483647"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: {"dataset": "digits", "space": _nested(256)}, id="space-256-deep"),
        pytest.param(lambda: [_nested(899)], id="body-900-deep"),
    ],
)
def test_deep_json_is_refused_before_parsing(
    client: TestClient, auth: dict[str, str], body: Any
) -> None:
    data = body()
    depth = 257 if isinstance(data, dict) else 900
    content = json.dumps(data)
    response = client.post(
        JOBS, content=content, headers={**auth, "Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "json-too-deep",
            "title": "JSON nested too deeply",
            "status": 422,
            "detail": f"body: JSON nested {depth} levels deep; at most 32 allowed "
            "(operators: PARETONAS_MAX_JSON_DEPTH)",
            "instance": JOBS,
            "path": "body",
            "limit": 32,
        },
    )


def test_brackets_inside_strings_do_not_count() -> None:
    from service.api.guards import json_depth

    assert json_depth(b'{"a": "[[[[{{{{\\"]]]]", "b": [[1]]}') == 3
    assert json_depth(b"17") == 0


def test_huge_seeds(client: TestClient, auth: dict[str, str]) -> None:
    top = client.post(JOBS, json={"dataset": "digits", "seed": 10**30}, headers=auth)
    assert top.status_code == 422
    assert top.json()["detail"] == "body.seed: Input should be less than or equal to 4294967295"
    nested = client.post(JOBS, json={"dataset": "digits", "train": {"seed": 10**30}}, headers=auth)
    assert (nested.status_code, nested.json()) == (
        422,
        {
            "type": P + "invalid-search-space",
            "title": "Invalid search space",
            "status": 422,
            "detail": f"train.seed: got {10**30}; must be an integer in [0, 4294967295]",
            "instance": JOBS,
            "path": "train.seed",
        },
    )


@pytest.mark.parametrize(
    ("train", "path", "value", "limit", "setting", "what"),
    [
        (
            {"epochs": 10**9},
            "train.epochs",
            10**9,
            500,
            "MAX_EPOCHS",
            "this service allows at most 500 per trial",
        ),
        (
            {"epochs": 100_000},
            "train.epochs",
            100_000,
            500,
            "MAX_EPOCHS",
            "this service allows at most 500 per trial",
        ),
        (
            {"finetune_epochs": 10**9},
            "train.finetune_epochs",
            10**9,
            100,
            "MAX_FINETUNE_EPOCHS",
            "this service allows at most 100 per trial",
        ),
        (
            {"batch_size": 10**9},
            "train.batch_size",
            10**9,
            4096,
            "MAX_BATCH_SIZE",
            "this service allows at most 4096 per trial",
        ),
        (
            {"lr": 1e300},
            "train.lr",
            1e300,
            10.0,
            "MAX_LR",
            "this service allows a learning rate of at most 10.0",
        ),
        (
            {"lr": 1e-12},
            "train.lr",
            1e-12,
            1e-7,
            "MIN_LR",
            "this service allows a learning rate of at least 1e-07",
        ),
    ],
)
def test_training_budget_limits(
    client: TestClient,
    auth: dict[str, str],
    train: dict[str, Any],
    path: str,
    value: object,
    limit: object,
    setting: str,
    what: str,
) -> None:
    response = client.post(JOBS, json={"dataset": "digits", "train": train}, headers=auth)
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "limit-exceeded",
            "title": "Limit exceeded",
            "status": 422,
            "detail": f"{path}: got {value!r}; {what} "
            f"(operators raise PARETONAS_LIMITS__{setting})",
            "instance": JOBS,
            "path": path,
            "limit": limit,
            "setting": f"PARETONAS_LIMITS__{setting}",
        },
    )


# A depth-2 MLP of 128 x 1 channels on digits' 8 x 8 pixels: full layers 64 -> 8192 -> 8192 -> 10
# features: (64 * 8192 + 8192) + (8192 * 8192 + 8192) + (8192 * 10 + 10) = 67,731,466 parameters,
# under search's own 100 M cap, over the service's 50 M default.
WIDE_MLP = {"depth": 2, "base_channels": 128, "multipliers": [1], "kinds": ["full"]}


def test_largest_candidate_parameters_limit(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(JOBS, json={"dataset": "digits", "space": WIDE_MLP}, headers=auth)
    assert (response.status_code, response.json()) == (
        422,
        {
            "type": P + "limit-exceeded",
            "title": "Limit exceeded",
            "status": 422,
            "detail": "space: got 67731466; its largest architecture has 67731466 parameters on "
            "input (1, 8, 8); this service allows at most 50000000 (lower depth, base_channels "
            "or multipliers) (operators raise PARETONAS_LIMITS__MAX_PARAMS)",
            "instance": JOBS,
            "path": "space",
            "limit": 50_000_000,
            "setting": "PARETONAS_LIMITS__MAX_PARAMS",
        },
    )


# Two 1x1 convolutions of 256 x 16 = 4096 channels on 8 x 8 pixels (the second pooled to 4 x 4),
# straight into the classifier: 4096 * 4096 * 64 + 4096 * 64 (+ 64 * 4096 * 10 ...) MACs per
# sample, ~1.07 G; x batch 4096 = 4.4e12, over the 2e12 default; 17.4 M parameters pass.
HEAVY_CNN = {
    "backbone": "cnn",
    "depth": 0,
    "base_channels": 256,
    "kinds": ["full"],
    "multipliers": [0.25],
    "convs": [
        {"kinds": ["full"], "multipliers": [16], "kernel_size": 1},
        {"kinds": ["full"], "multipliers": [16], "kernel_size": 1, "pool": True},
    ],
}


def test_macs_times_batch_limit(client: TestClient, auth: dict[str, str]) -> None:
    space = {**HEAVY_CNN, "train": {"batch_size": 4096}}
    response = client.post(JOBS, json={"dataset": "digits", "space": space}, headers=auth)
    body = response.json()
    assert (response.status_code, body["path"], body["setting"], body["limit"]) == (
        422,
        "space",
        "PARETONAS_LIMITS__MAX_MACS_X_BATCH",
        2_000_000_000_000,
    )
    assert body["detail"] == (
        "space: got 4401804607488; its largest architecture costs 1074659328 MACs per sample, "
        "x batch_size 4096 = 4401804607488 per step; this service allows at most 2000000000000 "
        "(lower train.batch_size, base_channels, multipliers or depth) (operators raise "
        "PARETONAS_LIMITS__MAX_MACS_X_BATCH)"
    )
    small = {**HEAVY_CNN, "train": {"batch_size": 256}}
    accepted = client.post(JOBS, json={"dataset": "digits", "space": small}, headers=auth)
    assert accepted.status_code == 202, accepted.text


def test_body_size_limit_by_content_length(client: TestClient, auth: dict[str, str]) -> None:
    content = b'{"dataset": "' + b"x" * 2_000_000 + b'"}'
    response = client.post(
        JOBS, content=content, headers={**auth, "Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()) == (
        413,
        {
            "type": P + "payload-too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"request body: Content-Length is {len(content)} bytes; at most 1048576 "
            "bytes allowed (operators: PARETONAS_MAX_BODY_BYTES)",
            "instance": JOBS,
            "path": "body",
            "limit": 1048576,
        },
    )


def test_body_size_limit_while_streaming(client: TestClient, auth: dict[str, str]) -> None:
    sent = 0

    def chunks() -> Any:
        nonlocal sent
        for _ in range(100):  # 100 x 64 KiB = 6.4 MB offered, no Content-Length
            sent += 1
            yield b"x" * 65536

    response = client.post(
        JOBS, content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "request body: more than 1048576 bytes were sent; at most 1048576 bytes allowed "
        "(operators: PARETONAS_MAX_BODY_BYTES)"
    )


def test_echoed_values_are_cut_short(client: TestClient, auth: dict[str, str]) -> None:
    huge = "x" * 500_000
    response = client.post(
        JOBS, json={"dataset": "digits", "space": {"backbone": huge}}, headers=auth
    )
    assert response.status_code == 422
    assert len(response.content) < 1500
    detail = response.json()["detail"]
    assert detail.startswith("space.backbone: got 'xxxxxxxx")
    assert " [... 499041 characters cut ...] " in detail
    assert detail.endswith("xxxxxxxx'; allowed: mlp, cnn")
    long_name = client.post(JOBS, json={"dataset": "d" * 100}, headers=auth)
    assert long_name.json()["detail"] == (
        f"dataset: got '{'d' * 63}... (102 characters); allowed: digits (operators register "
        "more with PARETONAS_DATASETS)"
    )
    long_id = "job_" + "A" * 10_000
    missing = client.get(f"{JOBS}/{long_id}", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["detail"] == (
        f"no job 'job_{'A' * 59}... (10006 characters) among your jobs; list them with "
        "GET /api/v1/jobs"
    )


@pytest.mark.parametrize("query", ["api_key=pnas_secret", "token=abc", "x=pnas_abcdef"])
def test_keys_outside_the_authorization_header(client: TestClient, query: str) -> None:
    response = client.get(f"{JOBS}?{query}")
    name = query.split("=")[0]
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "type": P + "key-in-url",
        "title": "API key outside the Authorization header",
        "status": 401,
        "detail": f"query parameter {name!r}: API keys are accepted only in the Authorization "
        "header (Authorization: Bearer <key>); a key sent in a URL may be logged on the way, so "
        "revoke it (paretonas keys revoke ID) and make a new one",
        "instance": JOBS,
        "path": f"query.{name}",
    }


def test_access_log_never_shows_a_key() -> None:
    import logging

    from service.api.access_log import RedactSecrets, redact_target

    assert redact_target("/api/v1/jobs?api_key=pnas_s3cret&limit=5") == (
        "/api/v1/jobs?api_key=***&limit=5"
    )
    assert redact_target("/api/v1/jobs?limit=5") == "/api/v1/jobs?limit=5"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/x?token=pnas_abc&q=1", "1.1", 401),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /x?token=***&q=1 HTTP/1.1" 401'


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", JOBS, "GET, POST"),
        ("PUT", f"{JOBS}/job_X:cancel", "GET, POST"),
        ("PATCH", f"{JOBS}/job_X/pareto", "GET"),
    ],
)
def test_405_names_the_allowed_methods(
    client: TestClient, auth: dict[str, str], method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers=auth)
    assert (response.status_code, response.headers["allow"]) == (405, allow)
    assert response.json()["detail"] == f"{method} {path}: allowed methods are {allow}"
