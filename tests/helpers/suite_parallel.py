"""How `make test` shares the suite out among pytest-xdist workers (used by tests/conftest.py).

`make test` runs `pytest -n auto --dist loadscope --no-loadscope-reorder` (the Makefile's PARALLEL): one
worker per core, a module's tests on one worker, the modules handed out in collection order. Two things
make that pay on a small machine: each worker's torch gets its share of the cores instead of one thread
per core (four threads spinning on two cores cost more than they give), and the modules that train the
bundled model (minutes each) are handed out first, so none of them starts last while the other workers
sit idle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest


def threads_per_worker(env: Mapping[str, str], cpus: int) -> int | None:
    """Torch threads for one pytest-xdist worker: the cores shared out among the workers, at least 1.

    None outside xdist (no PYTEST_XDIST_WORKER_COUNT) or when OMP_NUM_THREADS is already set (the
    caller's choice wins)."""
    workers = env.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers or "OMP_NUM_THREADS" in env:
        return None
    return max(1, cpus // int(workers))


def cpu_count() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def module_of(item: pytest.Item) -> str:
    """The test file of an item, as --dist loadscope groups them."""
    return item.nodeid.split("::", 1)[0]


def slow_modules_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The items of every module holding a `slow` test first, the order otherwise kept (a stable sort:
    each module's items stay together and in order, so its module fixtures still run once)."""
    slow = {module_of(item) for item in items if item.get_closest_marker("slow") is not None}
    return sorted(items, key=lambda item: module_of(item) not in slow)
