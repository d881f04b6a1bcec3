"""Benchmark: the annotation service under 100 concurrent simulated raters on loopback.

The server is ``uvicorn rlhfops.web.app:app_from_env`` in a subprocess (one worker unless ``--workers``)
on a fresh workspace with ``--items`` queued pairs (k=3) and one API token per rater. The client runs
``--raters`` asyncio tasks (one keep-alive connection each, a minimal HTTP/1.1 client), each looping
``GET /api/next`` then ``POST /api/labels`` for ``--seconds``
(after a ``--warmup`` whose requests are not counted), with no pause unless ``--think-ms`` (the mean
pause after each label, as a rater reading the next pair). Latency is per HTTP request, measured at the
client. The server is uvicorn with its defaults: httptools and uvloop when installed (they are
dependencies of rlhfops), which the output names. Prints one JSON line per backend:

``{"bench": "annotation_load", "backend": ..., "raters": 100, "seconds": ..., "labels": ...,
"labels_per_s": ..., "requests": ..., "p50_ms": ..., "p99_ms": ..., "errors": ...}``

Targets (issue 5): p99 < 100 ms and >= 300 labels/s. By default each backend runs twice: closed loop
(every rater sends the next request the moment the last one answers: the capacity, labels/s) and paced
at 300 labels/s (``--rate``: each rater starts a label every 100/300 s on a fixed schedule: the latency
at the target's load). The two targets cannot be met by one closed-loop run: with 100 raters always
waiting on the server, mean latency = 100 / requests per second (Little's law), so p99 < 100 ms would
need well over 1,000 requests/s. After each run the database is checked: every (item, rater) labelled
once and no item with more than k raters.

Run: ``.venv/bin/python bench/annotation_load.py [--backend sqlite postgres] [--seconds 20]``
(PostgreSQL from ``--postgres-url``, default the test server; a fresh schema is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

PG_DEFAULT = os.environ.get("RLHFOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
K = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_workspace(root: Path, n_raters: int, n_items: int) -> list[str]:
    """A workspace with raters (accounts + tokens) and queued pairs; returns the tokens."""
    from rlhfops.annotate.accounts import create_token, hash_password
    from rlhfops.annotate.queue import item_key
    from rlhfops.workspace import annotation_tables as m
    from rlhfops.workspace import db, init_workspace

    ws = init_workspace(root, "support-replies")
    shared_hash = hash_password("bench password")  # one scrypt for all: set-up speed only
    with ws.session() as s:
        for i in range(n_raters):
            name = f"r{i:03d}"
            s.add(db.Person(name=name, role="rater", added_by="bench", added_at=db.utcnow()))
            s.add(m.Account(name=name, password_hash=shared_hash, is_admin=False, created_at=db.utcnow()))
        for i in range(n_items):
            prompt, a, b = (
                f"prompt {i} " + "x" * 200,
                f"reply A {i} " + "y" * 400,
                f"reply B {i} " + "z" * 400,
            )
            s.add(
                m.Item(
                    key=item_key("pair", prompt, a, b),
                    kind="pair",
                    prompt=prompt,
                    response_a=a,
                    response_b=b,
                    batch="bench",
                    k=K,
                    n_assigned=0,
                    is_open=True,
                    is_gold=False,
                    gold_answer=None,
                    calibration_round=None,
                    source_item_id=None,
                    meta={},
                    created_at=db.utcnow(),
                )
            )
    db.refresh_planner_stats(ws.engine, "items")  # as queue_pairs does after queueing (PostgreSQL)
    tokens = [create_token(ws, f"r{i:03d}") for i in range(n_raters)]
    ws.close()
    return tokens


class Conn:
    """A minimal keep-alive HTTP/1.1 client on one connection (the load generator must stay cheap:
    httpx spent more CPU per label than the server on this 2-core machine)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\nHost: {host}:{port}\r\n"

    async def open(self) -> None:
        self.r, self.w = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\n{self.auth}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.w.write(head.encode() + b"\r\n" + (body or b""))
        status = int((await self.r.readline()).split()[1])
        length = 0
        while (line := await self.r.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, (await self.r.readexactly(length) if length else b"")

    def close(self) -> None:
        self.w.close()


async def rater(
    conn: Conn, stop_at: float, count_from: float, out: dict, think: float = 0.0, interval: float = 0.0
) -> None:
    """One rater's loop: fetch, submit, (pause). ``interval`` > 0 paces the rater on a fixed schedule
    (a label started every ``interval`` seconds, open loop): a fetch's latency then counts from its
    scheduled start, so time spent behind schedule is not hidden (no coordinated omission)."""
    await conn.open()
    n = 0
    rng = random.Random(conn.auth)  # seeded by the rater's token
    if think or interval:
        await asyncio.sleep(rng.uniform(0, think or interval))  # raters do not start in lockstep
    due = time.perf_counter()
    try:
        while time.perf_counter() < stop_at:
            if interval:
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                t0, due = due, due + interval
            else:
                t0 = time.perf_counter()
            status, data = await conn.request("GET", "/api/next")
            t1 = time.perf_counter()
            counted = t0 >= count_from
            if counted:
                out["lat"].append(t1 - t0)
            if status != 200:
                out["errors"] += counted
                continue
            item = json.loads(data)["item"]
            if item is None:
                out["exhausted"] = True
                return
            body = {"item_id": item["item_id"], "choice": ("left", "right", "tie")[n % 3], "rationale": ""}
            t2 = time.perf_counter()
            status, _ = await conn.request("POST", "/api/labels", json.dumps(body).encode())
            t3 = time.perf_counter()
            n += 1
            if t2 >= count_from:
                out["lat"].append(t3 - t2)
                if status == 201:
                    out["labels"] += 1
                else:
                    out["errors"] += 1
            if think:  # a rater reading the pair: uniform in [0.5, 1.5] x the mean think time
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))
    finally:
        conn.close()


