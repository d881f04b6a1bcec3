"""Where rlhfops keeps things on the user's machine."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user's cache directory for rlhfops (converted models and the like).

    ``RLHFOPS_CACHE`` overrides it; otherwise ``$XDG_CACHE_HOME/rlhfops`` or ``~/.cache/rlhfops``.
    """
    env = os.environ.get("RLHFOPS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rlhfops"
