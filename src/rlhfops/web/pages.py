"""Server-rendered pages for raters and experts: login, the comparison page, guidelines, demonstrations.

Every form posts a ``csrf`` field (checked against the signed CSRF cookie). Pages without a signed-in
user answer 401 with a link to the login page.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response

from rlhfops.web.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    User,
    auth_of,
    current_user,
    optional_user,
    require,
)
from rlhfops.web.render import render

MAX_ID = 2**31 - 1  # ids are INTEGER columns: a larger one cannot exist (422, not a database error)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A numeric id.")]

router = APIRouter(include_in_schema=False)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/")
def home(request: Request) -> Response:
    user = optional_user(request)
    if user is None:
        return _see_other("/login")
    if user.is_rater:
        return _see_other("/rate")
    if user.is_lead:
        return _see_other("/lead/agreement")
    if user.is_expert:
        return _see_other("/demos")
    return render(request, "home.html", title="Home")


@router.get("/login")
def login_page(request: Request, error: str | None = None) -> Response:
    return render(request, "login.html", title="Sign in", error=error)


@router.post("/login")
def login(
    request: Request,
    name: str = Form(..., max_length=200),
    password: str = Form(..., max_length=1000),
    csrf: str = Form(""),
) -> Response:
    from rlhfops.annotate.accounts import authenticate
    from rlhfops.web.sessions import create_session, end_session, login_key

    auth = auth_of(request)
    auth.check_csrf(request, csrf, anonymous_ok=True)
    where = auth.client_address(request)
    shown = login_key(name)
    wait = auth.throttle.retry_after(name, where)
    if wait is not None:
        error = f"Too many failed sign-ins for {shown}; try again in {int(wait // 60) + 1} min."
        resp = render(request, "login.html", status_code=429, title="Sign in", error=error)
        resp.headers["Retry-After"] = str(int(wait))
        return resp
    acc = authenticate(request.app.state.ws, name, password)
    if acc is None:
        auth.throttle.failed(name, where)
        return render(
            request, "login.html", status_code=401, title="Sign in", error="Wrong name or password."
        )
    auth.throttle.succeeded(name, where)
    end_session(request.app.state.ws, request.cookies.get(SESSION_COOKIE))  # a new sign-in: a new session
    resp = _see_other("/")
    resp.set_cookie(
        SESSION_COOKIE,
        create_session(request.app.state.ws, acc.name),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return resp


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    """End the session on the server (a copy of the cookie is worthless from now on)."""
    from rlhfops.web.sessions import end_session

    auth = auth_of(request)
    auth.check_csrf(request, csrf)
    end_session(request.app.state.ws, request.cookies.get(SESSION_COOKIE))
    resp = _see_other("/login")
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@router.get("/rate")
def rate_page(request: Request, stale: int | None = None, user: User = Depends(current_user)) -> Response:
    """The comparison page: the rater's next pair, left/right as assigned. ``stale``: an item this rater
    had already labelled when a second tab submitted it again (the notice shows what they chose)."""
    from rlhfops.annotate.label_changes import recent_labels
    from rlhfops.annotate.queue import fetch_next_with_progress
    from rlhfops.annotate.rater_view import left_in_batch, shown_label

    require(user, user.is_rater, "label pairs (needs the rater role)")
    ws = request.app.state.ws
    item, blocked, prog = fetch_next_with_progress(
        ws, user.name, gold_rate=request.app.state.settings.gold_rate
    )
    g = request.app.state.guidelines.get()
    earlier = shown_label(ws, user.name, stale) if stale is not None and 0 < stale <= MAX_ID else None
    return render(
        request,
        "rate.html",
        title="Compare",
        item=item,
        blocked=blocked,
        progress=prog,
        left=left_in_batch(ws, user.name, item.item_id) if item is not None else 0,
        stale=earlier,
        undo=next((x for x in recent_labels(ws, user.name, limit=1) if x.undoable), None),
        allowed=g.allowed,
        criteria=g.criteria,
        started=f"{time.time():.3f}",
    )


def _seconds_taken(form: Any) -> float | None:
    """Seconds from when the pair was shown: the page's own millisecond count (``elapsed_ms``), else the
    server's clock since the page was rendered (``started``); None when neither is usable."""
    try:
        ms = float(_field(form, "elapsed_ms") or "nan")
    except ValueError:
        ms = float("nan")
    if 0 <= ms < 1e9:
        return round(ms) / 1000.0
    try:
        started = float(_field(form, "started") or 0)
    except ValueError:
        started = 0.0
    now = time.time()
    return round(now - started, 3) if 0 < started <= now and now - started < 1e6 else None


