"""Helpers for the annotation / web tests: a workspace with people, accounts and queued pairs."""

from __future__ import annotations

PASSWORD = "correct horse battery"
PEOPLE = [
    ("alice", "task-spec-owner"),
    ("lena", "annotation-lead"),
    ("dora", "domain-expert-lead"),
    ("rita", "rater"),
    ("ravi", "rater"),
    ("rosa", "rater"),
]


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
    """Sign ``client`` in through the login form; returns the CSRF token of its session (bound to the
    session: not the token of the sign-in form)."""
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    bound = csrf_of(client.get("/login").text)
    assert bound != token
    return bound


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port in a thread (``with ServerThread(app) as url``)."""

    def __init__(self, app) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
