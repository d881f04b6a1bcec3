"""Fixtures for the web tests that span the app's parts (the accessibility check): ``browser`` (Debian's
Chromium, one per module) and ``sqlite_ws``, defined in tests/helpers/annotate_fixtures.py."""

from annotate_fixtures import browser, sqlite_backend, sqlite_ws  # noqa: F401