async def drive(
    port: int, tokens: list[str], seconds: float, warmup: float, think: float = 0.0, rate: float = 0.0
) -> dict:
    out = {"lat": [], "labels": 0, "errors": 0, "exhausted": False}
    start = time.perf_counter()
    count_from, stop_at = start + warmup, start + warmup + seconds
    conns = [Conn("127.0.0.1", port, t) for t in tokens]
    interval = len(tokens) / rate if rate else 0.0
    await asyncio.gather(*(rater(c, stop_at, count_from, out, think, interval) for c in conns))
    return out


def _server_stack(http: str, loop: str) -> dict:
    """The HTTP parser and event loop uvicorn runs with ("auto": httptools / uvloop when installed)."""
    import importlib.util

    have = {m: importlib.util.find_spec(m) is not None for m in ("httptools", "uvloop")}
    if http == "auto":
        http = "httptools" if have["httptools"] else "h11"
    if loop == "auto":
        loop = "uvloop" if have["uvloop"] else "asyncio"
    return {"http": http, "loop": loop}


def _stat_seconds(stat_text: str, children: bool) -> float:
    """utime + stime (and the waited-for children's, if ``children``) from a /proc/<pid>/stat line."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11 : 15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    """CPU seconds of a process and its children (Linux /proc), else None."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/stat").read_text(), children=True)
    except (OSError, ValueError, IndexError):
        return None


def _postgres_cpu_seconds() -> float | None:
    """CPU seconds of every local process named ``postgres`` (backends, WAL writer, autovacuum...), else
    None (no local server, or /proc unreadable)."""
    texts = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            texts.append(stat.read_text())
        except OSError:
            continue  # the process ended meanwhile
    texts = [t for t in texts if "(postgres)" in t]
    return sum(_stat_seconds(t, children=False) for t in texts) if texts else None


def check_db(url: str | None, root: Path) -> dict:
    from rlhfops.workspace import Workspace
    from rlhfops.workspace import annotation_tables as m

    if url:
        os.environ["RLHFOPS_DATABASE_URL"] = url
    with Workspace.open(root) as ws, ws.session() as s:
        labels = s.execute(sa.select(m.Label.item_id, m.Label.rater)).all()
        over = s.execute(
            sa.select(m.Assignment.item_id).group_by(m.Assignment.item_id).having(sa.func.count() > K)
        ).all()
    return {
        "db_labels": len(labels),
        "duplicate_labels": len(labels) - len(set(labels)),
        "over_assigned": len(over),
    }


