"""Request dependencies shared by the optional routers (gate pages, monitor API and pages).

``create_app`` overrides :func:`get_workspace` with the app's own workspace; a router used on its own
(a bare FastAPI app in a script or a test) opens the workspace around ``$RLHFOPS_WORKSPACE`` or the
working directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import HTTPException

from rlhfops.errors import UserError


def get_workspace() -> Iterator[Any]:
    """The workspace of the server, closed after the request (503 when there is none)."""
    from rlhfops.workspace import require_workspace

    try:
        ws = require_workspace()
    except UserError as err:
        raise HTTPException(status_code=503, detail=str(err)) from None
    try:
        yield ws
    finally:
        ws.close()
