"""A rater's own labels: undo the last one within the window, and "my recent labels" to change any of
them (:mod:`rlhfops.annotate.label_changes`: the change is recorded, the final label is what counts)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from rlhfops.web.auth import User, auth_of, current_user, require
from rlhfops.web.pages import IdPath
from rlhfops.web.render import render

router = APIRouter(include_in_schema=False)
_WHAT = "change labels (needs the rater role)"


@router.get("/rate/recent")
def recent_page(request: Request, changed: int | None = None, user: User = Depends(current_user)) -> Response:
    from rlhfops.annotate.label_changes import UNDO_SECONDS, recent_labels

    require(user, user.is_rater, _WHAT)
    g = request.app.state.guidelines.get()
    return render(
        request,
        "recent.html",
        title="My recent labels",
        labels=recent_labels(request.app.state.ws, user.name),
        allowed=g.allowed,
        changed=changed,
        undo_seconds=int(UNDO_SECONDS),
    )


@router.post("/rate/undo/{label_id}")
def undo(
    label_id: IdPath, request: Request, csrf: str = Form(""), user: User = Depends(current_user)
) -> Response:
    from rlhfops.annotate.label_changes import undo_last

    auth_of(request).check_csrf(request, csrf)
    require(user, user.is_rater, _WHAT)
    undo_last(request.app.state.ws, user.name, label_id)
    return RedirectResponse("/rate", status_code=303)


@router.post("/rate/change/{item_id}")
def change(
    item_id: IdPath,
    request: Request,
    choice: str = Form(..., max_length=10),
    rationale: str = Form("", max_length=10_000),
    csrf: str = Form(""),
    user: User = Depends(current_user),
) -> Response:
    from rlhfops.annotate.label_changes import change_label

    auth_of(request).check_csrf(request, csrf)
    require(user, user.is_rater, _WHAT)
    g = request.app.state.guidelines.get()
    change_label(request.app.state.ws, user.name, item_id, choice, rationale, allowed=g.allowed)
    return RedirectResponse(f"/rate/recent?changed={item_id}", status_code=303)
