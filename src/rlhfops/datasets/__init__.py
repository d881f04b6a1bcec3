"""Data sets shipped inside the package (read through importlib.resources, never from outside the repo)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _shipped(*parts: str) -> Path:
    path = Path(str(files("rlhfops.datasets").joinpath(*parts)))
    if not path.is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"shipped data file missing from the rlhfops install: {path}")
    return path


def hh_rlhf_harmless_path() -> Path:
    """Anthropic HH-RLHF harmless-base test split, first 1,500 rows (MIT; LICENSE beside it), .jsonl.gz.

    Rows are ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}``; convert them with
    :func:`rlhfops.data.hh.import_hh_rlhf`.
    """
    return _shipped("hh_rlhf_harmless", "test-first1500.jsonl.gz")
