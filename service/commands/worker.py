"""`paretonas worker`: run trials of queued searches until stopped (per GPU, or as a Ray driver).

    paretonas worker --device cuda:0        # claim, train, record; SIGTERM releases the trial
    paretonas worker --device cpu --once    # run one trial, then exit
    paretonas worker --ray auto             # one driver: a Ray cluster trains the trials

The database and Optuna storage come from settings (PARETONAS_DATABASE_URL,
PARETONAS_OPTUNA_STORAGE); lease and heartbeat seconds from PARETONAS_LEASE_SECONDS and
PARETONAS_HEARTBEAT_SECONDS; the Ray cluster from --ray or PARETONAS_RAY_ADDRESS.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from search.heap import retain_freed_memory
from service.logs import configure_logging, set_worker_id
from service.settings import Settings, get_settings
from service.worker.context import WorkerContext, new_worker_id
from service.worker.database import worker_engine
from service.worker.loop import Worker, WorkerOptions

__all__ = ["worker"]

RAY_EXTRA_MISSING = (
    "--ray needs Ray, an optional extra of ParetoNAS: pip install 'paretonas[ray]' "
    "(or run plain workers: paretonas worker --device cuda:N)"
)
RAY_POOL_SIZE = 8  # the driver's loop plus one heartbeat per trial in flight (they take turns)


def worker(
    device: Annotated[
        str | None,
        typer.Option(help="Torch device to train on: cuda:0, cuda:1, ... or cpu (default cpu)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one trial, then exit.")] = False,
    poll_seconds: Annotated[
        float | None,
        typer.Option(help="Seconds between looks for work when idle (default: settings)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Drive a Ray cluster instead of training here: auto (the cluster `ray start` "
            "runs on this machine) or HOST:PORT of its head, from a node of the cluster "
            "(default: PARETONAS_RAY_ADDRESS). Needs the ray extra.",
        ),
    ] = None,
) -> None:
    """Claim trials of queued searches, train them on DEVICE (or on a Ray cluster) and record
    them; SIGTERM stops."""
    settings = get_settings()
    configure_logging(settings.log_format, level=settings.log_level)
    address = ray_address if ray_address is not None else settings.ray_address
    if address:
        _check_ray_options(device=device, once=once)
        ray = _import_ray()
    else:
        device = device or "cpu"
        _check_device(device)
        # Training is batch work: on a host that also serves the API (`paretonas serve
        # --workers N`, or a worker beside it), requests are answered first. Alone on a host,
        # a lower priority costs nothing.
        os.nice(settings.worker_nice)
        retain_freed_memory()  # this process trains: keep freed tensor memory (search/heap.py)
    worker_id = new_worker_id()
    set_worker_id(worker_id)
    ctx = WorkerContext(
        engine=worker_engine(
            settings.database_url, pool_size=RAY_POOL_SIZE if address else 4
        ),
        worker_id=worker_id,
        optuna_storage=settings.optuna_storage,
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        max_trial_retries=settings.max_trial_retries,
        db_retry_max_seconds=settings.db_retry_max_seconds,
        device="ray" if address else (device or "cpu"),
        trial_max_seconds=settings.trial_max_seconds,
        datasets={name: (entry.format, entry.path) for name, entry in settings.datasets.items()},
    )
    options = WorkerOptions(
        once=once,
        poll_seconds=poll_seconds if poll_seconds is not None else settings.worker_poll_seconds,
    )
    try:
        if address:
            code = _run_ray_driver(ctx, options, ray=ray, address=address, settings=settings)
        else:
            runner = Worker(ctx, options)
            runner.install_signal_handlers()
            code = runner.run()
    finally:
        ctx.engine.dispose()
    raise typer.Exit(code)


def _run_ray_driver(
    ctx: WorkerContext, options: WorkerOptions, *, ray: object, address: str, settings: Settings
) -> int:
    from service.worker.ray_driver import RayDriver, connect

    try:
        connect(address)
    except ConnectionError as error:
        typer.echo(
            f"--ray: no Ray cluster answers at {address!r}: {error}. Start one (ray start "
            "--head) or give its address (--ray HOST:PORT, PARETONAS_RAY_ADDRESS)",
            err=True,
        )
        return 2
    driver = RayDriver(ctx=ctx, options=options, ray=ray)
    driver.worker.install_signal_handlers()  # after ray.init, which may install its own
    try:
        return driver.run()
    finally:
        ray.shutdown()  # type: ignore[attr-defined]


def _import_ray() -> object:
    try:
        import ray
    except ImportError:
        typer.echo(RAY_EXTRA_MISSING, err=True)
        raise typer.Exit(2) from None
    return ray


def _check_ray_options(*, device: str | None, once: bool) -> None:
    if device is not None:
        raise typer.BadParameter(
            f"got {device!r} with --ray; Ray picks each trial's device (a GPU when the job asks "
            "gpus_per_trial > 0): drop --device",
            param_hint="--device",
        )
    if once:
        raise typer.BadParameter(
            "--once runs one trial in a plain worker; the Ray driver runs until SIGTERM: "
            "drop --once or --ray",
            param_hint="--once",
        )


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
