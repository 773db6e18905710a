"""Compile a C kernel of this package for this machine's CPU on first use, cache it, load it.

A kernel is built with ``-O3 -march=native -fopenmp`` (plus the flags of an instruction-set
variant, ``ISAS``) into a cache folder, under a name that hashes its source, the flags, the
compiler's version and the CPU's model and feature flags, so a cache shared between machines
never hands one a binary built for another, and the variants of one kernel never share a file.
The build writes a temporary file and renames it into place, so processes that start together
(search workers) never load a half-written library. ``-fopenmp`` links ``libgomp.so.1``: torch
has loaded its own copy under that name already, so the kernel runs on torch's OpenMP threads
and follows ``torch.set_num_threads``.

Anything that stops a build (no compiler, a CPU without the instructions the kernel needs, a
cache folder that cannot be written, a compiler error) makes ``load`` return None with the reason
in ``unavailable_reason``; callers then take their torch path. Nothing here raises.

Instruction sets: a kernel that has variants (one source compiled for 512- or 256-bit vectors)
is built for the ISA ``choose_isa`` names: the widest this CPU has (``avx512``: AVX-512F, else
``avx2``: AVX2 + FMA), or the one ``PARETONAS_NATIVE_ISA`` forces. Forcing ``avx2`` on a CPU
with AVX-512 builds and runs the 256-bit code there (``-mno-avx512f``), which is how the tests
and the benchmark check that path on an AVX-512 machine.

Settings (environment):
- ``PARETONAS_NATIVE_KERNELS=0`` turns the kernels off (the torch path everywhere).
- ``PARETONAS_NATIVE_ISA`` is ``auto`` (default), ``avx512`` or ``avx2``.
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
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c11", "-Wall")
SOURCE_DIR = Path(__file__).parent
ISA_SETTING = "PARETONAS_NATIVE_ISA"
_reasons: dict[tuple[str, str | None], str] = {}


@dataclass(frozen=True)
class Isa:
    """An instruction-set variant: the /proc/cpuinfo flags it needs and the flags it adds."""

    name: str
    needs: tuple[str, ...]
    flags: tuple[str, ...]


# Widest first: choose_isa takes the first one this CPU has.
ISAS = (
    Isa("avx512", ("avx512f",), ("-DVEC_BITS=512",)),
    Isa("avx2", ("avx2", "fma"), ("-mno-avx512f", "-DVEC_BITS=256")),
)


def enabled() -> bool:
    """False when ``PARETONAS_NATIVE_KERNELS`` is 0, off, false or no."""
    value = os.environ.get("PARETONAS_NATIVE_KERNELS", "1").strip().lower()
    return value not in {"0", "off", "false", "no"}


def cache_dir() -> Path:
    if configured := os.environ.get("PARETONAS_KERNEL_CACHE"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paretonas" / "kernels"


@functools.cache
def cpu_flags() -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags, from /proc/cpuinfo ('' and {} elsewhere); read
    once per process."""
    model, flags = "", frozenset[str]()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def choose_isa() -> tuple[str | None, str]:
    """The ISA variant to build (``avx512`` or ``avx2``), or None, with the reason either way:
    ``PARETONAS_NATIVE_ISA`` when it names one, else the widest this CPU has. Layers ask on every
    call, so the answer is cached per setting and CPU."""
    setting = os.environ.get(ISA_SETTING, "auto").strip().lower() or "auto"
    model, flags = cpu_flags()
    return _choose_isa(setting, model, flags)


@functools.cache
def _choose_isa(setting: str, model: str, flags: frozenset[str]) -> tuple[str | None, str]:
    names = [isa.name for isa in ISAS]
    if setting != "auto":
        if setting not in names:
            return None, (f"{ISA_SETTING}={setting!r} is not one of auto, {', '.join(names)}; "
                          "set one of those")
        return setting, f"forced by {ISA_SETTING}={setting}"
    for isa in ISAS:
        if all(flag in flags for flag in isa.needs):
            return isa.name, f"the widest this CPU has ({', '.join(isa.needs)})"
    return None, (f"this CPU ({model or platform.machine()!r}) has neither of "
                  + " nor ".join("+".join(isa.needs) for isa in ISAS))


def unavailable_reason(name: str, isa: str | None = None) -> str | None:
    """Why ``load(name, isa=isa)`` returned None (None when it did not, or was not called)."""
    return _reasons.get((name, isa))


@functools.cache
def load(name: str, *, needs: tuple[str, ...] = (), isa: str | None = None
         ) -> ctypes.CDLL | None:
    """The kernel ``<name>.c`` of this folder, built for this CPU; None when it cannot be.

    ``needs`` lists /proc/cpuinfo flags the kernel requires (e.g. ``("avx512f",)``); ``isa``
    (a name in ``ISAS``) builds that variant, adding its flags and its needs.
    """
    key = (name, isa)
    _reasons.pop(key, None)
    try:
        library = _load(name, needs, isa)
    except Exception as exc:  # a kernel that cannot load must never stop training
        _reasons[key] = f"{type(exc).__name__}: {exc}"
        library = None
    if library is None:
        log.info("native kernel %s (%s) unavailable: %s", name, isa, _reasons[key])
    return library


def _load(name: str, needs: tuple[str, ...], isa: str | None) -> ctypes.CDLL | None:
    key = (name, isa)
    if not enabled():
        _reasons[key] = "turned off by PARETONAS_NATIVE_KERNELS"
        return None
    variant = next((v for v in ISAS if v.name == isa), None)
    if isa is not None and variant is None:
        _reasons[key] = f"unknown ISA {isa!r}; one of {', '.join(v.name for v in ISAS)}"
        return None
    needs = (*needs, *(variant.needs if variant else ()))
    compile_flags = (*FLAGS, *(variant.flags if variant else ()))
    model, flags = cpu_flags()
    missing = [flag for flag in needs if flag not in flags]
    if platform.system() != "Linux" or missing:
        _reasons[key] = (f"needs a Linux CPU with {', '.join(needs)}; this one is "
                         f"{platform.system()} {model or platform.machine()!r}")
        return None
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        _reasons[key] = f"no C compiler {compiler!r} on PATH (set CC, or install gcc)"
        return None
    source = SOURCE_DIR / f"{name}.c"
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             check=False).stdout
    digest = hashlib.sha256("\0".join([source.read_text(), " ".join(compile_flags), version,
                                       model, " ".join(sorted(flags))]).encode()).hexdigest()
    folder = cache_dir()
    target = folder / f"{name}{'-' + isa if isa else ''}-{digest[:16]}.so"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            built = Path(scratch) / target.name
            result = subprocess.run([compiler, *compile_flags, "-o", str(built), str(source)],
                                    capture_output=True, text=True, timeout=300, check=False)
            if result.returncode != 0:
                _reasons[key] = (f"{compiler} failed (exit {result.returncode}): "
                                 f"{result.stderr.strip()[-2000:]}")
                return None
            os.replace(built, target)  # atomic: a concurrent loader sees all of it or nothing
        log.info("built native kernel %s", target)
    return ctypes.CDLL(str(target))
