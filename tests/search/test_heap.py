"""search.heap.retain_freed_memory changes where glibc puts large tensors and whether it keeps
them after a free. Each case runs in a fresh interpreter: malloc settings are process-wide."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the malloc parameters are glibc's",
)

# mallinfo2 (glibc >= 2.33): arena = heap bytes taken with brk, hblkhd = bytes in mmap'd blocks.
PROBE = r"""
import ctypes, json, sys
import torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
retained = None
if sys.argv[1] == "retain":
    from search.heap import retain_freed_memory
    retained = retain_freed_memory()
before = libc.mallinfo2()
t = torch.ones(5 << 20)  # 20 MiB
held = libc.mallinfo2()
del t
freed = libc.mallinfo2()
print(json.dumps({"retained": retained,
                  "mmapped": held.hblkhd - before.hblkhd,
                  "heap_growth": held.arena - before.arena,
                  "heap_after_free": freed.arena - before.arena}))
"""

MIB = 1 << 20


def _probe(mode: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, timeout=120)
    result: dict[str, int] = json.loads(out.stdout)
    return result


def test_a_large_tensor_comes_from_the_heap_and_stays_there_after_free() -> None:
    result = _probe("retain")
    assert result["retained"] is True
    assert result["mmapped"] < MIB  # not an mmap'd block, which free would hand back at once
    assert result["heap_growth"] >= 20 * MIB
    assert result["heap_after_free"] >= 20 * MIB  # not trimmed: the next step reuses it


def test_without_it_glibc_maps_the_same_tensor_and_unmaps_it_on_free() -> None:
    """The default the module changes (so the test above can tell the two apart)."""
    result = _probe("plain")
    assert result["mmapped"] >= 20 * MIB
    assert result["heap_after_free"] < MIB
