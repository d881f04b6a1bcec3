"""Monitoring API for the web app: ``POST /api/monitor/events`` and ``GET /api/monitor/triggers``.

``router`` is a FastAPI ``APIRouter``; :func:`rlhfops.web.app.create_app` mounts it behind the login.

* ``POST /api/monitor/events`` -- a JSON list of production records, or ``{"events": [...]}``, with the
  fields of ``rlhfops monitor ingest`` (prompt, response, model_id, time; optional id, task_completed,
  review_minutes, client_flag). Every row is checked first (:func:`rlhfops.monitor.ingest.validate_rows`);
  any bad row gives 422 with one line naming the row (1-based position in the list) and field, and
  nothing is stored. Otherwise the batch is stored as a production-log artifact, exactly as the CLI does,
  and the answer is the batch summary (201). Large files belong to the CLI (it streams; a request body is
  held in memory).
* ``GET /api/monitor/triggers`` -- the open triggers (id, play, play name, rule, evidence, opened_at).

Inside the web app: reading needs a role of :data:`rlhfops.web.auth.MONITOR_READERS`, posting one of
:data:`rlhfops.web.auth.MONITOR_WRITERS` (admins may both; others get 403), and a post signed in with
the session cookie needs ``X-CSRF-Token`` (bearer tokens are exempt). The body limit of the app
(``web.max_body_bytes``, default 10 MiB) applies: a larger post gets 413.

The workspace is :func:`get_workspace` (``$RLHFOPS_WORKSPACE`` or the server's working directory) and the
acting person :func:`get_person` (``$RLHFOPS_USER``, else the OS user); inside the web app they are its
configured workspace and the signed-in user.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request

from rlhfops.errors import UserError
from rlhfops.monitor.ingest import validate_rows
from rlhfops.web.auth import resolve_user
from rlhfops.web.deps import get_workspace, monitor_reader, monitor_writer

router = APIRouter(prefix="/api/monitor", tags=["monitor"])


def get_person(request: Request) -> str:
    """The signed-in user inside the web app; ``$RLHFOPS_USER`` (else the OS user) on a bare app."""
    if getattr(request.app.state, "auth", None) is not None:
        return resolve_user(request).name
    from rlhfops.workspace import acting_person

    return acting_person()


get_person.app_aware = True  # type: ignore[attr-defined]  # create_app need not override it


def _rows(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return body["events"]
    if isinstance(body, list):
        return body
    raise HTTPException(status_code=422, detail='expected a JSON list of records or {"events": [...]}')


@router.post("/events", status_code=201, dependencies=[Depends(monitor_writer)])
def post_events(
    body: Any = Body(..., description='A list of production records, or {"events": [...]}.'),
    ws: Any = Depends(get_workspace),
    person: str = Depends(get_person),
) -> dict[str, Any]:
    """Validate every record, then store the batch as a production-log artifact (all or nothing)."""
    from rlhfops.monitor.logs import ingest_to_workspace

    rows = _rows(body)
    try:
        records = validate_rows(rows, "events")
    except UserError as err:
        raise HTTPException(status_code=422, detail=str(err)) from None
    name = f"api-events-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl"
    with tempfile.TemporaryDirectory(prefix="rlhfops-events-") as tmp:
        path = Path(tmp) / "events.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for r in records:
                row = r.to_json()
                row.pop("line")
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        try:
            res = ingest_to_workspace(ws, path, person, source_name=name)
        except UserError as err:
            raise HTTPException(status_code=422, detail=str(err)) from None
    return res.to_json()


@router.get("/triggers", dependencies=[Depends(monitor_reader)])
def get_triggers(ws: Any = Depends(get_workspace)) -> list[dict[str, Any]]:
    """The open triggers: which play to re-enter, the rule and its evidence."""
    from rlhfops.monitor.engine import open_triggers

    return open_triggers(ws)
