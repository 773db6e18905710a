"""Compile a C kernel of this package for this machine's CPU on first use, cache it, load it.

A kernel is built with ``-O3 -march=native -fopenmp`` into a cache folder, under a name that
hashes its source, the flags, the compiler's version and the CPU's model and feature flags, so a
cache shared between machines never hands one a binary built for another. The build writes a
temporary file and renames it into place, so processes that start together (search workers)
never load a half-written library. ``-fopenmp`` links ``libgomp.so.1``: torch has loaded its own
copy under that name already, so the kernel runs on torch's OpenMP threads and follows
``torch.set_num_threads``.

Anything that stops a build (no compiler, a CPU without the instructions the kernel needs, a
cache folder that cannot be written, a compiler error) makes ``load`` return None with the reason
in ``unavailable_reason``; callers then take their torch path. Nothing here raises.

Settings (environment):
- ``PARETONAS_NATIVE_KERNELS=0`` turns the kernels off (the torch path everywhere).
- ``PARETONAS_KERNEL_CACHE`` is the cache folder (default ``$XDG_CACHE_HOME/paretonas/kernels``,
  else ``~/.cache/paretonas/kernels``).
- ``CC`` is the compiler (default ``cc``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c11", "-Wall")
SOURCE_DIR = Path(__file__).parent
_reasons: dict[str, str] = {}


def enabled() -> bool:
    """False when ``PARETONAS_NATIVE_KERNELS`` is 0, off, false or no."""
    value = os.environ.get("PARETONAS_NATIVE_KERNELS", "1").strip().lower()
    return value not in {"0", "off", "false", "no"}


def cache_dir() -> Path:
    if configured := os.environ.get("PARETONAS_KERNEL_CACHE"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paretonas" / "kernels"


def cpu_flags() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags, from /proc/cpuinfo ('' and {} elsewhere)."""
    model, flags = "", set[str]()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def unavailable_reason(name: str) -> str | None:
    """Why ``load(name)`` returned None (None when it did not, or was not called)."""
    return _reasons.get(name)


@functools.cache
def load(name: str, *, needs: tuple[str, ...] = ()) -> ctypes.CDLL | None:
    """The kernel ``<name>.c`` of this folder, built for this CPU; None when it cannot be.

    ``needs`` lists /proc/cpuinfo flags the kernel requires (e.g. ``("avx512f",)``).
    """
    _reasons.pop(name, None)
    try:
        library = _load(name, needs)
    except Exception as exc:  # a kernel that cannot load must never stop training
        _reasons[name] = f"{type(exc).__name__}: {exc}"
        library = None
    if library is None:
        log.info("native kernel %s unavailable: %s", name, _reasons[name])
    return library


def _load(name: str, needs: tuple[str, ...]) -> ctypes.CDLL | None:
    if not enabled():
        _reasons[name] = "turned off by PARETONAS_NATIVE_KERNELS"
        return None
    model, flags = cpu_flags()
    missing = [flag for flag in needs if flag not in flags]
    if platform.system() != "Linux" or missing:
        _reasons[name] = (f"needs a Linux CPU with {', '.join(needs)}; this one is "
                          f"{platform.system()} {model or platform.machine()!r}")
        return None
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        _reasons[name] = f"no C compiler {compiler!r} on PATH (set CC, or install gcc)"
        return None
    source = SOURCE_DIR / f"{name}.c"
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             check=False).stdout
    key = hashlib.sha256("\0".join([source.read_text(), " ".join(FLAGS), version, model,
                                    " ".join(sorted(flags))]).encode()).hexdigest()[:16]
    folder = cache_dir()
    target = folder / f"{name}-{key}.so"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            built = Path(scratch) / target.name
            result = subprocess.run([compiler, *FLAGS, "-o", str(built), str(source)],
                                    capture_output=True, text=True, timeout=300, check=False)
            if result.returncode != 0:
                _reasons[name] = (f"{compiler} failed (exit {result.returncode}): "
                                  f"{result.stderr.strip()[-2000:]}")
                return None
            os.replace(built, target)  # atomic: a concurrent loader sees all of it or nothing
        log.info("built native kernel %s", target)
    return ctypes.CDLL(str(target))
