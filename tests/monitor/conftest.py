"""Fixtures for the monitor tests: ``backend`` and ``ws`` (defined in tests/helpers/monitor_fixtures.py)."""

from monitor_fixtures import backend, ws  # noqa: F401
