"""Evaluation suites: JSONL files of probes, each with the behaviour expected of a good reply.

One item per line::

    {"id": "harm-001", "category": "harmful_requests", "prompt": "...", "expected": "refuse",
     "notes": "optional", "canary": "optional token (prompt_injection)",
     "must_match": "optional regex", "must_not_match": "optional regex", "max_words": optional int,
     "criteria": ["optional: the spec behaviours this item measures"]}

``expected`` is one of :data:`EXPECTED`. A line without ``id`` and with ``suite`` is a header::

    {"suite": "my-suite", "behaviours": {"apologises and offers a remedy": "apology_remedy"}}

mapping the spec's success-criteria behaviours to detector names (``rlhfops.redteam.detectors``).
A held-out *success* suite may leave out ``expected`` and ``category`` (plain ``{"prompt": ...}`` rows,
as in the bundled ``prompts.jsonl``): its items are measured by the behaviours only. An item's
``criteria`` lists the spec's success-criteria behaviours it measures, for a behaviour that applies only to
some prompts ("apologises ... when the shop is at fault": a prompt where the shop is not at fault lists only
the other behaviours); each behaviour's rate is then over the items that measure it. Without ``criteria``
an item measures every behaviour.

The shipped red-team suites live in ``rlhfops/redteam/suites/`` (package data); a reference is a
shipped category name, ``redteam`` (all shipped categories), ``support-heldout`` (the bundled
support-replies prompts), or a path to a ``.jsonl`` file or a directory of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rlhfops.errors import DataError, UserError
from rlhfops.examples import __file__ as ex

EXPECTED = ("refuse", "correct_premise", "hedge", "help", "ignore_injection", "stay_professional")
ITEM_KEYS = {
    "id",
    "category",
    "prompt",
    "expected",
    "notes",
    "canary",
    "must_match",
    "must_not_match",
    "max_words",
    "min_words",
    "criteria",
}
REDTEAM = "redteam"
HELDOUT = "support-heldout"


@dataclass(frozen=True)
class SuiteItem:
    id: str
    prompt: str
    category: str = "heldout"
    expected: str | None = None
    notes: str | None = None
    canary: str | None = None
    must_match: str | None = None
    must_not_match: str | None = None
    max_words: int | None = None
    min_words: int | None = None
    criteria: tuple[str, ...] | None = None  # the spec behaviours this item measures (None: all)
    source: str = ""  # file:line

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None and k != "source"}
        if self.criteria is not None:
            out["criteria"] = list(self.criteria)
        return out

    def measures(self, behaviour: str) -> bool:
        """Whether this item counts towards ``behaviour``'s rate (its ``criteria``, or every behaviour)."""
        return self.criteria is None or behaviour in self.criteria


@dataclass
class Suite:
    name: str
    items: list[SuiteItem]
    behaviours: dict[str, str] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)

    @property
    def is_redteam(self) -> bool:
        return bool(self.items) and all(i.expected is not None for i in self.items)

    def categories(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it.category] = out.get(it.category, 0) + 1
        return out


def shipped_dir() -> Path:
    return Path(str(resources.files("rlhfops.redteam") / "suites"))


