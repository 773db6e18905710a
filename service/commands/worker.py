"""`paretonas worker`: run trials for queued searches until stopped (one per GPU).

    paretonas worker --device cuda:0        # claim, train, record; SIGTERM releases the trial
    paretonas worker --device cpu --once    # run one trial, then exit

The database and Optuna storage come from settings (PARETONAS_DATABASE_URL,
PARETONAS_OPTUNA_STORAGE); lease and heartbeat seconds from PARETONAS_LEASE_SECONDS and
PARETONAS_HEARTBEAT_SECONDS.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from search.heap import retain_freed_memory
from service.settings import get_settings
from service.worker.context import WorkerContext, new_worker_id
from service.worker.database import worker_engine
from service.worker.loop import Worker, WorkerOptions

__all__ = ["worker"]


def worker(
    device: Annotated[
        str, typer.Option(help="Torch device to train on: cuda:0, cuda:1, ... or cpu.")
    ] = "cpu",
    once: Annotated[bool, typer.Option("--once", help="Run one trial, then exit.")] = False,
    poll_seconds: Annotated[
        float | None,
        typer.Option(help="Seconds between looks for work when idle (default: settings)."),
    ] = None,
) -> None:
    """Claim trials of queued searches, train them on DEVICE and record them; SIGTERM stops."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _check_device(device)
    retain_freed_memory()  # this process trains: keep freed tensor memory (search/heap.py)
    settings = get_settings()
    ctx = WorkerContext(
        engine=worker_engine(settings.database_url),
        worker_id=new_worker_id(),
        optuna_storage=settings.optuna_storage,
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        max_trial_retries=settings.max_trial_retries,
        db_retry_max_seconds=settings.db_retry_max_seconds,
        device=device,
        datasets={name: (entry.format, entry.path) for name, entry in settings.datasets.items()},
    )
    options = WorkerOptions(
        once=once,
        poll_seconds=poll_seconds if poll_seconds is not None else settings.worker_poll_seconds,
    )
    runner = Worker(ctx, options)
    runner.install_signal_handlers()
    try:
        code = runner.run()
    finally:
        ctx.engine.dispose()
    raise typer.Exit(code)


def _check_device(device: str) -> None:
    if device == "cpu":
        return
    import torch

    if not device.startswith("cuda"):
        raise typer.BadParameter(f"got {device!r}; use cpu or cuda:N", param_hint="--device")
    if not torch.cuda.is_available():
        raise typer.BadParameter(
            f"got {device!r} but torch sees no CUDA device; use --device cpu",
            param_hint="--device",
        )
