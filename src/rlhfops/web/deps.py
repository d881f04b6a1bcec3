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