def shipped_suites() -> dict[str, Path]:
    """Shipped category name -> its JSONL file."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.jsonl"))}


def _check_regex(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a regex string, got {value!r}")
    try:
        re.compile(value)
    except re.error as err:
        raise DataError(f"{where}: field {key!r}: invalid regex {value!r} ({err})") from None
    return value


def _item(row: dict[str, Any], where: str, default_id: str) -> SuiteItem:
    unknown = sorted(set(row) - ITEM_KEYS)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown}; valid fields: {sorted(ITEM_KEYS)}")
    prompt = row.get("prompt")
    if isinstance(prompt, list):  # chat messages: evaluate on the last user turn
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        prompt = users[-1] if users else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{where}: field 'prompt' must be a non-empty string")
    expected = row.get("expected")
    if expected is not None and expected not in EXPECTED:
        raise DataError(f"{where}: expected={expected!r}; use one of {', '.join(EXPECTED)}")
    if expected == "ignore_injection" and not row.get("canary"):
        raise DataError(f"{where}: expected 'ignore_injection' needs a 'canary' token planted in the prompt")
    if row.get("canary") and str(row["canary"]) not in prompt:
        raise DataError(f"{where}: canary {row['canary']!r} does not occur in the prompt")
    for key in ("max_words", "min_words"):
        if key in row and (not isinstance(row[key], int) or row[key] < 0):
            raise DataError(f"{where}: field {key!r} must be a non-negative integer, got {row[key]!r}")
    for key in ("must_match", "must_not_match"):
        if key in row:
            _check_regex(row[key], where, key)
    criteria = row.get("criteria")
    if criteria is not None and (
        not isinstance(criteria, list) or not all(isinstance(c, str) and c.strip() for c in criteria)
    ):
        raise DataError(f"{where}: field 'criteria' must be a list of behaviour names, got {criteria!r}")
    return SuiteItem(
        id=str(row.get("id") or default_id),
        prompt=prompt,
        category=str(row.get("category") or ("heldout" if expected is None else "custom")),
        expected=expected,
        notes=row.get("notes"),
        canary=row.get("canary"),
        must_match=row.get("must_match"),
        must_not_match=row.get("must_not_match"),
        max_words=row.get("max_words"),
        min_words=row.get("min_words"),
        criteria=tuple(criteria) if criteria is not None else None,
        source=where,
    )


def load_suite_file(path: Path) -> tuple[list[SuiteItem], dict[str, str], str | None]:
    """(items, behaviours, header name) of one JSONL file; errors name file:line and the field."""
    items: list[SuiteItem] = []
    behaviours: dict[str, str] = {}
    name: str | None = None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot read suite ({err.strerror})") from None
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{n}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: invalid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if "suite" in row and "id" not in row and "prompt" not in row:
            name = str(row["suite"])
            b = row.get("behaviours", {})
            if not isinstance(b, dict) or not all(isinstance(v, str) for v in b.values()):
                raise DataError(f"{where}: 'behaviours' must map behaviour -> detector name")
            behaviours.update(b)
            continue
        items.append(_item(row, where, f"{path.stem}-{n}"))
    return items, behaviours, name


def _resolve(ref: str) -> tuple[str, list[Path]]:
    shipped = shipped_suites()
    if ref == REDTEAM:
        return REDTEAM, list(shipped.values())
    if ref in shipped:
        return ref, [shipped[ref]]
    if ref == HELDOUT:
        return HELDOUT, [Path(ex).parent / "support_replies" / "prompts.jsonl"]
    path = Path(ref)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise UserError(f"{path}: directory holds no .jsonl suite files")
        return path.name, files
    if path.is_file():
        return path.stem, [path]
    raise UserError(
        f"suite {ref!r}: not a file, a directory, or a shipped suite "
        f"({', '.join([REDTEAM, HELDOUT, *shipped])}); list them with `rlhfops redteam list`"
    )


def load_suite(ref: str) -> Suite:
    """Load a suite by reference (see the module docstring); ids must be unique across its files."""
    name, files = _resolve(ref)
    items: list[SuiteItem] = []
    behaviours: dict[str, str] = {}
    seen: dict[str, str] = {}
    for f in files:
        file_items, b, header = load_suite_file(f)
        behaviours.update(b)
        if header and len(files) == 1:
            name = header
        for it in file_items:
            if it.id in seen:
                raise DataError(f"{it.source}: duplicate id {it.id!r} (first at {seen[it.id]})")
            seen[it.id] = it.source
            items.append(it)
    if not items:
        raise DataError(f"suite {ref!r}: no items in {', '.join(map(str, files))}")
    return Suite(name=name, items=items, behaviours=behaviours, paths=files)


def list_suites() -> dict[str, int]:
    """Shipped suite name -> number of items."""
    return {name: len(load_suite_file(p)[0]) for name, p in shipped_suites().items()}
