"""`make test` runs the suite on every core (issue 21): pytest-xdist with --dist loadscope, each worker's
torch on its share of the cores, the modules that train the bundled model handed out first
(tests/helpers/suite_parallel.py, the Makefile's PARALLEL)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from suite_parallel import slow_modules_first, threads_per_worker

ROOT = Path(__file__).resolve().parents[2]


def _make_var(name: str) -> str:
    m = re.search(rf"^{name}\s*[:?]?=\s*(.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert m, name
    return m.group(1).strip()


def _recipe(target: str) -> str:
    m = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert m, target
    return m.group(1)


def test_make_test_runs_on_every_core_a_module_per_worker():
    assert _make_var("TEST_WORKERS") == "auto"
    # a module per worker, handed out in collection order (slow modules first: see below)
    assert _make_var("PARALLEL") == "-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder"
    for target in ("test", "test-fast"):
        assert "-m pytest $(PARALLEL)" in _recipe(target), target
    # pytest-xdist is a locked test dependency, and every run still prints its slowest tests
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(d.startswith("pytest-xdist") for d in project["project"]["optional-dependencies"]["dev"])
    lock = (ROOT / "src" / "rlhfops" / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(r"^pytest-xdist==", lock, re.M) and re.search(r"^execnet==", lock, re.M)
    assert "--durations=" in project["tool"]["pytest"]["ini_options"]["addopts"]


@pytest.mark.parametrize(
    ("env", "cpus", "threads"),
    [
        ({"PYTEST_XDIST_WORKER_COUNT": "2"}, 2, 1),
        ({"PYTEST_XDIST_WORKER_COUNT": "2"}, 4, 2),
        ({"PYTEST_XDIST_WORKER_COUNT": "2"}, 5, 2),
        ({"PYTEST_XDIST_WORKER_COUNT": "3"}, 2, 1),  # more workers than cores: still one thread
        ({"PYTEST_XDIST_WORKER_COUNT": "1"}, 2, 2),
        ({}, 2, None),  # not under xdist: torch's own default
        ({"PYTEST_XDIST_WORKER_COUNT": "2", "OMP_NUM_THREADS": "3"}, 2, None),  # the caller's choice
    ],
)
def test_threads_per_worker(env, cpus, threads):
    assert threads_per_worker(env, cpus) == threads


class _Item:
    def __init__(self, nodeid: str, slow: bool = False):
        self.nodeid, self.slow = nodeid, slow

    def get_closest_marker(self, name: str):
        return object() if name == "slow" and self.slow else None


def test_slow_modules_first_keeps_each_module_together_and_in_order():
    items = [
        _Item("tests/a/test_x.py::t1"),
        _Item("tests/a/test_y.py::t1"),
        _Item("tests/a/test_y.py::t2", slow=True),
        _Item("tests/b/test_z.py::t1"),
        _Item("tests/b/test_w.py::C::t1", slow=True),
        _Item("tests/b/test_w.py::C::t2"),
    ]
    got = [i.nodeid for i in slow_modules_first(items)]
    assert got == [
        "tests/a/test_y.py::t1",  # the fast test of a module with a slow one moves with it
        "tests/a/test_y.py::t2",
        "tests/b/test_w.py::C::t1",
        "tests/b/test_w.py::C::t2",
        "tests/a/test_x.py::t1",
        "tests/b/test_z.py::t1",
    ]
    assert [i.nodeid for i in slow_modules_first(items[:2])] == [i.nodeid for i in items[:2]]  # none slow


def test_worker_torch_threads_probe():
    """Run by the test below inside a pytest-xdist worker (skipped otherwise)."""
    expected = os.environ.get("RLHFOPS_PROBE_THREADS")
    if not expected:
        pytest.skip("a probe: run by test_each_worker_gets_its_share_of_the_cores")
    import torch

    assert os.environ["PYTEST_XDIST_WORKER_COUNT"] == "2"
    assert torch.get_num_threads() == int(expected)


def test_each_worker_gets_its_share_of_the_cores():
    """Two workers on this machine: each worker's torch runs cores // 2 threads (at least 1), set by
    tests/conftest.py before torch starts."""
    from suite_parallel import cpu_count

    pytest.importorskip("xdist", reason="pytest-xdist is not installed (it is in the lock: make install)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS" and not k.startswith("PYTEST_")}
    env["RLHFOPS_PROBE_THREADS"] = str(max(1, cpu_count() // 2))
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadscope", "-p", "no:cacheprovider", "-q"]
    cmd.append(f"{Path(__file__).relative_to(ROOT)}::test_worker_torch_threads_probe")
    # its own session, so a timeout ends the workers too (they would outlive a killed pytest)
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=pipe, stderr=pipe, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the two-worker probe did not finish in 900 s")
    assert proc.returncode == 0 and "1 passed" in out, out[-3000:] + err[-2000:]
