"""The gate's decision log: append-only, signed, hash-chained, crash-safe, in the workspace.

``<workspace>/gate/decisions.jsonl`` holds one entry per line, each the canonical JSON (sorted keys,
no whitespace, UTF-8) of an object with ``seq`` (1, 2, ...), ``prev`` (the SHA-256 of the previous
line's bytes; 64 zeros for the first), the decision, the signer's ``public_key`` and ``ed25519`` (their
Ed25519 signature over the canonical JSON of the entry without ``ed25519``). Three witnesses must agree:

* the log line (its SHA-256 is the entry's hash);
* a ``decision`` artifact whose id is that hash, whose bytes are the line, and whose row (kind,
  creator, ``meta``, first parent) is exactly what the entry implies (:func:`decision_meta`);
* a ``decision_log_heads`` row (seq, hash) per entry, so cutting the log *and* deleting the artifact
  row is still named.

A team can anchor the head hash elsewhere (``rlhfops gate log --head``) and check it later
(``--verify --head H``): that is what catches a consistent rewrite of all three witnesses.

Write protocol (under an exclusive ``flock`` on ``gate/.decisions.lock``), one step per crash point:

1. the signed line and its parents go to ``gate/decisions.pending`` (temp file, fsync, rename, fsync);
2. the ``decision`` artifact is stored (one database transaction);
3. the head row is stored (one database transaction);
4. the line is appended to the log and fsynced;
5. the pending file is removed.

A crash after step 1 leaves a *half-done append*: the log is in its old state, the pending file says
what was being added. :func:`verify` reports it as a crash (not as removed entries) after checking that
the pending line continues the log (sequence, chain, signature); :func:`repair` (``rlhfops gate log
--repair``) and the next append complete it (steps 2-5 are idempotent). A pending file that does not
continue the log, or a missing entry with no pending file, is tampering and is named as such.
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

from rlhfops.data.files import atomic_output, fsync_path
from rlhfops.errors import UserError
from rlhfops.gate.verdict import canonical_json

if TYPE_CHECKING:
    from rlhfops.workspace.core import Workspace
    from rlhfops.workspace.signing import Signer

LOG_DIR = "gate"
LOG_FILE = "decisions.jsonl"
PENDING_FILE = "decisions.pending"
LOCK_FILE = ".decisions.lock"
GENESIS = "0" * 64
SIG_FIELD = "ed25519"  # the signer's signature (hex) over the entry without this field
FAULT_ENV = "RLHFOPS_FAULT_AT"  # "decision-log:K": os._exit at step K of the write protocol (tests)
FAULT_EXIT = 86
STEPS = (1, 2, 3, 4, 5, 6)  # after: 1 pending, 2 artifact, 3 head, 4 half a line, 5 line, 6 pending gone


class DecisionLogError(UserError):
    """The decision log fails verification; nothing is appended to a broken log."""


@dataclass(frozen=True)
class LogEntry:
    """One verified line of the log: its data and its hash (= the decision artifact's id)."""

    line: int
    data: dict[str, Any]
    hash: str

    @property
    def seq(self) -> int:
        return int(self.data["seq"])

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass
class Verification:
    """Result of :func:`verify`.

    ``first_bad`` is the 1-based entry of the first problem (or None); ``problem`` names tampering or
    damage; ``pending`` describes a half-done append left by a crash (not a problem: the log is in its
    old state and ``--repair`` completes it); ``head`` is the hash of the last complete entry.
    """

    entries: int
    first_bad: int | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)
    pending: str = ""
    head: str = GENESIS

    @property
    def ok(self) -> bool:
        return self.first_bad is None and not self.problem


def log_path(ws: Workspace) -> Path:
    return ws.root / LOG_DIR / LOG_FILE


def pending_path(ws: Workspace) -> Path:
    return ws.root / LOG_DIR / PENDING_FILE


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fault(step: int) -> None:
    """Fault injection for the crash tests: die (no cleanup, no flush) after ``step``."""
    if os.environ.get(FAULT_ENV) == f"decision-log:{step}":
        os._exit(FAULT_EXIT)


