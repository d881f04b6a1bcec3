"""The gate's decision log: append-only, tamper-evident, in the workspace.

``<workspace>/gate/decisions.jsonl`` holds one entry per line, each the canonical JSON (sorted keys,
no whitespace, UTF-8) of an object with ``seq`` (1, 2, ...), ``prev`` (the SHA-256 of the previous
line's bytes; 64 zeros for the first) and the decision. The SHA-256 of an entry's line is also the
id of a ``decision`` artifact holding exactly those bytes (``meta.log_seq``), so the database is a
second witness: editing a line changes its hash, which then matches neither the next entry's
``prev`` nor any stored decision; cutting entries off the end leaves stored decisions the log lacks.

Appends hold an exclusive lock (``fcntl.flock`` on ``gate/.decisions.lock``), verify the log, store
the artifact, then append the line; a failure before the append leaves the log as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfops.errors import UserError
from rlhfops.gate.evaluate import canonical_json

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace

LOG_DIR = "gate"
LOG_FILE = "decisions.jsonl"
LOCK_FILE = ".decisions.lock"
GENESIS = "0" * 64


class DecisionLogError(UserError):
    """The decision log fails verification; nothing is appended to a broken log."""


@dataclass(frozen=True)
class LogEntry:
    """One verified line of the log: its data and its hash (= the decision artifact's id)."""

    line: int
    data: dict[str, Any]
    hash: str
    report: str = ""  # path of the decision's HTML report, when one was written with it (not logged)

    @property
    def seq(self) -> int:
        return int(self.data["seq"])

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass
class Verification:
    """Result of :func:`verify`: ``first_bad`` is the 1-based line of the first bad entry (or None)."""

    entries: int
    first_bad: int | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_bad is None and not self.problem


def log_path(ws: Workspace) -> Path:
    return ws.root / LOG_DIR / LOG_FILE


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _locked(ws: Workspace) -> Iterator[None]:
    import fcntl

    d = ws.root / LOG_DIR
    d.mkdir(parents=True, exist_ok=True)
    with open(d / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _raw_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _check_line(i: int, raw: bytes, prev: str) -> tuple[dict[str, Any] | None, str]:
    """(parsed entry, problem) for line ``i`` whose predecessor hashes to ``prev``."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not valid JSON ({err})"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    if canonical_json(data) != raw:
        return None, "not in canonical form (the line was edited)"
    if data.get("seq") != i:
        return None, f"seq is {data.get('seq')!r}, expected {i} (an entry was removed or inserted)"
    if data.get("prev") != prev:
        return None, (
            f"prev is {str(data.get('prev'))[:12]}..., but the previous entry hashes to {prev[:12]}... "
            "(the previous entry or this one was edited)"
        )
    return data, ""


def _stored_decisions(ws: Workspace) -> dict[str, Any]:
    return {a.id: a for a in ws.artifacts("decision")}


def verify(ws: Workspace) -> Verification:
    """Check every entry: canonical JSON, sequence, hash chain, and the matching stored decision."""
    lines = _raw_lines(log_path(ws))
    stored = _stored_decisions(ws)
    v = Verification(entries=len(lines))
    prev = GENESIS
    for i, raw in enumerate(lines, start=1):
        data, problem = _check_line(i, raw, prev)
        h = _sha(raw)
        if data is not None:
            art = stored.get(h)
            if art is None:
                problem = "its hash matches no stored decision (the entry was edited)"
            elif int(art.meta.get("log_seq", -1)) != i:
                problem = f"the stored decision with its hash has log_seq {art.meta.get('log_seq')}"
        if problem:
            v.first_bad, v.problem = i, f"entry {i}: {problem}"
            return v
        prev = h
    in_log = {_sha(raw) for raw in lines}
    logged = [a for a in stored.values() if a.meta.get("log_seq") is not None]
    missing = sorted((int(a.meta["log_seq"]), a.id) for a in logged if a.id not in in_log)
    if missing:
        seq, aid = missing[0]
        v.first_bad = seq
        v.problem = (
            f"entry {seq}: missing from the log (stored decision {aid[:12]} has log_seq {seq}); "
            "entries were removed"
        )
        return v
    outside = [a for a in stored.values() if a.meta.get("log_seq") is None]
    for a in outside:
        v.notes.append(
            f"decision artifact {a.short_id} was added outside the gate (not in the log); it does not count"
        )
    return v


def entries(ws: Workspace, verified: bool = True) -> list[LogEntry]:
    """The log's entries; with ``verified`` (default) a broken log raises :class:`DecisionLogError`."""
    if verified:
        v = verify(ws)
        if not v.ok:
            raise DecisionLogError(
                f"decision log {log_path(ws)} is broken: {v.problem}; "
                "restore it from a backup (`rlhfops gate log --verify` shows the first bad entry)"
            )
    out = []
    for i, raw in enumerate(_raw_lines(log_path(ws)), start=1):
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = None
        if not isinstance(data, dict):  # only reachable unverified: show the line, do not trust it
            data = {"seq": i, "unparsable": raw.decode("utf-8", errors="replace")}
        out.append(LogEntry(i, data, _sha(raw)))
    return out


def append(
    ws: Workspace,
    record: dict[str, Any],
    parents: list[str],
    person: str,
    meta: dict[str, Any],
    now: str,
    check: Callable[[list[LogEntry]], None] | None = None,
) -> LogEntry:
    """Append ``record`` as the next entry and store it as a ``decision`` artifact; returns the entry.

    ``check`` runs under the lock with the current entries (e.g. "the approval is still the latest
    decision") and raises to refuse; nothing is written then.
    """
    with _locked(ws):
        current = entries(ws, verified=True)
        if check is not None:
            check(current)
        seq = len(current) + 1
        prev = current[-1].hash if current else GENESIS
        data = {**record, "seq": seq, "prev": prev, "logged_at": now}
        raw = canonical_json(data)
        h = _sha(raw)
        tmp = Path(tempfile.mkdtemp(prefix=".decision-", dir=ws.root / LOG_DIR))
        try:
            f = tmp / f"decision-{seq:06d}.json"
            f.write_bytes(raw)
            aid = ws.register_artifact("decision", f, parents, person, {**meta, "log_seq": seq})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if aid != h:  # cannot happen unless the store hashes differently
            raise DecisionLogError(f"decision log: stored decision {aid[:12]} != entry hash {h[:12]}")
        with open(log_path(ws), "ab") as fh:
            fh.write(raw + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
    return LogEntry(seq, data, h)
