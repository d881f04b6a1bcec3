"""The fetch / submit hot path (issue 5, annotation load): what it was made cheaper by must stay true.

- The progress a fetch returns (computed from one statement at the start of its transaction) equals a
  fresh count, whatever the fetch did (assigned, same item again, nothing left).
- Authentication reads never wait for the SQLite writer: a token / account / roles lookup runs on the
  event loop, so it must not queue behind a write transaction.
- The app sets no ``dependency_overrides`` (with any, FastAPI re-inspects every dependency on every
  request), and the shared dependencies still see the app's workspace and the signed-in user.
- On PostgreSQL, queueing pairs refreshes the planner's statistics, so a fetch right after a bulk load
  finds gold items through an index instead of scanning every item (8.5 -> 1.2-1.8 ms of database CPU per
  label on 20,000 pairs).
"""

from __future__ import annotations

import threading

import pytest
from web_helpers import login, pairs

from rlhfops.annotate.queue import fetch_next_with_progress, progress, queue_pairs, submit_label


def test_fetch_progress_equals_a_fresh_count(ws) -> None:
    queue_pairs(ws, pairs(3), "b1", 1)
    seen = []
    for _ in range(4):
        item, blocked, p = fetch_next_with_progress(ws, "rita", 0.0)
        assert blocked is None
        assert p == progress(ws, "rita")
        again, _b, p2 = fetch_next_with_progress(ws, "rita", 0.0)  # the unfinished one again
        assert (again is None) == (item is None) and p2 == p
        if item is None:
            break
        assert again.item_id == item.item_id
        seen.append(item.item_id)
        submit_label(ws, "rita", item.item_id, "left")
        assert progress(ws, "rita").labelled == len(seen)
    assert len(seen) == 3 and progress(ws, "rita").open == 0


def test_auth_reads_do_not_wait_for_the_sqlite_writer(sqlite_ws) -> None:
    from rlhfops.annotate.accounts import account, account_for_token, create_token
    from rlhfops.annotate.tx import core_transaction
    from rlhfops.web.auth import Auth

    ws = sqlite_ws
    token = create_token(ws, "rita")
    auth = Auth(ws)
    got: dict[str, object] = {}

    def read() -> None:
        got["token"] = account_for_token(ws, token)
        got["account"] = account(ws, "rita")
        got["roles"] = auth.roles("rita")

    with core_transaction(ws) as c:  # holds SQLite's write lock and the in-process writer lock
        c.exec_driver_sql("UPDATE accounts SET is_admin = is_admin")
        t = threading.Thread(target=read)
        t.start()
        t.join(timeout=10)  # a reader queued behind the writer would wait here until the commit
        assert not t.is_alive(), "an auth read waited for the writer"
    assert got["token"].name == "rita" and got["account"].name == "rita"
    assert "rater" in got["roles"]


def test_app_sets_no_dependency_overrides_and_deps_see_the_app(sqlite_ws) -> None:
    from fastapi.testclient import TestClient

    from rlhfops.web.app import create_app

    app = create_app(sqlite_ws.root)
    assert app.dependency_overrides == {}
    c = TestClient(app)
    login(c, "lena")
    r = c.get("/api/monitor/triggers")  # deps.get_workspace: the app's workspace, behind the login
    assert r.status_code == 200, r.text


@pytest.mark.postgres
def test_a_stale_pooled_connection_is_replaced_after_idle(postgres_url: str, monkeypatch) -> None:
    """No ping on every checkout, but a connection idle in the pool is pinged and, when the server
    dropped it, replaced: the caller never sees the dead connection."""
    import sqlalchemy as sa

    from rlhfops.workspace import db

    engine = db.make_engine(postgres_url)
    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            pid = c.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with admin.begin() as a:  # the server drops the pooled connection while it is idle
            a.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
        with engine.connect() as c:
            assert c.exec_driver_sql("SELECT 1").scalar() == 1
            assert c.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
    finally:
        engine.dispose()
        admin.dispose()


@pytest.mark.postgres
def test_queueing_leaves_postgres_planning_fetches_with_indexes(postgres_ws) -> None:
    from rlhfops.annotate import queue as q

    queue_pairs(postgres_ws, pairs(400), "b1", 3)  # a bulk load, and no gold item
    engine = postgres_ws.engine
    compiled = q._FETCH_STATE.compile(dialect=engine.dialect)
    with engine.connect() as conn:
        params = compiled.construct_params({"rater": "rita"})
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}", params))
    assert "Seq Scan on items" not in plan, plan


def _statements(engine):
    """Record (SQL's first word, the DBAPI connection's autocommit) for every statement sent."""
    import sqlalchemy as sa

    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, _params, _context, _many) -> None:
        seen.append((statement.split()[0].upper(), bool(conn.connection.dbapi_connection.autocommit)))

    sa.event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: sa.event.remove(engine, "before_cursor_execute", record)


