"""``pytestmark = BOTH_BACKENDS`` runs a module's workspace tests on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
