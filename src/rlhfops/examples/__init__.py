"""Example data shipped with rlhfops (synthetic; see each directory's README.md).

``support_replies/``: customer-support replies for the fictional online shop Juniper Lane —
``demos.jsonl`` (SFT), ``prefs.jsonl`` (reward model / DPO) and ``prompts.jsonl`` (held-out prompts for
PPO and evaluation), built by ``support_replies/build.py``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from rlhfops.errors import DataError


def _root() -> Path:
    return Path(str(files("rlhfops.examples")))


def available() -> list[str]:
    """Every shipped example file, as ``"<example>/<file>"``."""
    root = _root()
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.glob("*/*")
        if p.suffix in {".jsonl", ".json", ".parquet"} and p.is_file()
    )


def example_path(name: str) -> Path:
    """Path of a shipped example: a directory (``"support_replies"``) or a file
    (``"support_replies/demos.jsonl"``). Unknown names raise a one-line DataError listing what exists.
    """
    path = _root().joinpath(*name.strip("/").split("/"))
    if not name.strip("/") or name.startswith("_") or not path.exists():
        raise DataError(f"no example {name!r}; available: {', '.join(available())}")
    return path
