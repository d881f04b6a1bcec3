"""Fixtures for the judge tests (defined in tests/helpers/annotate_fixtures.py)."""

from annotate_fixtures import sqlite_backend  # noqa: F401