@pytest.mark.postgres
def test_postgres_fetch_is_two_statements_and_submit_one(postgres_ws) -> None:
    import sqlalchemy as sa

    from rlhfops.workspace import annotation_tables as m

    ws = postgres_ws
    queue_pairs(ws, pairs(4), "b1", 2)
    seen, stop = _statements(ws.engine)
    try:
        item, _b, _p = fetch_next_with_progress(ws, "rita", 0.0)
        n_fetch = len(seen)
        res = submit_label(
            ws, "rita", item.item_id, "left", criteria={"accuracy": "right"}, rationale="why", seconds=2.5
        )
    finally:
        stop()
    # each statement its own transaction (autocommit: psycopg sends no BEGIN / COMMIT)
    assert n_fetch == 2 and len(seen) == 3 and all(auto for _w, auto in seen), seen
    assert [w for w, _a in seen] == ["SELECT", "WITH", "WITH"]
    with ws.session() as s:
        label = s.execute(sa.select(m.Label)).scalar_one()
        asg = s.execute(sa.select(m.Assignment)).scalar_one()
        item_row = s.get(m.Item, item.item_id)
    # what was shown on the left is response_a unless the pair was swapped; criteria map the same way
    shown_a = item.left == item_row.response_a
    assert asg.swapped == (not shown_a) and label.swapped == asg.swapped
    assert (label.choice, label.criteria) == (
        ("A", {"accuracy": "B"}) if shown_a else ("B", {"accuracy": "A"})
    )
    assert (label.rationale, label.seconds, res.label_id, res.created) == ("why", 2.5, label.id, True)
    assert asg.done_at is not None and asg.slot == 0 and item_row.n_assigned == 1 and item_row.is_open


@pytest.mark.postgres
def test_postgres_single_statement_submit_refuses_and_repeats_cleanly(postgres_ws) -> None:
    import sqlalchemy as sa

    from rlhfops.annotate.queue import NotAssignedError
    from rlhfops.workspace import annotation_tables as m

    ws = postgres_ws
    queue_pairs(ws, pairs(2), "b1", 1)
    item, _b, _p = fetch_next_with_progress(ws, "rita", 0.0)
    with pytest.raises(NotAssignedError):  # not ravi's: nothing written, rita's assignment untouched
        submit_label(ws, "ravi", item.item_id, "left")
    with ws.session() as s:
        assert s.execute(sa.select(sa.func.count(m.Label.id))).scalar_one() == 0
        assert s.execute(sa.select(m.Assignment.rater, m.Assignment.done_at)).one() == ("rita", None)
    first = submit_label(ws, "rita", item.item_id, "tie")
    with ws.session() as s:
        done_at = s.execute(sa.select(m.Assignment.done_at)).scalar_one()
    again = submit_label(ws, "rita", item.item_id, "left")  # a double submit: the stored label back
    assert first.created and not again.created and (again.label_id, again.choice) == (first.label_id, "tie")
    with ws.session() as s:
        assert s.execute(sa.select(m.Assignment.done_at)).scalar_one() == done_at  # not closed again
        assert s.execute(sa.select(sa.func.count(m.Label.id))).scalar_one() == 1
    # k = 1: ravi gets the other pair, and then nothing is left for rita
    assert fetch_next_with_progress(ws, "ravi", 0.0)[0].item_id != item.item_id
    assert fetch_next_with_progress(ws, "rita", 0.0)[0] is None


@pytest.mark.postgres
def test_postgres_pool_keeps_the_web_threads_connections(postgres_ws) -> None:
    """The web app's 16 database threads (its default on PostgreSQL) all holding a connection at once,
    three times over, open 16 connections, not more: an overflow connection is closed when it comes
    back, and reopening one (a forked backend, authentication) cost more than a label (with a pool of 10,
    the load benchmark reconnected ~100 times a second)."""
    import sqlalchemy as sa

    from rlhfops.web.app import DEFAULT_THREADS_SERVER_DB as threads

    engine = postgres_ws.engine
    opened: list[int] = []
    sa.event.listen(engine, "connect", lambda *_a: opened.append(1))
    barrier, errors = threading.Barrier(threads), []

    def work() -> None:
        try:
            for _ in range(3):
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                    barrier.wait(timeout=30)  # every thread holds its connection here
                barrier.wait(timeout=30)  # and all have given it back
        except BaseException as err:  # re-raised below
            errors.append(err)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert errors == []
    assert len(opened) <= threads, (
        f"{len(opened)} connections opened for {threads} threads"
    )  # one may be pooled
