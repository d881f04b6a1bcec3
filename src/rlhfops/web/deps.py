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
from rlhfops.web.auth import GATE_READERS, MONITOR_READERS, MONITOR_WRITERS, api_write_guard, resolve_user


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
    return resolve_user(request)


def _require(request: Request, may: str, action: str, roles: tuple[str, ...]) -> Any:
    """The signed-in user (None on a bare app); 403 naming ``action`` and ``roles`` unless ``user.<may>``."""
    user = _signed_in(request)
    if user is not None and not getattr(user, may):
        raise HTTPException(
            status_code=403, detail=f"{user.name} may not {action} (needs one of: {', '.join(roles)})"
        )
    return user


async def gate_reader(request: Request) -> None:
    """403 unless the signed-in user may read the gate pages (:data:`rlhfops.web.auth.GATE_READERS`)."""
    _require(request, "reads_gate", "read the deployment gate", GATE_READERS)


async def monitor_reader(request: Request) -> None:
    """403 unless the signed-in user may read monitoring (:data:`rlhfops.web.auth.MONITOR_READERS`)."""
    _require(request, "reads_monitor", "read monitoring", MONITOR_READERS)


async def monitor_writer(request: Request) -> None:
    """403 unless the signed-in user may post production logs (:data:`rlhfops.web.auth.MONITOR_WRITERS`);
    a session-cookie request also needs its ``X-CSRF-Token`` (bearer tokens do not)."""
    user = _require(request, "writes_monitor", "post production logs", MONITOR_WRITERS)
    if user is None:
        return
    api_write_guard(request, user)
