"""release_memory gives a fragmented free heap back to the operating system (glibc's malloc_trim): freed
blocks between blocks still in use stay resident after free(), as the demo's freed models did. Run in a
fresh interpreter, so the test process's own heap does not decide the outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlhfops.models.memory import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc only (malloc_trim)")

SCRIPT = """
import ctypes
from rlhfops.models.memory import _glibc, release_memory

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

libc = _glibc()
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
big, small = [], []
for _ in range(2000):  # 100 KB blocks (under the mmap threshold: on the heap), each followed by a small
    p = libc.malloc(100_000)  # block that stays in use, so the freed ones cannot merge into the top
    ctypes.memset(p, 1, 100_000)
    big.append(p)
    small.append(libc.malloc(64))
for p in big:
    libc.free(p)
held = rss_mb()
trimmed = release_memory()
print(trimmed, round(held), round(rss_mb()))
"""


def test_release_memory_returns_a_fragmented_heap():
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    trimmed, held, after = out.stdout.split()
    assert trimmed == "True"
    assert int(held) - int(after) > 100, out.stdout  # ~190 MB freed but resident until the trim