def decision_meta(data: dict[str, Any]) -> dict[str, Any]:
    """The ``decision`` artifact's meta implied by a log entry (the database must hold exactly this)."""
    action = data.get("action")
    meta: dict[str, Any] = {
        "action": action,
        "model": data.get("model"),
        "override": bool(data.get("override")),
        "spec_hash": data.get("spec_hash"),
        "log_seq": data.get("seq"),
    }
    if action == "sign":
        meta.update(
            decision=f"sign-{data.get('decision')}", verdict=data.get("verdict"), reason=data.get("reason")
        )
    else:
        meta["decision"] = "promoted" if action == "promote" else str(action)
    return meta


@contextmanager
def _locked(ws: Workspace) -> Iterator[None]:
    import fcntl  # POSIX only: inside, so the module still imports where there is no fcntl

    d = ws.root / LOG_DIR
    d.mkdir(parents=True, exist_ok=True)
    with open(d / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _split(path: Path) -> tuple[list[bytes], bytes]:
    """(complete lines, trailing bytes without a newline)."""
    if not path.exists():
        return [], b""
    raw = path.read_bytes()
    parts = raw.split(b"\n")
    return parts[:-1], parts[-1]


def _read_pending(ws: Workspace) -> tuple[bytes, list[str]] | None:
    p = pending_path(ws)
    if not p.exists():
        return None
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
        return obj["line"].encode("utf-8"), [str(x) for x in obj["parents"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return b"", []


def _signature_problem(data: dict[str, Any], keys: dict[str, str]) -> str:
    from rlhfops.workspace.signing import verify_signature

    pub, sig, person = data.get("public_key"), data.get(SIG_FIELD), data.get("person")
    if not pub or not sig:
        return "has no signature (not written by `rlhfops gate sign` / `rlhfops promote`)"
    if keys.get(str(pub)) != person:
        owner = keys.get(str(pub))
        return f"is signed with key {str(pub)[:12]}, which is registered to {owner or 'nobody'}, not {person}"
    unsigned = {k: v for k, v in data.items() if k != SIG_FIELD}
    if not verify_signature(str(pub), canonical_json(unsigned), str(sig)):
        return f"has a signature that does not verify under {person}'s key {str(pub)[:12]} (edited)"
    return ""


def _check_line(i: int, raw: bytes, prev: str, keys: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
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
    problem = _signature_problem(data, keys)
    return data, (f"it {problem}" if problem else "")


def _artifact_problem(ws: Workspace, art: Any, data: dict[str, Any], raw: bytes) -> str:
    """How the database's decision row differs from what the entry implies ('' when it matches)."""
    if art is None:
        return "its hash matches no stored decision (the entry was edited, or the database row deleted)"
    diffs = []
    if art.kind != "decision":
        diffs.append(f"kind {art.kind!r}")
    if art.creator != data.get("person"):
        diffs.append(f"creator {art.creator!r} (the log says {data.get('person')!r})")
    want = decision_meta(data)
    for key in sorted(set(want) | set(art.meta)):
        if art.meta.get(key) != want.get(key):
            diffs.append(f"meta.{key} {art.meta.get(key)!r} (the log says {want.get(key)!r})")
    if not art.parents or art.parents[0] != data.get("model"):
        diffs.append("its first parent is not the entry's model")
    stored = ws.root / art.path if not Path(art.path).is_absolute() else Path(art.path)
    try:
        if stored.read_bytes() != raw:
            diffs.append(f"its stored file {art.path} differs from the log line")
    except OSError:
        diffs.append(f"its stored file {art.path} is missing")
    if diffs:
        return "the database's decision row was edited: " + "; ".join(diffs)
    return ""


def _heads(ws: Workspace) -> dict[int, str]:
    import sqlalchemy as sa

    from rlhfops.workspace import db

    with ws.session() as s:
        return {int(q): h for q, h in s.execute(sa.select(db.DecisionHead.seq, db.DecisionHead.hash))}


def verify(ws: Workspace, head: str | None = None) -> Verification:
    """Check every entry (canonical JSON, sequence, chain, signature, the database's decision row and
    head record), tell a crash's half-done append from tampering, and, with ``head``, that the
    anchored head hash is in the chain."""
    from rlhfops.workspace.signing import registered_keys

    lines, tail = _split(log_path(ws))
    keys = registered_keys(ws)
    stored = {a.id: a for a in ws.artifacts("decision")}
    heads = _heads(ws)
    pend = _read_pending(ws)
    v = Verification(entries=len(lines))

    def bad(seq: int, problem: str) -> Verification:
        v.first_bad, v.problem = seq, f"entry {seq}: {problem}"
        return v

    prev = GENESIS
    hashes: list[str] = []
    for i, raw in enumerate(lines, start=1):
        data, problem = _check_line(i, raw, prev, keys)
        h = _sha(raw)
        if data is not None and not problem:
            problem = _artifact_problem(ws, stored.get(h), data, raw)
        if data is not None and not problem and heads.get(i) != h:
            problem = (
                "the database has no head record for it (the database was edited)"
                if i not in heads
                else f"the database's head record for it is {heads[i][:12]}... (log or database edited)"
            )
        if problem:
            return bad(i, problem)
        prev = h
        hashes.append(h)
    v.head = prev
    n = len(lines)
    pend_hash = ""
    if pend is not None:
        line, _ = pend
        pend_hash = _sha(line)
        if n and line == lines[-1]:  # crashed after the append, before the pending file was removed
            v.notes.append(
                f"entry {n} was appended; its pending marker remains (`rlhfops gate log --repair` clears it)"
            )
        else:
            data, problem = _check_line(n + 1, line, prev, keys)
            if problem or data is None:
                return bad(
                    n + 1, f"the pending append {pending_path(ws)} does not continue the log: {problem}"
                )
            if tail and not line.startswith(tail):
                return bad(n + 1, "the log ends in a partial line that is not the pending append's")
            v.pending = (
                f"entry {n + 1} ({data.get('action')} by {data.get('person')}) was being appended when a "
                "process stopped (a crash, not tampering); `rlhfops gate log --repair` completes it"
            )
    elif tail:
        return bad(
            n + 1, "the log ends in a partial line and no pending append explains it (the log was edited)"
        )
    in_log = set(hashes)
    logged = [a for a in stored.values() if a.meta.get("log_seq") is not None]
    missing = sorted(
        (int(a.meta["log_seq"]), a.id) for a in logged if a.id not in in_log and a.id != pend_hash
    )
    if missing:
        seq, aid = missing[0]
        return bad(
            seq, f"missing from the log (stored decision {aid[:12]} has log_seq {seq}); entries were removed"
        )
    beyond = sorted(q for q in heads if q > n and not (q == n + 1 and heads[q] == pend_hash and v.pending))
    if beyond:
        q = beyond[0]
        return bad(
            q,
            f"missing from the log (the database's head record {heads[q][:12]}... is entry {q}); "
            "entries were removed",
        )
    for a in stored.values():
        if a.meta.get("log_seq") is None:
            v.notes.append(
                f"decision artifact {a.short_id} was added outside the gate (not in the log): not counted"
            )
    if head is not None:
        h = head.strip().lower()
        if h != GENESIS and h not in hashes:
            v.first_bad = n + 1 if n else 1
            v.problem = (
                f"the anchored head {h[:12]}... is not an entry of the log (the log was rewritten or cut); "
                f"its head is now {v.head[:12]}... with {n} entries"
            )
            return v
        if h in hashes and hashes.index(h) + 1 < n:
            v.notes.append(f"{n - hashes.index(h) - 1} entries were added after the anchored head")
    return v


def entries(ws: Workspace, verified: bool = True) -> list[LogEntry]:
    """The log's complete entries; with ``verified`` (default) a broken log raises
    :class:`DecisionLogError`. A crash's half-done append does not count (the old state is read)."""
    if verified:
        v = verify(ws)
        if not v.ok:
            raise DecisionLogError(
                f"decision log {log_path(ws)} is broken: {v.problem}; "
                "restore it from a backup (`rlhfops gate log --verify` shows the first bad entry)"
            )
    out = []
    for i, raw in enumerate(_split(log_path(ws))[0], start=1):
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = None
        if not isinstance(data, dict):  # only reachable unverified: show the line, do not trust it
            data = {"seq": i, "unparsable": raw.decode("utf-8", errors="replace")}
        out.append(LogEntry(i, data, _sha(raw)))
    return out


def _write_pending(ws: Workspace, raw: bytes, parents: list[str]) -> None:
    body = canonical_json({"line": raw.decode("utf-8"), "parents": parents})
    with atomic_output(pending_path(ws)) as tmp:  # temp file, fsync, rename
        tmp.write_bytes(body)
    fsync_path(ws.root / LOG_DIR)  # the rename itself


def _complete(ws: Workspace, raw: bytes, parents: list[str]) -> None:
    """Steps 2-5 for the pending line ``raw``; each is skipped when already done."""
    import sqlalchemy as sa

    from rlhfops.workspace import db

    data = json.loads(raw)
    h, seq = _sha(raw), int(data["seq"])
    if not any(a.id == h for a in ws.artifacts("decision")):
        tmp = Path(tempfile.mkdtemp(prefix=".decision-", dir=ws.root / LOG_DIR))
        try:
            f = tmp / f"decision-{seq:06d}.json"
            f.write_bytes(raw)
            aid = ws.register_artifact("decision", f, parents, str(data["person"]), decision_meta(data))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if aid != h:  # cannot happen unless the store hashes differently
            raise DecisionLogError(f"decision log: stored decision {aid[:12]} != entry hash {h[:12]}")
    _fault(2)
    with ws.session() as s:
        if s.scalar(sa.select(db.DecisionHead.seq).where(db.DecisionHead.seq == seq)) is None:
            s.add(db.DecisionHead(seq=seq, hash=h, recorded_at=db.utcnow()))
    _fault(3)
    path = log_path(ws)
    lines, tail = _split(path)
    if not (lines and lines[-1] == raw):
        if tail:  # a crash cut the append short: drop the partial line (checked to be a prefix of ours)
            with open(path, "r+b") as fh:
                fh.truncate(path.stat().st_size - len(tail))
        with open(path, "ab") as fh:
            line = raw + b"\n"
            if os.environ.get(FAULT_ENV) == "decision-log:4":
                fh.write(line[: len(line) // 2])
                fh.flush()
                os.fsync(fh.fileno())
                _fault(4)
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    _fault(5)
    pending_path(ws).unlink(missing_ok=True)
    fsync_path(ws.root / LOG_DIR)
    _fault(6)


def _recover(ws: Workspace) -> str:
    """Under the lock: complete a crash's half-done append after checking it; '' when there was none."""
    v = verify(ws)
    if not v.ok:
        raise DecisionLogError(
            f"decision log {log_path(ws)}: {v.problem}; this is not a crash that --repair can complete: "
            "restore the log and the database from a backup"
        )
    pend = _read_pending(ws)
    if pend is None:
        return ""
    line, parents = pend
    if not v.pending:  # the line was appended already: only the marker remains
        pending_path(ws).unlink(missing_ok=True)
        return f"entry {v.entries} was complete; removed its pending marker"
    _complete(ws, line, parents)
    return f"completed the half-done append of entry {v.entries + 1}"


def repair(ws: Workspace) -> str:
    """Complete a half-done append left by a crash (checked first); says what was done."""
    with _locked(ws):
        done = _recover(ws)
    return done or "decision log: nothing to repair"


def append(
    ws: Workspace,
    record: dict[str, Any],
    parents: list[str],
    signer: Signer,
    now: str,
    check: Callable[[list[LogEntry]], None] | None = None,
) -> LogEntry:
    """Append ``record``, signed by ``signer``, as the next entry (the write protocol above).

    ``check`` runs under the lock with the current entries (e.g. "the approval is still the latest
    decision") and raises to refuse; nothing is written then. A half-done append left by a crash is
    completed first (after the same checks as ``rlhfops gate log --repair``).
    """
    from rlhfops.workspace.signing import require_registered

    require_registered(ws, signer, "decision log")
    with _locked(ws):
        _recover(ws)
        current = entries(ws, verified=True)
        if check is not None:
            check(current)
        seq = len(current) + 1
        prev = current[-1].hash if current else GENESIS
        data = {
            **record,
            "person": signer.name,
            "seq": seq,
            "prev": prev,
            "logged_at": now,
            "public_key": signer.public_key,
        }
        data[SIG_FIELD] = signer.sign(canonical_json(data))
        raw = canonical_json(data)
        parents = [parents[0], *parents[1:]] if parents else [str(record.get("model"))]
        _write_pending(ws, raw, parents)
        _fault(1)
        _complete(ws, raw, parents)
    return LogEntry(seq, data, _sha(raw))
