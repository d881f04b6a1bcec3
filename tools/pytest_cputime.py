"""A pytest plugin: the CPU seconds of every test (setup + call + teardown, this process's threads and
its waited-for child processes), for measuring `make test` on a machine shared with other jobs, where
wall time says little (docs/benchmarks.md, "make test time").

    PYTHONPATH=src:tools python -m pytest -p pytest_cputime [--cputime-json out.json] ...

Prints the 25 tests with the most CPU seconds and the total at the end; `--cputime-json` also writes
every test's figures (nodeid -> {"cpu": s, "wall": s}). A module- or session-scoped fixture is charged to
the first test that uses it (its setup). Under pytest-xdist every worker writes its own JSON (see
``pytest_sessionfinish``).
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest

_TOP = 25
_records: dict[str, dict[str, float]] = {}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cputime-json", default=None, help="write every test's CPU and wall seconds here")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    cpu0, wall0 = _cpu(), time.perf_counter()
    yield
    _records[item.nodeid] = {"cpu": _cpu() - cpu0, "wall": time.perf_counter() - wall0}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under pytest-xdist each worker measures its own tests and has no terminal: with --cputime-json OUT it
    writes OUT.gw0.json, OUT.gw1.json, ... (the controller, which ran no test, writes nothing)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    out = session.config.getoption("--cputime-json")
    if worker and out:
        Path(f"{out}.{worker}.json").write_text(json.dumps(_records, indent=1, sort_keys=True))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _records:
        return
    total_cpu = sum(r["cpu"] for r in _records.values())
    total_wall = sum(r["wall"] for r in _records.values())
    terminalreporter.write_sep("=", f"top {_TOP} tests by CPU seconds")
    for nodeid, r in sorted(_records.items(), key=lambda kv: -kv[1]["cpu"])[:_TOP]:
        terminalreporter.write_line(f"{r['cpu']:8.1f} cpu {r['wall']:8.1f} wall  {nodeid}")
    terminalreporter.write_line(
        f"{len(_records)} tests: {total_cpu:.1f} CPU s, {total_wall:.1f} wall s (tests only, not collection)"
    )
    out = config.getoption("--cputime-json")
    if out:
        Path(out).write_text(json.dumps(_records, indent=1, sort_keys=True))
