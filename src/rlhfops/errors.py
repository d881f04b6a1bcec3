"""Errors the user caused. The CLI prints ``str(err)`` on one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a file, a field, a value or a setting the user can fix.

    The message must say what is wrong, where (file:line, field, value) and what to do.
    """

    exit_code = 2


class DataError(UserError):
    """A data file that cannot be used as it is (malformed JSON, missing fields, empty set...)."""


class ConfigError(UserError):
    """A config file or ``--set`` override that does not fit the stage's schema."""


class PlayOrderError(UserError):
    """A stage was asked to start while the play before it is incomplete."""


class TrainingStopped(UserError):
    """Training stopped on purpose (for example a non-finite loss); the last good checkpoint is kept."""
