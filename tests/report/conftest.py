"""Fixtures for the gate tests: ``gws`` (defined in tests/helpers/gate_fixtures.py)."""

from gate_fixtures import gws  # noqa: F401
