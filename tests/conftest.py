"""Shared test set-up: offline hub, marker handling for the PostgreSQL and browser tests; the helper
modules in tests/helpers/ importable by name (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))  # gate_helpers, web_helpers, ... and fixtures

from suite_parallel import cpu_count, slow_modules_first, threads_per_worker  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# make test's workers (pytest-xdist) share the cores: set before any test module imports torch, which reads
# OMP_NUM_THREADS when it starts (tests/helpers/suite_parallel.py)
_threads = threads_per_worker(os.environ, cpu_count())
if _threads is not None:
    os.environ["OMP_NUM_THREADS"] = str(_threads)

POSTGRES_URL = os.environ.get(
    "RLHFOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CHROMIUM = "/usr/bin/chromium"


def _postgres_reachable(url: str) -> str | None:
    """None when a connection works, else the reason."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as err:  # any driver or network failure means: not reachable
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


_pg_state: dict[str, str | None] = {}


def postgres_url_or_skip() -> str:
    """The PostgreSQL URL for tests; skips (or fails in CI) when no server answers."""
    if "reason" not in _pg_state:
        _pg_state["reason"] = _postgres_reachable(POSTGRES_URL)
    reason = _pg_state["reason"]
    if reason is not None:
        msg = (
            f"PostgreSQL tests skipped: no server at {POSTGRES_URL} ({reason}). "
            "Start one or set RLHFOPS_TEST_POSTGRES_URL to run them."
        )
        if os.environ.get("RLHFOPS_REQUIRE_POSTGRES") == "1":
            pytest.fail(msg.replace("skipped", "required but unavailable"))
        pytest.skip(msg)
    return POSTGRES_URL


@pytest.fixture
def postgres_url() -> str:
    return postgres_url_or_skip()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # only when the tests are shared out among workers
        items[:] = slow_modules_first(items)  # every worker collects, so every worker sorts alike


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") is not None:
        postgres_url_or_skip()
    if item.get_closest_marker("browser") is not None and not (
        os.path.exists(CHROMIUM) or shutil.which("chromium")
    ):
        pytest.skip("browser tests skipped: no Chromium at /usr/bin/chromium (apt-get install -y chromium)")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the rlhfops CLI in-process: ``cli(["eval", "run", ...]) -> (exit code, stdout, stderr)``."""
    from rlhfops.cli.main import main

    def run(args: list[str]) -> tuple[int, str, str]:
        try:
            main(args)
            code = 0
        except SystemExit as ex:
            code = ex.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
