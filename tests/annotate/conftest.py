"""Fixtures for the annotation service and web app (defined in tests/helpers/annotate_fixtures.py)."""

from annotate_fixtures import (  # noqa: F401
    backend,
    postgres_backend,
    postgres_ws,
    sqlite_backend,
    sqlite_ws,
    ws,
)
