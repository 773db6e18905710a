"""How the native kernels are built, cached and chosen (models.native.build).

These tests use a tiny C file of their own and run on any Linux machine with a compiler.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.native import build

COMPILER = shutil.which(os.environ.get("CC", "cc"))

needs_compiler = pytest.mark.skipif(
    COMPILER is None or not Path("/proc/cpuinfo").exists(), reason="needs Linux and a C compiler")


@pytest.fixture
def tiny_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A one-function kernel in a folder of its own, a fresh cache, and a compiler wrapper
    that logs each call."""
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "tiny.c").write_text("int answer(void) { return 42; }\n")
    log = tmp_path / "cc.log"
    wrapper = tmp_path / "cc"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {COMPILER} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(build, "SOURCE_DIR", sources)
    monkeypatch.setenv("PARETONAS_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.delenv("PARETONAS_NATIVE_KERNELS", raising=False)
    yield log


def _load(name: str, needs: tuple[str, ...] = (), isa: str | None = None) -> object:
    return build.load.__wrapped__(name, needs=needs, isa=isa)  # type: ignore[attr-defined]


@needs_compiler
def test_a_kernel_is_built_once_then_loaded_from_the_cache(tiny_source: Path,
                                                           tmp_path: Path) -> None:
    lib = _load("tiny")
    assert lib is not None and lib.answer() == 42  # type: ignore[attr-defined]
    compiles = [line for line in tiny_source.read_text().splitlines() if "-o " in line]
    assert len(compiles) == 1 and "-march=native" in compiles[0]
    (built,) = (tmp_path / "cache").glob("tiny-*.so")
    assert _load("tiny") is not None
    assert len([line for line in tiny_source.read_text().splitlines() if "-o " in line]) == 1
    assert list((tmp_path / "cache").iterdir()) == [built]  # no scratch left behind


@needs_compiler
def test_processes_that_build_at_once_all_load_a_whole_library(tiny_source: Path,
                                                               tmp_path: Path) -> None:
    """Search workers start together: each compiles into a scratch folder and renames the
    result into place, so none loads a half-written file and one library is left."""
    script = ("import sys; from pathlib import Path; from models.native import build; "
              "build.SOURCE_DIR = Path(sys.argv[1]); lib = build.load('tiny'); "
              "print(lib.answer() if lib else build.unavailable_reason('tiny'))")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(build.SOURCE_DIR)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
             for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["42"] * 4
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        p.name for p in (tmp_path / "cache").glob("tiny-*.so")]
    assert len(list((tmp_path / "cache").iterdir())) == 1


@needs_compiler
def test_a_compiler_error_is_reported_and_nothing_is_cached(tiny_source: Path,
                                                            tmp_path: Path) -> None:
    (build.SOURCE_DIR / "broken.c").write_text("int answer(void) { return }\n")
    assert _load("broken") is None
    reason = build.unavailable_reason("broken")
    assert reason is not None and "failed (exit 1)" in reason and "broken.c" in reason
    assert list((tmp_path / "cache").iterdir()) == []


@needs_compiler
def test_each_reason_not_to_build_is_named(tiny_source: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load("tiny", ("no_such_cpu_flag",)) is None
    assert "needs a Linux CPU with no_such_cpu_flag" in str(build.unavailable_reason("tiny"))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert _load("tiny") is None
    assert build.unavailable_reason("tiny") == (
        "no C compiler '/nonexistent/cc' on PATH (set CC, or install gcc)")
    monkeypatch.setenv("PARETONAS_NATIVE_KERNELS", "0")
    assert _load("tiny") is None
    assert build.unavailable_reason("tiny") == "turned off by PARETONAS_NATIVE_KERNELS"
    assert not tiny_source.exists()  # none of these ran the compiler


@needs_compiler
def test_a_cache_folder_that_cannot_be_made_is_reported(tiny_source: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PARETONAS_KERNEL_CACHE", str(blocker / "kernels"))
    assert _load("tiny") is None
    reason = str(build.unavailable_reason("tiny"))
    assert reason.startswith(("FileExistsError", "NotADirectoryError")), reason
    assert str(blocker) in reason


@needs_compiler
def test_each_isa_variant_is_built_with_its_flags_into_a_file_of_its_own(
        tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache name hashes the flags, so the 256- and 512-bit builds of one source never
    share a file; a CPU without the variant's instructions is told so, with no compiler run."""
    monkeypatch.setattr(build, "cpu_flags", lambda: ("Test CPU", frozenset({"avx2", "fma"})))
    assert _load("tiny", isa="avx2") is not None
    assert _load("tiny", isa="avx512") is None
    assert build.unavailable_reason("tiny", "avx512") == (
        "needs a Linux CPU with avx512f; this one is Linux 'Test CPU'")
    monkeypatch.setattr(build, "cpu_flags",
                        lambda: ("Test CPU", frozenset({"avx2", "fma", "avx512f"})))
    assert _load("tiny", isa="avx512") is not None
    compiles = [line for line in tiny_source.read_text().splitlines() if "-o " in line]
    assert len(compiles) == 2
    assert "-march=native" in compiles[0] and "-mno-avx512f -DVEC_BITS=256" in compiles[0]
    assert "-DVEC_BITS=512" in compiles[1] and "-mno-avx512f" not in compiles[1]
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache").iterdir())
    assert names == ["tiny-avx2", "tiny-avx512"]
    assert _load("tiny", isa="sse9") is None
    assert build.unavailable_reason("tiny", "sse9") == "unknown ISA 'sse9'; one of avx512, avx2"


@pytest.mark.parametrize(("flags", "setting", "want"), [
    ({"avx2", "fma", "avx512f"}, None, ("avx512", "the widest this CPU has (avx512f)")),
    ({"avx2", "fma"}, None, ("avx2", "the widest this CPU has (avx2, fma)")),
    ({"avx2", "fma", "avx512f"}, "avx2", ("avx2", "forced by PARETONAS_NATIVE_ISA=avx2")),
    ({"avx2", "fma", "avx512f"}, " AUTO ", ("avx512", "the widest this CPU has (avx512f)")),
    ({"sse2"}, None, (None, "this CPU ('Test CPU') has neither of avx512f nor avx2+fma")),
    ({"avx2", "fma"}, "neon", (None, "PARETONAS_NATIVE_ISA='neon' is not one of auto, avx512, "
                                     "avx2; set one of those")),
])
def test_the_isa_is_the_widest_the_cpu_has_unless_the_setting_forces_one(
        flags: set[str], setting: str | None, want: tuple[str | None, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "cpu_flags", lambda: ("Test CPU", frozenset(flags)))
    if setting is None:
        monkeypatch.delenv(build.ISA_SETTING, raising=False)
    else:
        monkeypatch.setenv(build.ISA_SETTING, setting)
    assert build.choose_isa() == want
