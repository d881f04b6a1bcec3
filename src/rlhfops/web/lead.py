"""Pages for the annotation lead (calibration result, agreement, export) and the admin (accounts: add,
set a password, revoke: sign out everywhere)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from rlhfops.errors import UserError
from rlhfops.web.auth import User, auth_of, current_user, require
from rlhfops.web.pages import MAX_ID
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
    from rlhfops.annotate.report import agreement_report

    require(user, user.is_lead, "see the agreement report (needs the annotation-lead role)")
    st = request.app.state.settings
    report = agreement_report(request.app.state.ws, st.agreement_warning, st.turnover_flag)
    return render(request, "agreement.html", title="Agreement", r=report, settings=st)


@router.post("/lead/export")
def export_page(request: Request, csrf: str = Form(""), user: User = Depends(current_user)) -> Response:
    from rlhfops.annotate.export import export_preferences

    auth_of(request).check_csrf(request, csrf)
    require(user, user.is_lead, "export preferences (needs the annotation-lead role)")
    ws = request.app.state.ws
    out = ws.root / "exports" / f"prefs-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.jsonl"
    res = export_preferences(ws, out, user.name)
    return render(request, "exported.html", title="Exported", res=res)


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
