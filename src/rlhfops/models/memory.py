"""Give the memory of finished work back to the operating system.

A process that trains and evaluates several models in turn (``rlhfops demo``) frees each model when its step
ends, but glibc's allocator keeps most of the freed heap mapped: after the demo's SFT step the process held
2.0-2.5 GB of resident memory with ~0.5 GB in use (docs/benchmarks.md, issue 19, "the demo's memory").
``malloc_trim`` returns those pages; the next step allocates afresh. The numbers computed are unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from typing import Any


@functools.cache
def _glibc() -> Any:
    """The C library when it is glibc (it has ``malloc_trim``), else None (macOS, musl)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_memory() -> bool:
    """Collect garbage (a model held only by a reference cycle is freed now, not at some later collection),
    then return the free heap to the operating system (glibc ``malloc_trim``; elsewhere only the collection).
    Returns whether the heap was trimmed. Costs milliseconds: call it between steps, not inside loops."""
    gc.collect()
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
