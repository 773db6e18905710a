"""`paretonas serve`: the REST API (uvicorn), optionally with embedded workers.

    paretonas serve                              # 127.0.0.1:8000; refuses an unmigrated database
    paretonas serve --migrate --workers 1        # migrate, then API + one CPU worker process
    paretonas serve --api-workers 2              # two API processes (uvicorn workers)

``--workers N`` starts N ``paretonas worker`` processes and stops them when the API stops
(SIGTERM, then SIGKILL after ``--worker-grace`` seconds). The cron scheduler runs in a thread of
this process unless PARETONAS_SCHEDULER_ENABLED=false (`paretonas scheduler` runs it alone); any
number of serve processes may share a database, each due time still makes one job.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Annotated

import typer
import uvicorn

from service.api.app import create_app
from service.commands.migrated import check_migrated
from service.db import migrations
from service.db.engine import make_engine
from service.logs import configure_logging
from service.scheduler.loop import Scheduler
from service.settings import Settings, get_settings

__all__ = ["serve", "start_scheduler"]


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 8000).")] = None,
    workers: Annotated[
        int, typer.Option(min=0, help="Worker processes to run beside the API.")
    ] = 0,
    worker_device: Annotated[str, typer.Option(help="--device of those workers.")] = "cpu",
    worker_grace: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL.")] = 30,
    migrate: Annotated[
        bool, typer.Option("--migrate", help="Upgrade the database first (else only check).")
    ] = False,
    api_workers: Annotated[
        int, typer.Option(min=1, help="API processes (uvicorn workers; one per core).")
    ] = 1,
) -> None:
    """Serve the API (OpenAPI at /docs); --workers N also runs N workers."""
    settings = get_settings()
    if settings.log_format == "json":  # uvicorn's own lines then go through the same handler
        configure_logging("json", level=settings.log_level)
    if migrate:
        migrations.upgrade(settings.database_url)
    check_migrated(settings.database_url)
    processes = [
        subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--device", worker_device])
        for _ in range(workers)
    ]
    # uvicorn re-raises the SIGTERM it caught once it has shut down; turn that into SystemExit so
    # the `finally` below still stops the workers instead of leaving them orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    stop_scheduler = start_scheduler(settings)
    try:
        log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
        bind_host, bind_port = host or settings.host, settings.port if port is None else port
        if api_workers > 1:  # each process builds its app from the same environment
            uvicorn.run(
                "service.api.app:create_app",
                factory=True,
                workers=api_workers,
                host=bind_host,
                port=bind_port,
                log_level=settings.log_level.lower(),
                log_config=log_config,
            )
        else:
            uvicorn.run(create_app(settings), host=bind_host, port=bind_port,
                        log_level=settings.log_level.lower(), log_config=log_config)
    finally:
        stop_scheduler()
        _stop(processes, grace=worker_grace)


def start_scheduler(settings: Settings) -> Callable[[], None]:
    """Start the scheduler thread (unless ``settings.scheduler_enabled`` is false); returns the
    function that stops it (after its current tick) and closes its engine."""
    if not settings.scheduler_enabled:
        return lambda: None
    engine = make_engine(settings.database_url)
    stop = threading.Event()
    thread = threading.Thread(
        target=Scheduler(engine, settings).run, args=(stop,), name="scheduler", daemon=True
    )
    thread.start()

    def stop_it() -> None:
        stop.set()
        thread.join(timeout=30)
        engine.dispose()

    return stop_it


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop(processes: list[subprocess.Popen[bytes]], *, grace: float) -> None:
    """SIGTERM every worker (each releases its trial), SIGKILL those still up after ``grace``."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
