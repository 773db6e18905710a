"""Load benchmark (not a CI test): real uvicorn on PostgreSQL, loopback only, a worker running.

Sets up a fresh PostgreSQL database (random name, dropped at the end), a job with 10,000 recorded
trials (rows written directly: trials, front members, hypervolume history), and a live job that a
real ``paretonas worker`` process trains while the load runs. Then, against ``uvicorn`` started as
a subprocess on a free port:

1. a read phase, first with ONE client (the baseline), then with ``--clients`` (default 50), each
   for ``--seconds`` (default 60): every client loops over GET /jobs/{id}, GET /jobs/{id}/trials
   (a 100-row page at a random offset) and GET /jobs/{id}/pareto of the 10,000-trial job;
2. a write phase: ``--writers`` (default 40) clients POST /jobs at once.

Prints p50 / p99 / max latency and requests per second per route, the status codes (any 5xx is a
failure), and the ratio of the loaded run to the one-client run. Targets (issue 18): no 5xx, p99
under 100 ms for GET /jobs/{id} and /pareto with 50 clients.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_load.py [--clients 50] [--seconds 60]
        [--api-workers 2] [--writers 40] [--without-trial-pages] [--profile]

``--profile`` instead times one request stage by stage (key lookup, job query, serialisation, a
thread-pool hop, the whole request in-process through the ASGI app and over HTTP; medians of
repeated runs) and prints where the time goes.

The load generator (asyncio keep-alive connections for reads, httpx for the writes; it prints
the CPU it used) runs on the same machine as the API, the worker and PostgreSQL;
on a shared 2-core VM all of them compete for the cores, which the header states.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, make_url, text

from search.pareto import FrontPoint, hypervolume_2d, non_dominated
from service.db.base import utcnow
from service.db.engine import make_engine, write_session
from service.db.migrations import upgrade
from service.db.tables import HypervolumeHistory, ParetoMember, Trial
from service.keys import create_key

ADMIN = os.environ.get(
    "PARETONAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
N_RECORDED = 10_000
TARGET_P99_MS = 100.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN).set(database=name).render_as_string(hide_password=False)


def _drop(url: str) -> None:
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _record_trials(url: str, job_id: str, spec_json: str) -> None:
    """10,000 complete trials, the front among them and one hypervolume point per trial."""
    rng = random.Random(0)
    now = utcnow()
    rows, points = [], []
    for number in range(N_RECORDED):
        accuracy = rng.uniform(0.5, 0.99)
        params = rng.randint(2_000, 200_000)
        rows.append(dict(job_id=job_id, number=number, attempt=0, state="complete",
                         params_json=json.dumps({"depth": 2, "layer0.kind": "bilinear",
                                                 "layer0.multiplier": 0.5}),
                         spec_json=spec_json, val_accuracy=accuracy, test_accuracy=accuracy,
                         params=params, macs=params * 2, feasible=True, train_seconds=1.5,
                         worker_id="bench", started_at=now, finished_at=now))
        points.append(FrontPoint(number=number, accuracy=accuracy, params=params))
    front = non_dominated(points)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(Trial), rows)
        connection.execute(insert(ParetoMember), [
            dict(job_id=job_id, trial_number=p.number, val_accuracy=p.accuracy,
                 test_accuracy=p.accuracy, params=p.params, macs=p.params * 2,
                 spec_json=spec_json, added_at=now) for p in front])
        history, running = [], non_dominated(points[:1])
        for n in range(1, N_RECORDED + 1):
            if n % 500 == 0:
                running = non_dominated(points[:n])
            history.append(dict(job_id=job_id, n_complete=n,
                                hypervolume=hypervolume_2d(running, [0.0, 300_000.0]),
                                recorded_at=now + timedelta(milliseconds=n)))
        connection.execute(insert(HypervolumeHistory), history)
        connection.execute(text(
            "UPDATE jobs SET status='succeeded', n_complete=:n, front_size=:f WHERE id=:id"
        ), {"n": N_RECORDED, "f": len(front), "id": job_id})
    # 10,000 rows written at once: refresh the planner's statistics now, as autovacuum would
    # soon after (with none, PostgreSQL sorts whole rows instead of walking an index).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU of process ``root`` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        grown = bool(more)
        tree |= more
    return sum(used.get(pid, 0.0) for pid in tree)


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.client_cpu_seconds = 0.0  # what the load generator itself used
        self.server_cpu_seconds = 0.0  # what the API's processes used

    def line(self, route: str, seconds: float) -> str:
        values = sorted(self.latency[route])
        if not values:
            return f"  {route:<18} no answers"
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        return (f"  {route:<18} n={len(values):>6}  {len(values) / seconds:7.1f} req/s  "
                f"p50 {statistics.median(values) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
                f"max {values[-1] * 1000:7.1f} ms")

    def p99(self, route: str) -> float:
        values = sorted(self.latency[route])
        return values[min(len(values) - 1, int(len(values) * 0.99))] * 1000 if values else 0.0


def _job_routes(job_id: str) -> tuple[tuple[str, str], ...]:
    return (("GET /jobs/{id}", f"/api/v1/jobs/{job_id}"),
            ("GET trials page", f"/api/v1/jobs/{job_id}/trials"),
            ("GET /pareto", f"/api/v1/jobs/{job_id}/pareto"))


# The floor: the same clients and load generator against a route that does no work at all
# (no key, no database, a 15-byte body). No route of this API on this machine can beat it.
FLOOR_ROUTES = (("GET /healthz", "/healthz"),)


class Connection:
    """One keep-alive HTTP/1.1 connection, GET only: the read phases' client.

    httpx spends milliseconds of CPU per request with 50 connections in one pool (it used a third
    of a core for 25 requests/s here), on the same two cores as the API; this reads a response by
    its Content-Length (every route measured sends one) for a small fraction of that, so the
    cores go to the server under test, as they would with clients on other machines.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        fields = {"Host": f"{host}:{port}", **headers}
        self.head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> int:
        """The status of GET ``target`` (the body is read and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(f"GET {target} HTTP/1.1\r\n{self.head}\r\n".encode())
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            length = next((v for k, v in fields.items() if k.lower() == "content-length"), None)
            if length is None:
                raise ConnectionError(f"no Content-Length in the answer to {target}")
            await self.reader.readexactly(int(length))
            if any(k.lower() == "connection" and v.lower() == "close" for k, v in fields.items()):
                self.close()
            return int(lines[0].split(" ", 2)[1])
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _reader(client: Connection, routes: tuple[tuple[str, str], ...],
                  deadline: float, stats: Stats, rng: random.Random) -> None:
    i = rng.randrange(len(routes))
    while time.monotonic() < deadline:
        name, path = routes[i % len(routes)]
        i += 1
        if name == "GET trials page":
            offset = rng.randrange(0, N_RECORDED - 100)
            token = json.dumps({"offset": offset}, separators=(",", ":")).encode()
            path += "?cursor=" + base64.urlsafe_b64encode(token).decode().rstrip("=")
        started = time.perf_counter()
        try:
            status = await client.get(path)
        except (OSError, asyncio.IncompleteReadError) as error:
            stats.errors[f"{name}: {type(error).__name__}"] += 1
            continue
        stats.latency[name].append(time.perf_counter() - started)
        stats.statuses[(name, status)] += 1


async def _read_phase(base: str, key: str, routes: tuple[tuple[str, str], ...], *,
                      clients: int, seconds: float) -> Stats:
    stats = Stats()
    url = httpx.URL(base)
    assert url.port is not None
    connections = [Connection(url.host, url.port, {"Authorization": f"Bearer {key}"})
                   for _ in range(clients)]
    deadline = time.monotonic() + seconds
    cpu = time.process_time()
    await asyncio.gather(*(_reader(connection, routes, deadline, stats, random.Random(i))
                           for i, connection in enumerate(connections)))
    stats.client_cpu_seconds = time.process_time() - cpu
    for connection in connections:
        connection.close()
    return stats


async def _write_phase(base: str, keys: list[str], *, writers: int) -> Stats:
    stats = Stats()
    async with httpx.AsyncClient(base_url=base, timeout=60.0,
                                 limits=httpx.Limits(max_connections=writers)) as client:

        async def submit(i: int) -> None:
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/api/v1/jobs", json={"dataset": "digits", "n_trials": 2,
                                          "space": {"train": {"epochs": 1}}},
                    headers={"Authorization": f"Bearer {keys[i % len(keys)]}"})
            except httpx.HTTPError as error:
                stats.errors[f"POST /jobs: {type(error).__name__}"] += 1
                return
            stats.latency["POST /jobs"].append(time.perf_counter() - started)
            stats.statuses[("POST /jobs", response.status_code)] += 1

        await asyncio.gather(*(submit(i) for i in range(writers)))
    return stats


def _measured(api_pid: int, phase: Any) -> Stats:
    """Run ``phase`` (a coroutine making Stats), noting the API's CPU time over it."""
    before = _tree_cpu_seconds(api_pid)
    stats: Stats = asyncio.run(phase)
    stats.server_cpu_seconds = _tree_cpu_seconds(api_pid) - before
    return stats


