"""Pages for the annotation lead (calibration result, agreement, export) and the admin (accounts: add,
set a password, revoke: sign out everywhere)."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from rlhfops.errors import UserError
from rlhfops.web.auth import User, auth_of, current_user, require
from rlhfops.web.pages import MAX_ID, IdPath
from rlhfops.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/lead/calibration")
def calibration_page(
    request: Request, round: int | None = Query(None, ge=1, le=MAX_ID), user: User = Depends(current_user)
) -> Response:
    from rlhfops.annotate.calibration import round_result

    require(user, user.is_lead, "see calibration results (needs the annotation-lead role)")
    try:
        result = round_result(request.app.state.ws, round).to_json()
    except UserError as err:
        result, message = None, str(err)
    else:
        message = None
    return render(
        request,
        "calibration.html",
        title="Calibration",
        result=result,
        message=message,
        default_n=request.app.state.settings.calibration_size,
    )


@router.post("/lead/calibration")
def calibration_start(
    request: Request,
    n: int = Form(..., ge=2, le=10_000),
    csrf: str = Form(""),
    user: User = Depends(current_user),
) -> Response:
    from rlhfops.annotate.calibration import start_round

    auth_of(request).check_csrf(request, csrf)
    require(user, user.is_lead, "start a calibration round (needs the annotation-lead role)")
    st = request.app.state.settings
    rid = start_round(request.app.state.ws, user.name, n, st.calibration_threshold)
    return RedirectResponse(f"/lead/calibration?round={rid}", status_code=303)


@router.get("/lead/agreement")
def agreement_page(request: Request, user: User = Depends(current_user)) -> Response:
    from rlhfops.annotate.export import spec_min_agreement
    from rlhfops.annotate.item_view import split_items
    from rlhfops.annotate.report import agreement_report

    require(user, user.is_lead, "see the agreement report (needs the annotation-lead role)")
    st = request.app.state.settings
    ws = request.app.state.ws
    report = agreement_report(ws, st.agreement_warning, st.turnover_flag)
    need = spec_min_agreement(ws)
    alpha = report["overall"].get("alpha")
    below = need is not None and (alpha is None or alpha < need)
    return render(
        request,
        "agreement.html",
        title="Agreement",
        r=report,
        settings=st,
        split=split_items(ws),
        min_agreement=need,
        below=below,
        export_key=secrets.token_urlsafe(12),
    )


_EXPORT_LOCK = threading.Lock()


@router.post("/lead/export")
def export_page(
    request: Request,
    csrf: str = Form(""),
    key: str = Form("", max_length=100),
    reason: str = Form("", max_length=2000),
    user: User = Depends(current_user),
) -> Response:
    """Export and download the preferences file. ``key`` (one per rendering of the agreement page) makes
    a double click download the same file instead of writing a second one; below the spec's
    min_agreement a reason is needed, and recorded in the artifact."""
    from rlhfops.annotate.export import BelowAgreementError, export_preferences, spec_min_agreement

    auth_of(request).check_csrf(request, csrf)
    require(user, user.is_lead, "export preferences (needs the annotation-lead role)")
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,40}", key):
        raise HTTPException(
            422, "export: the form's key is missing; open the agreement page and export from there"
        )
    ws = request.app.state.ws
    out = ws.root / "exports" / f"prefs-{key}.jsonl"
    with _EXPORT_LOCK:
        if not out.exists():
            try:
                export_preferences(
                    ws, out, user.name, min_agreement=spec_min_agreement(ws), reason=reason or None
                )
            except BelowAgreementError as err:
                return render(
                    request,
                    "error.html",
                    status_code=409,
                    title="Export needs a reason",
                    status=409,
                    detail=str(err),
                    kind="",
                    rating=False,
                )
    return FileResponse(
        out, media_type="application/x-ndjson", filename=f"preferences-{datetime.now(UTC):%Y%m%d}.jsonl"
    )


@router.get("/lead/raters/{name}")
def rater_page(name: str, request: Request, user: User = Depends(current_user)) -> Response:
    """One rater's labels for the lead, each linked to its item page."""
    from rlhfops.annotate.item_view import rater_label_rows

    require(user, user.is_lead, "see labels (needs the annotation-lead role)")
    rows = rater_label_rows(request.app.state.ws, name[:200])
    return render(request, "lead_rater.html", title=f"Labels by {name[:200]}", rater=name[:200], rows=rows)


@router.get("/lead/items/{item_id}")
def item_page(item_id: IdPath, request: Request, user: User = Depends(current_user)) -> Response:
    """One item for the lead: each rater's choice, criteria, rationale and time, gold answer, difficulty."""
    from rlhfops.annotate.item_view import item_detail

    require(user, user.is_lead, "see labels (needs the annotation-lead role)")
    return render(
        request, "lead_item.html", title=f"Item {item_id}", d=item_detail(request.app.state.ws, item_id)
    )


@router.get("/admin/accounts")
def accounts_page(request: Request, user: User = Depends(current_user)) -> Response:
    from rlhfops.annotate.accounts import accounts

    require(user, False, "manage accounts (admin only)")
    ws = request.app.state.ws
    return render(
        request, "accounts.html", title="Accounts", accounts=accounts(ws), people=ws.people(), revoked=None
    )


def _accounts(ws):
    from rlhfops.annotate.accounts import accounts

    return accounts(ws)


@router.post("/admin/accounts")
def accounts_add(
    request: Request,
    name: str = Form(..., max_length=200),
    password: str = Form(..., max_length=1000),
    csrf: str = Form(""),
    user: User = Depends(current_user),
) -> Response:
    from rlhfops.annotate.accounts import set_account

    auth_of(request).check_csrf(request, csrf)
    require(user, False, "manage accounts (admin only)")
    ws = request.app.state.ws
    if name.strip() not in {n for n, _role in ws.people()}:
        raise UserError(
            f"account {name.strip()!r}: not a workspace person; add them first (rlhfops people add NAME ROLE)"
        )
    set_account(ws, name, password)
    return RedirectResponse("/admin/accounts", status_code=303)


@router.post("/admin/accounts/revoke")
def accounts_revoke(
    request: Request,
    name: str = Form(..., max_length=200),
    csrf: str = Form(""),
    user: User = Depends(current_user),
) -> Response:
    """Sign an account out everywhere: every session ends at once, every API token is deleted (a running
    server honours a deleted token within a few seconds: it caches token lookups briefly)."""
    from rlhfops.annotate.accounts import revoke_tokens
    from rlhfops.web.sessions import revoke_sessions

    auth_of(request).check_csrf(request, csrf)
    require(user, False, "manage accounts (admin only)")
    ws = request.app.state.ws
    sessions = revoke_sessions(ws, name.strip())
    if sessions is None:
        raise UserError(f"revoke: no account {name.strip()!r}")
    tokens = revoke_tokens(ws, name.strip())
    return render(
        request,
        "accounts.html",
        title="Accounts",
        accounts=_accounts(ws),
        people=ws.people(),
        revoked=f"{name.strip()}: {sessions} session(s) ended, {tokens} API token(s) revoked.",
    )