@router.post("/rate/{item_id}")
async def rate_submit(item_id: IdPath, request: Request, user: User = Depends(current_user)) -> Response:
    """Store the label (choice, per-criterion choices, rationale, time taken), then the next pair; a label
    that was already there (a second tab) is kept and the next page says so."""
    from starlette.concurrency import run_in_threadpool

    from rlhfops.annotate.queue import submit_label

    form = await request.form()
    auth_of(request).check_csrf(request, _field(form, "csrf"))
    require(user, user.is_rater, "label pairs (needs the rater role)")
    g = request.app.state.guidelines.get()
    choice = _field(form, "choice")
    if not choice:
        raise HTTPException(422, "choose left, right" + ("" if len(g.allowed) == 2 else " or another option"))
    criteria = {name: _field(form, f"criterion_{name}") for name, _d in g.criteria}
    result = await run_in_threadpool(
        submit_label,
        request.app.state.ws,
        user.name,
        item_id,
        choice,
        criteria={k: v for k, v in criteria.items() if v},
        rationale=_field(form, "rationale")[:10_000],
        seconds=_seconds_taken(form),
        allowed=g.allowed,
    )
    return _see_other("/rate" if result.created else f"/rate?stale={item_id}")


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.get("/guidelines")
def guidelines_page(request: Request, user: User = Depends(current_user)) -> Response:
    g = request.app.state.guidelines.get()
    return render(request, "guidelines.html", title="Guidelines", g=g)


@router.get("/demos")
def demos_page(request: Request, user: User = Depends(current_user)) -> Response:
    from rlhfops.annotate.demos import demo_prompts

    require(user, user.is_expert, "see demonstrations (needs a domain-expert role)")
    return render(request, "demos.html", title="Demonstrations", prompts=demo_prompts(request.app.state.ws))


@router.get("/demos/{item_id}")
def demo_page(item_id: IdPath, request: Request, user: User = Depends(current_user)) -> Response:
    from rlhfops.annotate.demos import demos_for

    require(user, user.is_expert, "see demonstrations (needs a domain-expert role)")
    prompt, demos = demos_for(request.app.state.ws, item_id)
    mine = next((d for d in demos if d.author == user.name), None)
    others = [d for d in demos if d.author != user.name and (user.is_demo_lead or user.is_admin)]
    g = request.app.state.guidelines.get()
    return render(
        request,
        "demo_edit.html",
        title="Demonstration",
        item_id=item_id,
        prompt=prompt,
        mine=mine,
        others=others,
        g=g,
    )


@router.post("/demos/{item_id}")
def demo_save(
    item_id: IdPath,
    request: Request,
    text: str = Form(..., max_length=100_000),
    csrf: str = Form(""),
    user: User = Depends(current_user),
) -> Response:
    from rlhfops.annotate.demos import save_demo

    auth_of(request).check_csrf(request, csrf)
    require(user, user.is_expert, "write demonstrations (needs a domain-expert role)")
    save_demo(request.app.state.ws, user.name, item_id, text)
    return _see_other(f"/demos/{item_id}")


@router.post("/demos/review/{demo_id}")
def demo_review(
    demo_id: IdPath,
    request: Request,
    decision: str = Form(..., max_length=10),
    item_id: int = Form(..., ge=1, le=MAX_ID),
    csrf: str = Form(""),
    user: User = Depends(current_user),
) -> Response:
    from rlhfops.annotate.demos import review_demo

    auth_of(request).check_csrf(request, csrf)
    require(user, user.is_demo_lead, "review demonstrations (needs the domain-expert-lead role)")
    review_demo(request.app.state.ws, user.name, demo_id, decision == "accept")
    return _see_other(f"/demos/{item_id}")