def _report(title: str, stats: Stats, seconds: float) -> None:
    total = sum(len(v) for v in stats.latency.values())
    print(f"{title}: {total} requests, {total / seconds:.1f} req/s in all")
    for route in sorted(stats.latency):
        print(stats.line(route, seconds))
    print(f"  statuses: {dict(sorted(stats.statuses.items()))}")
    if stats.errors:
        print(f"  transport errors: {dict(stats.errors)}")
    if stats.server_cpu_seconds:
        print(f"  the API's processes used {stats.server_cpu_seconds:.1f} s of CPU: "
              f"{1000 * stats.server_cpu_seconds / max(total, 1):.2f} ms per request")
    if stats.client_cpu_seconds:
        print(f"  the load generator (this process) used {stats.client_cpu_seconds:.1f} s "
              f"of CPU in {seconds:.0f} s ({100 * stats.client_cpu_seconds / seconds:.0f} % of a "
              "core), out of the same 2 cores as the API")


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"uvicorn exited with {process.returncode}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit("uvicorn did not become ready")


def _median_ms(fn: Any, n: int) -> float:
    fn()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _profile(url: str, key: str, job_id: str, base: str) -> None:
    """Where one request's time goes: each stage alone, median of repeated runs."""
    import anyio
    from sqlalchemy import select

    from service.api import create_app
    from service.api.jobs import job_public
    from service.db.engine import read_session
    from service.db.tables import Job
    from service.keys import authenticate
    from service.settings import Settings

    settings = Settings(database_url=url, optuna_storage="sqlite://")
    app = create_app(settings)
    engine = app.state.engine
    headers = {"Authorization": f"Bearer {key}"}

    def auth() -> None:
        with read_session(engine) as session:
            assert authenticate(session, key) is not None

    def job_query() -> Job:
        with read_session(engine) as session:
            return session.scalars(select(Job).where(Job.id == job_id)).one()

    job = job_query()

    def serialise() -> None:
        job_public(job).model_dump_json()

    async def hops(n: int) -> float:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            await anyio.to_thread.run_sync(lambda: None)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    async def in_process(path: str, n: int) -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            await client.get(path, headers=headers)
            times = []
            for _ in range(n):
                started = time.perf_counter()
                assert (await client.get(path, headers=headers)).status_code == 200
                times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    def over_http(path: str, n: int) -> float:
        with httpx.Client(base_url=base, headers=headers) as client:
            return _median_ms(lambda: client.get(path).raise_for_status(), n)

    job_path = f"/api/v1/jobs/{job_id}"
    pareto_path = f"{job_path}/pareto"
    rows = [
        ("auth lookup (session, pre-ping, SELECT api_keys)", _median_ms(auth, 200)),
        ("job query (session, pre-ping, SELECT jobs)", _median_ms(job_query, 200)),
        ("serialisation (job_public + JSON)", _median_ms(serialise, 200)),
        ("thread-pool hop (anyio.to_thread)", anyio.run(hops, 200)),
        ("GET /jobs/{id} in-process (ASGI, no network)", anyio.run(in_process, job_path, 200)),
        ("GET /jobs/{id} over HTTP to uvicorn", over_http(job_path, 200)),
        ("GET /pareto in-process (ASGI, no network)", anyio.run(in_process, pareto_path, 100)),
        ("GET /pareto over HTTP to uvicorn", over_http(pareto_path, 100)),
    ]
    print("\none request, stage by stage (median ms; 1 client, nothing else from this script):")
    for name, ms in rows:
        print(f"  {name:<48} {ms:7.2f} ms")
    app.state.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=40)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--no-worker", action="store_true", help="no training worker running")
    parser.add_argument("--without-trial-pages", action="store_true",
                        help="read only GET /jobs/{id} and /pareto (the trial pages at random "
                        "offsets are the costly third of the mix)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(f"bench_load: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          "the API, PostgreSQL, a training worker and this load generator share them (a shared "
          "VM: other engineers' processes too)")
    url = _database("paretonas_bench")
    optuna_url = _database("paretonas_bench_optuna")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(url)
        engine = make_engine(url)
        with write_session(engine) as session:
            keys = [create_key(session, name=f"bench{i}").key for i in range(3)]
        engine.dispose()
        env = {**os.environ, "PARETONAS_DATABASE_URL": url, "PARETONAS_OPTUNA_STORAGE": optuna_url,
               "PYTHONPATH": str(Path.cwd()), "PARETONAS_DATA_DIR": tempfile.mkdtemp()}
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "service.api.app:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.api_workers),
             "--log-level", "warning", "--no-access-log"], env=env))
        _wait_ready(base, processes[0])
        auth = {"Authorization": f"Bearer {keys[0]}"}
        big = httpx.post(f"{base}/api/v1/jobs", json={"dataset": "digits", "n_trials": N_RECORDED},
                         headers=auth, timeout=30).json()
        live = httpx.post(f"{base}/api/v1/jobs", json={"dataset": "digits", "n_trials": 500,
                                                        "parallelism": 1}, headers=auth,
                          timeout=30).json()
        spec = json.dumps({"backbone": "mlp", "input_shape": [1, 8, 8], "num_classes": 10,
                           "layers": [{"kind": "bilinear", "multiplier": 0.5}]})
        started = time.perf_counter()
        _record_trials(url, big["id"], spec)
        shown = httpx.get(f"{base}/api/v1/jobs/{big['id']}", headers=auth).json()
        print(f"recorded {N_RECORDED} trials in {time.perf_counter() - started:.1f} s; "
              f"front size {shown['front_size']}")
        if args.profile:
            _profile(url, keys[0], big["id"], base)
            return
        if not args.no_worker:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "service.cli", "worker", "--device", "cpu"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(5)
        print(f"uvicorn --workers {args.api_workers}; training worker "
              f"{'off' if args.no_worker else 'on (job ' + live['id'] + ')'}; reads: "
              f"{'/jobs/{id}, /pareto' if args.without_trial_pages else 'the three routes'}")
        routes = tuple(r for r in _job_routes(big["id"])
                       if not (args.without_trial_pages and r[0] == "GET trials page"))
        api = processes[0].pid
        one = _measured(api, _read_phase(base, keys[0], routes, clients=1, seconds=args.seconds))
        _report(f"\n1 client, {args.seconds:.0f} s", one, args.seconds)
        many = _measured(api, _read_phase(base, keys[0], routes, clients=args.clients,
                                       seconds=args.seconds))
        _report(f"\n{args.clients} clients, {args.seconds:.0f} s", many, args.seconds)
        floor_seconds = max(5.0, args.seconds / 3)
        floor = _measured(api, _read_phase(base, keys[0], FLOOR_ROUTES, clients=args.clients,
                                        seconds=floor_seconds))
        _report(f"\nfloor: {args.clients} clients on GET /healthz (no key, no database), "
                f"{floor_seconds:.0f} s", floor, floor_seconds)
        started = time.perf_counter()
        writes = _measured(api, _write_phase(base, keys, writers=args.writers))
        _report(f"\n{args.writers} concurrent POST /jobs", writes, time.perf_counter() - started)
        print("\nratios, 50 clients against 1 client (same run):")
        for route in sorted(one.latency):
            n1, n50 = len(one.latency[route]), len(many.latency[route])
            print(f"  {route:<18} throughput x{n50 / max(n1, 1):.2f}, "
                  f"p99 x{many.p99(route) / max(one.p99(route), 1e-9):.2f}")
        fives = sum(n for (_, status), n in (many.statuses + one.statuses
                                             + writes.statuses).items() if status >= 500)
        floor_p99 = floor.p99("GET /healthz")
        floor_rate = len(floor.latency["GET /healthz"]) / floor_seconds
        for route in ("GET /jobs/{id}", "GET /pareto"):
            verdict = "met" if many.p99(route) < TARGET_P99_MS else "NOT met"
            print(f"target p99 < {TARGET_P99_MS:.0f} ms for {route}: {many.p99(route):.1f} ms, "
                  f"{verdict}; x{many.p99(route) / max(floor_p99, 1e-9):.2f} the floor's p99 "
                  f"({floor_p99:.1f} ms)")
        total = sum(len(v) for v in many.latency.values()) / args.seconds
        print(f"throughput with {args.clients} clients: {total:.0f} req/s, "
              f"{total / max(floor_rate, 1e-9):.2f} of the floor's {floor_rate:.0f} req/s")
        print(f"5xx answers: {fives}; transport errors: "
              f"{sum((one.errors + many.errors + writes.errors).values())}; load average now "
              f"{os.getloadavg()[0]:.1f}")
    finally:
        for process in reversed(processes):
            process.terminate()
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            if process.poll() is None:
                process.kill()
        _drop(url)
        _drop(optuna_url)


if __name__ == "__main__":
    main()
