"""The demo's narration: which play runs, what it is for, what it found; one or two plain lines each."""

from __future__ import annotations

from collections.abc import Callable

_sink: list[Callable[[str], None] | None] = [print]


def set_sink(sink: Callable[[str], None] | None) -> None:
    """Where :func:`say` writes (``print`` by default; ``None`` silences the demo, e.g. in tests)."""
    _sink[0] = sink


def say(play: str, text: str) -> None:
    """One narration line: ``[play] text``."""
    if _sink[0] is not None:
        _sink[0](f"[{play}] {text}")
