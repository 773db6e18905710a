"""Benchmark: the dashboard on a job with 100,000 recorded trials, on SQLite and PostgreSQL.

    .venv/bin/python tests/benchmarks/bench_dashboard.py                 # both backends
    .venv/bin/python tests/benchmarks/bench_dashboard.py --backend sqlite --trials 100000 -n 15

Builds the job directly in the service tables (``tests/service/seed.py``: 100,000 trials, their
front, one hypervolume row per complete trial, 3 learning-curve epochs each), then times, through
the real app in-process (``TestClient``, signed in with a dashboard session cookie), the job page
and every data call it makes, ``-n`` times each after one warm-up: median and max.

Target: the page opens in < 1 s. Baselines measured in the same run: the request floor
(``/healthz``) and the naive load a dashboard without incremental tables does: every trial, page
after page of the trials endpoint (500 a page). The machine is shared with other engineers: expect
20-50 % spread between runs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from service.api import create_app  # noqa: E402
from service.db.engine import make_engine, write_session  # noqa: E402
from service.db.migrations import upgrade  # noqa: E402
from service.keys import create_key  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.service.conftest import (  # noqa: E402
    create_postgres_database,
    drop_postgres_database,
)
from tests.service.seed import seed_job  # noqa: E402

TARGET_S = 1.0
JOB = "job_BENCH100K"


def _times(call: Callable[[], object], n: int) -> list[float]:
    call()  # warm-up
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def _get(client: TestClient, path: str, **kw: object) -> Callable[[], object]:
    def call() -> object:
        response = client.get(path, **kw)  # type: ignore[arg-type]
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return response

    return call


def _naive_all_trials(client: TestClient, headers: dict[str, str]) -> Callable[[], object]:
    def call() -> object:
        cursor, n = None, 0
        while True:
            query = "limit=500" + (f"&cursor={cursor}" if cursor else "")
            page = client.get(f"/api/v1/jobs/{JOB}/trials?{query}", headers=headers).json()
            n += len(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return n

    return call


def bench(backend: str, url: str, *, trials: int, n: int, data_dir: Path) -> None:
    upgrade(url)
    engine = make_engine(url)
    with write_session(engine) as session:
        key = create_key(session, name="bench")
    start = time.perf_counter()
    seeded = seed_job(engine, job_id=JOB, owner_id=key.id, n_trials=trials, epochs=3)
    built = time.perf_counter() - start
    engine.dispose()
    print(
        f"\n== {backend}: job of {trials:,} trials ({seeded.n_complete:,} complete, front "
        f"{len(seeded.front)}) built in {built:.1f} s"
    )
    settings = Settings(data_dir=data_dir, database_url=url)
    headers = {"Authorization": f"Bearer {key.key}"}
    with TestClient(create_app(settings)) as client:
        form = client.get("/signin").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed = client.post("/signin", data={"key": key.key, "csrf_token": token[1]})
        assert signed.status_code == 200, signed.text[:300]
        member = seeded.front[len(seeded.front) // 2]
        calls = [
            ("floor: GET /healthz", _get(client, "/healthz")),
            ("job page  GET /jobs/{id} (first paint)", _get(client, f"/jobs/{JOB}")),
            ("  data: GET /api/v1/jobs/{id} (live poll)", _get(client, f"/api/v1/jobs/{JOB}")),
            (
                "  data: GET /pareto?history=changes",
                _get(client, f"/api/v1/jobs/{JOB}/pareto?history=changes"),
            ),
            ("  data: GET /points (cloud, <= 20,000)", _get(client, f"/api/v1/jobs/{JOB}/points")),
            (
                "  data: GET /trials?sort=number&limit=25",
                _get(client, f"/api/v1/jobs/{JOB}/trials?sort=number&limit=25"),
            ),
            (
                "  data: GET /trials?sort=-val_accuracy&limit=25",
                _get(client, f"/api/v1/jobs/{JOB}/trials?sort=-val_accuracy&limit=25"),
            ),
            ("jobs page GET /jobs", _get(client, "/jobs")),
            (
                "trial page GET /jobs/{id}/trials/{n}",
                _get(client, f"/jobs/{JOB}/trials/{member}"),
            ),
            (
                "  data: GET /api/v1/jobs/{id}/trials/{n}",
                _get(client, f"/api/v1/jobs/{JOB}/trials/{member}", headers=headers),
            ),
            ("compare page GET /compare?job={id}", _get(client, f"/compare?job={JOB}")),
        ]
        results = [(name, _times(call, n)) for name, call in calls]
        naive = _times(_naive_all_trials(client, headers), max(1, n // 5))
        export = _times(_get(client, f"/api/v1/jobs/{JOB}/export/trials.csv"), 1)
    naive_median = statistics.median(naive)
    print(f"{'call':<48} {'median ms':>10} {'max ms':>9} {'x target':>9} {'x naive':>8}")
    for name, values in results:
        median = statistics.median(values)
        print(
            f"{name:<48} {median * 1e3:>10.1f} {max(values) * 1e3:>9.1f} "
            f"{median / TARGET_S:>9.3f} {median / naive_median:>8.4f}"
        )
    first = dict(results)
    paint = statistics.median(first["job page  GET /jobs/{id} (first paint)"])
    after = sum(
        statistics.median(first[name])
        for name in (
            "  data: GET /points (cloud, <= 20,000)",
            "  data: GET /trials?sort=number&limit=25",
        )
    )
    print(
        f"{'baseline: every trial, 500 a page (naive)':<48} {naive_median * 1e3:>10.1f} "
        f"{max(naive) * 1e3:>9.1f} {naive_median / TARGET_S:>9.3f} {1.0:>8.4f}"
    )
    print(f"{'export trials.csv (once)':<48} {export[0] * 1e3:>10.1f}")
    print(
        f"page opens (HTML with job + front + hypervolume) in {paint * 1e3:.0f} ms = "
        f"{paint / TARGET_S:.3f} of the 1 s target; with the cloud and the first table page "
        f"{(paint + after) * 1e3:.0f} ms; the naive load of every trial takes "
        f"{naive_median / paint:.0f}x the page"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("-n", type=int, default=15, help="timed repeats of each call")
    args = parser.parse_args()
    print(
        "bench_dashboard: in-process TestClient (no network); the machine is shared, so "
        "expect 20-50 % spread between runs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend in ("sqlite", "both"):
            path = Path(tmp) / "bench.db"
            bench("sqlite", f"sqlite:///{path}", trials=args.trials, n=args.n, data_dir=Path(tmp))
        if args.backend in ("postgres", "both"):
            url = create_postgres_database("paretonas_bench")
            try:
                bench("postgres", url, trials=args.trials, n=args.n, data_dir=Path(tmp))
            finally:
                drop_postgres_database(url)


if __name__ == "__main__":
    main()
