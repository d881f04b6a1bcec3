"""Request dependencies shared by the optional routers (gate pages, monitor API and pages).

Inside the web app (:func:`rlhfops.web.app.create_app`) :func:`get_workspace` is the app's own
workspace (``app.state.ws``); a router used on its own (a bare FastAPI app in a script or a test) opens
the workspace around ``$RLHFOPS_WORKSPACE`` or the working directory, closed after the request. The app
needs no ``dependency_overrides`` for it: with any override set, FastAPI re-inspects every dependency's
signature on every request, which cost ~5% of the annotation service's CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import HTTPException, Request

from rlhfops.errors import UserError


def get_workspace(request: Request) -> Iterator[Any]:
    """The workspace of the server (503 when there is none)."""
    own = getattr(request.app.state, "ws", None)
    if own is not None:
        yield own
        return
    from rlhfops.workspace import require_workspace

    try:
        ws = require_workspace()
    except UserError as err:
        raise HTTPException(status_code=503, detail=str(err)) from None
    try:
        yield ws
    finally:
        ws.close()


get_workspace.app_aware = True  # type: ignore[attr-defined]  # create_app need not override it


def _signed_in(request: Request) -> Any:
    """The signed-in user inside the web app (401 without one); None on a bare app without accounts."""
    if getattr(request.app.state, "auth", None) is None:
        return None  # a router mounted on its own: no accounts, the deployer's own access control
    from rlhfops.web.auth import resolve_user

    return resolve_user(request)


async def gate_reader(request: Request) -> None:
    """403 unless the signed-in user may read the gate pages (:data:`rlhfops.web.auth.GATE_READERS`)."""
    from rlhfops.web.auth import GATE_READERS

    user = _signed_in(request)
    if user is not None and not user.reads_gate:
        raise HTTPException(
            status_code=403,
            detail=f"{user.name} may not read the deployment gate (needs one of: {', '.join(GATE_READERS)})",
        )


async def monitor_reader(request: Request) -> None:
    """403 unless the signed-in user may read monitoring (:data:`rlhfops.web.auth.MONITOR_READERS`)."""
    from rlhfops.web.auth import MONITOR_READERS

    user = _signed_in(request)
    if user is not None and not user.reads_monitor:
        raise HTTPException(
            status_code=403,
            detail=f"{user.name} may not read monitoring (needs one of: {', '.join(MONITOR_READERS)})",
        )


async def monitor_writer(request: Request) -> None:
    """403 unless the signed-in user may post production logs (:data:`rlhfops.web.auth.MONITOR_WRITERS`);
    a session-cookie request also needs its ``X-CSRF-Token`` (bearer tokens do not)."""
    from rlhfops.web.auth import MONITOR_WRITERS, api_write_guard

    user = _signed_in(request)
    if user is None:
        return
    if not user.writes_monitor:
        raise HTTPException(
            status_code=403,
            detail=f"{user.name} may not post production logs (needs one of: {', '.join(MONITOR_WRITERS)})",
        )
    api_write_guard(request, user)