def _per_label(t0: float | None, t1: float | None, labels: int) -> float | None:
    """CPU milliseconds per counted label (warm-up CPU included: an upper bound)."""
    if t0 is None or t1 is None or not labels:
        return None
    return round(1000 * (t1 - t0) / labels, 2)


def run_backend(backend: str, args: argparse.Namespace, rate: float = 0.0) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="rlhfops-bench-"))
    env = dict(os.environ)
    db_url, admin, schema = None, None, None
    if backend == "postgres":
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(args.postgres_url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.postgres_url else "?"
        db_url = f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}"
        os.environ["RLHFOPS_DATABASE_URL"] = env["RLHFOPS_DATABASE_URL"] = db_url
    else:
        os.environ.pop("RLHFOPS_DATABASE_URL", None)
        env.pop("RLHFOPS_DATABASE_URL", None)
    try:
        tokens = setup_workspace(tmp / "ws", args.raters, args.items)
        port = _free_port()
        env["RLHFOPS_WORKSPACE"] = str(tmp / "ws")
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "rlhfops.web.app:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(args.workers),
            "--http",
            args.http,
            "--loop",
            args.loop,
        ]
        server = subprocess.Popen(cmd, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while True:
                try:
                    if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start")
                time.sleep(0.2)
            load0 = os.getloadavg()[0]
            cpu0, client0, pg0 = _cpu_seconds(server.pid), os.times(), _postgres_cpu_seconds()
            res = asyncio.run(drive(port, tokens, args.seconds, args.warmup, args.think_ms / 1000, rate))
            cpu1, client1, pg1 = _cpu_seconds(server.pid), os.times(), _postgres_cpu_seconds()
            load1 = os.getloadavg()[0]
        finally:
            server.terminate()
            server.wait(timeout=30)
        lat = sorted(res["lat"])
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else [float("nan")] * 99
        return {
            "bench": "annotation_load",
            "backend": backend,
            "raters": args.raters,
            "workers": args.workers,
            "threads": int(env.get("RLHFOPS_WEB_THREADS") or (8 if backend == "sqlite" else 16)),
            **_server_stack(args.http, args.loop),
            "mode": f"paced at {rate:g} labels/s" if rate else "closed loop",
            "think_ms": args.think_ms,
            "seconds": args.seconds,
            "labels": res["labels"],
            "labels_per_s": round(res["labels"] / args.seconds, 1),
            "requests": len(lat),
            "p50_ms": round(1000 * q[49], 1),
            "p99_ms": round(1000 * q[98], 1),
            "errors": res["errors"],
            # /proc counts a worker's CPU in its parent only after it exits: one worker only
            "server_cpu_ms_per_label": _per_label(cpu0, cpu1, res["labels"]) if args.workers == 1 else None,
            "client_cpu_ms_per_label": _per_label(
                client0.user + client0.system, client1.user + client1.system, res["labels"]
            ),
            # every local postgres process (backends, WAL writer, autovacuum), warm-up included
            "postgres_cpu_ms_per_label": _per_label(pg0, pg1, res["labels"])
            if backend == "postgres"
            else None,
            "queue_exhausted": res["exhausted"],
            "load_avg_1min": [round(load0, 2), round(load1, 2)],  # at the start and end of the run
            **check_db(db_url, tmp / "ws"),
        }
    finally:
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--raters", type=int, default=100)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"], help="uvicorn --http")
    ap.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"], help="uvicorn --loop")
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="Mean pause of a rater after each label (0: closed loop, every rater back at once).",
    )
    ap.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[0.0, 300.0],
        help="Offered labels/s for the paced runs (0: closed loop, every rater back at once). Default: a "
        "closed-loop run (capacity) and one paced at the target's 300 labels/s (latency at that load).",
    )
    ap.add_argument("--postgres-url", default=PG_DEFAULT)
    args = ap.parse_args()
    for backend in args.backend:
        for rate in args.rate:
            print(json.dumps(run_backend(backend, args, rate)), flush=True)


if __name__ == "__main__":
    main()
