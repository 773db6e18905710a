"""Benchmark (not a CI test): trials per hour, one plain worker vs the Ray driver, in one run.

The same 24-trial digits job (default space and training budget, TPE, seed 0, parallelism 2) is
run twice on a SQLite service database in a temporary folder, each time by real processes:

1. ``paretonas worker --device cpu``: one plain worker (the baseline);
2. ``paretonas worker --ray ADDRESS`` against a local Ray head started here with 2 CPUs
   (``cpus_per_trial`` 1: two trials at a time, each on one thread as Ray sets it).

For each it prints the wall time from starting the process to the job's success (start-up
included: Ray's worker processes import torch once each), the trials per hour and the ratio to the
plain worker, and the mean training seconds per trial. The load average at start and end is
printed too: on a shared machine every figure moves with the neighbours.

With a CUDA device (``--gpu``), it then runs the job through the driver at 1, 2, 4 and 8 trials
per GPU (``gpus_per_trial`` 1, 0.5, 0.25, 0.125) and samples ``nvidia-smi`` for the mean GPU
utilisation; without one those columns are printed as not measured.

    .venv/bin/python tests/benchmarks/bench_ray.py [--trials 24] [--epochs N] [--gpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select

from search.config import parse_config
from service.db.migrations import upgrade
from service.db.tables import Job, Trial

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.service.ray_support import RayHead  # noqa: E402
from tests.service.test_worker_support import insert_job  # noqa: E402

ENV = {
    "PARETONAS_LEASE_SECONDS": "60",
    "PARETONAS_HEARTBEAT_SECONDS": "5",
    "PARETONAS_WORKER_POLL_SECONDS": "0.5",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Run:
    """One job run by one kind of process."""

    name: str
    wall_s: float
    trials: int
    train_s: float
    gpu_util: float | None = None

    @property
    def per_hour(self) -> float:
        return self.trials / self.wall_s * 3600.0


def _create_job(
    engine: Engine, *, trials: int, epochs: int | None, gpus: float = 0.0, cpus: float = 1.0
) -> str:
    body: dict[str, Any] = {"dataset": "digits", "n_trials": trials, "seed": 0}
    if epochs is not None:
        body["train"] = {"epochs": epochs}
    return insert_job(
        engine,
        config=parse_config(body).to_dict(),
        parallelism=2 if gpus == 0 else max(2, round(1 / gpus)),
        gpus_per_trial=gpus,
        cpus_per_trial=cpus,
        owner="bench",
    )


def _run(
    engine: Engine, *, env: dict[str, str], args: list[str], job_id: str, name: str, log: Path
) -> Run:
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        while True:
            with engine.connect() as connection:
                status = connection.execute(select(Job.status).where(Job.id == job_id)).scalar()
            if status in ("succeeded", "failed", "cancelled"):
                break
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        wall = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=120)
    if status != "succeeded":
        raise RuntimeError(f"{name}: job {status}:\n{log.read_text()[-3000:]}")
    with engine.connect() as connection:
        seconds = connection.execute(
            select(Trial.train_seconds).where(Trial.job_id == job_id, Trial.state == "complete")
        ).scalars().all()
    return Run(name=name, wall_s=wall, trials=len(seconds),
               train_s=statistics.fmean(s or 0.0 for s in seconds))


class GpuSampler(threading.Thread):
    """Mean of ``nvidia-smi`` utilisation.gpu samples every 0.5 s until ``stop``."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.5):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, check=False,
            ).stdout.split()
            if out:
                self.samples.append(statistics.fmean(float(v) for v in out))

    def stop(self) -> float | None:
        self._stop.set()
        self.join(timeout=5)
        return statistics.fmean(self.samples) if self.samples else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=None, help="default: the space's budget")
    parser.add_argument("--gpu", action="store_true", help="also 1/2/4/8 trials per GPU")
    args = parser.parse_args()
    load_start = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    url = f"sqlite:///{folder / 'service.db'}"
    upgrade(url)
    engine = create_engine(url)
    env = dict(os.environ, **ENV, PARETONAS_DATABASE_URL=url,
               PARETONAS_OPTUNA_STORAGE=f"sqlite:///{folder / 'optuna.db'}")
    runs: list[Run] = []
    head = None
    try:
        job = _create_job(engine, trials=args.trials, epochs=args.epochs)
        runs.append(_run(engine, env=env, args=["--device", "cpu"], job_id=job,
                         name="1 plain worker", log=folder / "plain.log"))
        head_started = time.perf_counter()
        head = RayHead.start(num_cpus=2)
        head_s = time.perf_counter() - head_started
        job = _create_job(engine, trials=args.trials, epochs=args.epochs)
        runs.append(_run(engine, env=env, args=["--ray", head.address], job_id=job,
                         name="Ray driver, 2 CPU slots", log=folder / "ray.log"))
        gpu_note = _gpu_runs(engine, env=env, args=args, folder=folder, runs=runs)
    finally:
        if head is not None:
            head.stop()
        engine.dispose()
    load_end = os.getloadavg()
    _print(runs, args=args, head_s=head_s, loads=(load_start, load_end), gpu_note=gpu_note)
    shutil.rmtree(folder, ignore_errors=True)


def _gpu_runs(
    engine: Engine, *, env: dict[str, str], args: argparse.Namespace, folder: Path,
    runs: list[Run],
) -> str:
    import torch

    if not torch.cuda.is_available():
        return "GPU: not measured (no CUDA device in this session): 1/2/4/8 trials per GPU and " \
               "GPU utilisation stay unmeasured"
    if not args.gpu:
        return "GPU: a CUDA device is here; pass --gpu for 1/2/4/8 trials per GPU"
    gpu_head = RayHead.start(num_cpus=os.cpu_count() or 2, num_gpus=torch.cuda.device_count())
    try:
        for per_gpu in (1, 2, 4, 8):
            job = _create_job(engine, trials=args.trials, epochs=args.epochs, gpus=1 / per_gpu)
            sampler = GpuSampler()
            sampler.start()
            run = _run(engine, env=env, args=["--ray", gpu_head.address], job_id=job,
                       name=f"Ray driver, {per_gpu} trials per GPU",
                       log=folder / f"gpu{per_gpu}.log")
            runs.append(Run(run.name, run.wall_s, run.trials, run.train_s, sampler.stop()))
    finally:
        gpu_head.stop()
    return f"GPU: {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"


def _print(
    runs: list[Run], *, args: argparse.Namespace, head_s: float,
    loads: tuple[tuple[float, ...], tuple[float, ...]], gpu_note: str,
) -> None:
    cores = os.cpu_count()
    print(f"bench_ray: a {args.trials}-trial digits job (default space, TPE, seed 0, "
          f"epochs {args.epochs or 'default'}), SQLite, real processes")
    print(f"machine: {cores} cores SHARED with other engineers' jobs (load average "
          f"{loads[0][0]:.1f} at start, {loads[1][0]:.1f} at end): figures move with the load")
    print(f"Ray head start-up (not in the Ray row): {head_s:.1f} s")
    base = runs[0]
    print(f"{'run':<32} {'trials':>6} {'wall s':>8} {'trials/h':>9} {'vs plain':>9} "
          f"{'train s/trial':>13} {'GPU util':>8}")
    for run in runs:
        util = "-" if run.gpu_util is None else f"{run.gpu_util:.0f}%"
        print(f"{run.name:<32} {run.trials:>6} {run.wall_s:>8.1f} {run.per_hour:>9.0f} "
              f"{run.per_hour / base.per_hour:>8.2f}x {run.train_s:>13.2f} {util:>8}")
    print(gpu_note)


if __name__ == "__main__":
    main()
