"""Helpers every test area shares (one definition each): a workspace with people, a fake model, the
signers' test passwords, a red-team evaluation meta, the in-process CLI runner, a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SIGNERS: dict = {}


def password_of(name: str) -> str:
    """The test password of ``name``'s account."""
    return f"{name}-password-1"


def who(w, name: str):
    """``name``'s authenticated signer in workspace ``w`` (account created with :func:`password_of`)."""
    from rlhfops.gate.auth import authenticate, enrol

    key = (str(w.root), w.database_url, name)
    if key not in _SIGNERS:
        try:
            _SIGNERS[key] = authenticate(w, name, password=password_of(name))
        except Exception:
            _SIGNERS[key] = enrol(w, name, password_of(name))
    return _SIGNERS[key]


def make_workspace(
    root: Path,
    people: Iterable[tuple[str, str]],
    *,
    play1: bool = False,
    account_password: str | None = None,
    db_url: str | None = None,
):
    """A support-replies workspace with ``people`` (name, role) added by alice.

    ``play1``: the spec signed by bob and carol (through :func:`who`) and a baseline recorded.
    ``account_password``: a web account with that password for everyone, plus the admin ``root``.
    ``db_url``: sets $RLHFOPS_DATABASE_URL first.
    """
    if db_url:
        os.environ["RLHFOPS_DATABASE_URL"] = db_url
    from rlhfops.workspace import init_workspace

    people = list(people)
    w = init_workspace(root, "support-replies")
    for name, role in people:
        w.add_person(name, role, "alice")
    if account_password is not None:
        from rlhfops.annotate.accounts import set_account

        for name, _role in people:
            set_account(w, name, account_password)
        set_account(w, "root", account_password, is_admin=True)
    if play1:
        w.sign_spec("business-owner", who(w, "bob"))
        w.sign_spec("technical-lead", who(w, "carol"))
        w.record_baseline({"task_completion_rate": 0.7}, "test", "alice", n=100)
    return w


def fake_model(directory: Path, seed: str) -> Path:
    """A directory standing in for a saved model (two files)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text('{"layers": 2}', encoding="utf-8")
    (directory / "model.safetensors").write_bytes(seed.encode() * 64)
    return directory


def redteam_meta(
    model: str,
    rates: dict[str, tuple[int, int]],
    failing: dict[str, list[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A red-team evaluation: category -> (passed, total).

    Failures are listed per category: the ids in ``failing[category]`` when given, else up to five
    made-up ones (``<category>-<i>``).
    """
    failing = failing or {}

    def failures(cat: str, p: int, t: int) -> list[dict[str, str]]:
        ids = failing.get(cat, [f"{cat}-{i}" for i in range(min(t - p, 5))])
        return [
            {"id": fid, "prompt": f"<b>bad</b> prompt {i}", "response": f"sure, here is {i}"}
            for i, fid in enumerate(ids)
        ]

    rt = {
        cat: {"passed": p, "total": t, "pass_rate": p / t, "failures": failures(cat, p, t)}
        for cat, (p, t) in rates.items()
    }
    meta = {
        "model": model,
        "baseline": None,
        "suite": "redteam",
        "kind": "redteam",
        "complete": True,
        "redteam": rt,
        "over_refusal_rate": 0.05,
        "alarms": [],
    }
    meta.update(extra)
    return meta


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the rlhfops CLI in-process: ``(exit code, stdout, stderr)``; a non-integer exit is 1."""
    from rlhfops.cli.main import main

    try:
        main(argv)
        code = 0
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def schema_url(base: str, schema: str) -> str:
    """``base`` with PostgreSQL's search_path set to ``schema``."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_postgres_schema(request, monkeypatch, prefix: str) -> Iterator[str]:
    """A new schema on the test PostgreSQL server, $RLHFOPS_DATABASE_URL pointing at it; dropped afterwards.

    ``request`` is the fixture request (its ``postgres_url`` fixture skips when no server answers)."""
    import sqlalchemy as sa

    base = request.getfixturevalue("postgres_url")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    monkeypatch.setenv("RLHFOPS_DATABASE_URL", schema_url(base, schema))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
