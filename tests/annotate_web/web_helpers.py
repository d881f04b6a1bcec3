"""Helpers for the annotation / web tests: a workspace with people, accounts and queued pairs."""

from __future__ import annotations

from pathlib import Path

PASSWORD = "correct horse battery"
PEOPLE = [
    ("alice", "task-spec-owner"),
    ("lena", "annotation-lead"),
    ("dora", "domain-expert-lead"),
    ("rita", "rater"),
    ("ravi", "rater"),
    ("rosa", "rater"),
]


def make_workspace(root: Path, accounts: bool = True):
    from rlhfops.annotate.accounts import set_account
    from rlhfops.workspace import init_workspace

    ws = init_workspace(root, "support-replies")
    for name, role in PEOPLE:
        ws.add_person(name, role, "alice")
    if accounts:
        for name, _role in PEOPLE:
            set_account(ws, name, PASSWORD)
        set_account(ws, "root", PASSWORD, is_admin=True)
    return ws


def pairs(n: int, start: int = 0, gold_every: int = 0):
    from rlhfops.annotate.queue import PairIn

    out = []
    for i in range(start, start + n):
        gold = "A" if gold_every and i % gold_every == 0 else None
        out.append(PairIn(f"prompt {i}", f"good reply {i}", f"bad reply {i}", gold_answer=gold))
    return out


def csrf_of(html: str) -> str:
    import re

    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def login(client, name: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in through the login form; returns the CSRF token of its session."""
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return token
