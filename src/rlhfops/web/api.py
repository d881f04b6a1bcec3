"""The JSON API under ``/api`` (documented in the OpenAPI schema at ``/openapi.json``).

Every route needs a signed-in user (401); writes with the session cookie need ``X-CSRF-Token`` (403),
bearer tokens do not. A rater sees only their own items and labels (403 for anyone else's); the
calibration, agreement and export routes are for the annotation lead (or an admin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rlhfops.web.auth import User, api_write_guard, current_user, require

IdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="A numeric id.")]

router = APIRouter(prefix="/api", tags=["annotation"])

Choice = Literal["left", "right", "tie", "both_bad", "skip"]
CriterionChoice = Literal["left", "right", "tie"]


class Me(BaseModel):
    name: str
    roles: list[str]
    is_admin: bool


class ItemOut(BaseModel):
    item_id: int
    kind: str
    prompt: str
    left: str
    right: str
    calibration: bool


class NextOut(BaseModel):
    item: ItemOut | None = Field(
        None, description="The next item, or null when none is left or labelling is blocked."
    )
    blocked: str | None = Field(
        None, description="Why production labelling is blocked (calibration), if it is."
    )
    labelled: int
    open: int


class LabelIn(BaseModel):
    item_id: int = Field(..., ge=1, le=2**31 - 1)
    choice: Choice = Field(
        ..., description="As shown: left, right, tie, both_bad (or skip), per the spec's policies."
    )
    criteria: dict[str, CriterionChoice] = Field(default_factory=dict, max_length=10)
    rationale: str = Field("", max_length=10_000)
    seconds: float | None = Field(None, ge=0, le=1e6)


class LabelOut(BaseModel):
    label_id: int
    item_id: int
    created: bool = Field(..., description="False when this label was already stored (a double submit).")


class LabelView(BaseModel):
    item_id: int
    choice: str
    rationale: str
    created_at: str


class CalibrationIn(BaseModel):
    n: int | None = Field(None, ge=2, le=10_000, description="Pairs in the round (default: settings).")


class ExportIn(BaseModel):
    min_labels: int | None = Field(
        None, ge=1, le=100, description="Labels a pair needs (default: its overlap k)."
    )


class DemoIn(BaseModel):
    text: str = Field(..., min_length=1, max_length=100_000)


class ReviewIn(BaseModel):
    accept: bool


class AccountIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)
    password: str = Field(..., min_length=8, max_length=1000)
    is_admin: bool = False


def _ws(request: Request) -> Any:
    return request.app.state.ws


@router.get("/me", response_model=Me)
def me(user: User = Depends(current_user)) -> Me:
    """Who is signed in and their roles."""
    return Me(name=user.name, roles=sorted(user.roles), is_admin=user.is_admin)


@router.get("/next", response_model=NextOut)
def next_item(request: Request, user: User = Depends(current_user)) -> Any:
    """The rater's next comparison (assigned on first request; the same one until it is labelled)."""
    from rlhfops.annotate.queue import fetch_next_with_progress

    require(user, user.is_rater, "label pairs (needs the rater role)")
    got, blocked, p = fetch_next_with_progress(_ws(request), user.name, request.app.state.settings.gold_rate)
    # built as NextOut's JSON directly (the hot path: no second validation of our own output)
    item = got.to_json() if got is not None else None
    return JSONResponse({"item": item, "blocked": blocked, "labelled": p.labelled, "open": p.open})


@router.post("/labels", response_model=LabelOut, status_code=201, responses={200: {"model": LabelOut}})
def post_label(body: LabelIn, request: Request, user: User = Depends(current_user)) -> Any:
    """Store a label for an item assigned to you; a second submit returns the stored one (200)."""
    from rlhfops.annotate.queue import submit_label

    require(user, user.is_rater, "label pairs (needs the rater role)")
    api_write_guard(request, user)
    g = request.app.state.guidelines.get()
    known = {n for n, _d in g.criteria}
    unknown = sorted(set(body.criteria) - known) if g.ok else []
    if unknown:
        raise HTTPException(422, f"criteria {unknown} are not in the spec ({', '.join(sorted(known))})")
    res = submit_label(
        _ws(request),
        user.name,
        body.item_id,
        body.choice,
        criteria=dict(body.criteria),
        rationale=body.rationale,
        seconds=body.seconds,
        allowed=g.allowed,
    )
    out = {"label_id": res.label_id, "item_id": res.item_id, "created": res.created}  # LabelOut's JSON
    return JSONResponse(out, status_code=201 if res.created else 200)


@router.get("/items/{item_id}", response_model=ItemOut)
def get_item(item_id: IdPath, request: Request, user: User = Depends(current_user)) -> ItemOut:
    """An item assigned to you, as you see it (403 when it is not yours)."""
    from rlhfops.annotate.queue import assigned_item

    return ItemOut(**assigned_item(_ws(request), user.name, item_id).to_json())


@router.get("/labels", response_model=list[LabelView])
def get_labels(
    request: Request, rater: str | None = Query(None, max_length=200), user: User = Depends(current_user)
) -> list[LabelView]:
    """A rater's labels (default: yours); other raters' labels only for the annotation lead."""
    from rlhfops.annotate.queue import rater_labels

    who = rater or user.name
    require(user, who == user.name or user.is_lead, f"see {who}'s labels")
    return [LabelView(**x) for x in rater_labels(_ws(request), who)]


@router.get("/raters/{name}/items", response_model=list[ItemOut])
def rater_items(
    name: Annotated[str, Path(max_length=200)], request: Request, user: User = Depends(current_user)
) -> list[ItemOut]:
    """Items assigned to a rater (yours; anyone's for the annotation lead)."""
    from rlhfops.annotate.queue import assigned_items

    require(user, name == user.name or user.is_lead, f"see {name}'s items")
    return [ItemOut(**x.to_json()) for x in assigned_items(_ws(request), name)]


@router.get("/guidelines")
def guidelines(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    """The spec's guidelines for raters (task, good / bad, criteria, policies; no edge-case appendix)."""
    return request.app.state.guidelines.get().to_json()


@router.get("/calibration")
def calibration(
    request: Request, round: int | None = Query(None, ge=1, le=2**31 - 1), user: User = Depends(current_user)
) -> dict[str, Any]:
    """A calibration round's result (default: the latest): pairwise and overall agreement, split items."""
    from rlhfops.annotate.calibration import round_result

    require(user, user.is_lead, "see calibration results")
    return round_result(_ws(request), round).to_json()


@router.post("/calibration", status_code=201)
def start_calibration(
    body: CalibrationIn, request: Request, user: User = Depends(current_user)
) -> dict[str, Any]:
    """Start a calibration round (the same N pairs for every rater)."""
    from rlhfops.annotate.calibration import start_round

    require(user, user.is_lead, "start a calibration round")
    api_write_guard(request, user)
    st = request.app.state.settings
    rid = start_round(_ws(request), user.name, body.n or st.calibration_size, st.calibration_threshold)
    return {"round": rid}


@router.get("/agreement")
def agreement(request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    """Agreement overall, per rater, per item difficulty; gold accuracy over time; turnover."""
    from rlhfops.annotate.report import agreement_report

    require(user, user.is_lead, "see the agreement report")
    st = request.app.state.settings
    return agreement_report(_ws(request), st.agreement_warning, st.turnover_flag)


@router.post("/export", status_code=201)
def export(body: ExportIn, request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    """Export the preference dataset (JSONL in the workspace's exports/), registered in the lineage."""
    from rlhfops.annotate.export import export_preferences

    require(user, user.is_lead, "export preferences")
    api_write_guard(request, user)
    ws = _ws(request)
    out = ws.root / "exports" / f"prefs-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.jsonl"
    res = export_preferences(ws, out, user.name, body.min_labels)
    return {
        "artifact_id": res.artifact_id,
        "path": str(res.path),
        "rows": res.rows,
        "dropped": res.dropped,
        "agreement": res.alpha,
        "percent_agreement": res.percent_agreement,
    }


@router.get("/demos")
def list_demos(request: Request, user: User = Depends(current_user)) -> list[dict[str, Any]]:
    """Demonstration prompts and the statuses of their demonstrations."""
    from rlhfops.annotate.demos import demo_prompts

    require(user, user.is_expert, "see demonstrations")
    return demo_prompts(_ws(request))


@router.get("/demos/{item_id}")
def get_demos(item_id: IdPath, request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    """A prompt with its demonstrations (experts see their own; the lead sees all)."""
    from rlhfops.annotate.demos import demos_for

    require(user, user.is_expert, "see demonstrations")
    prompt, demos = demos_for(_ws(request), item_id)
    shown = [d.to_json() for d in demos if user.is_demo_lead or user.is_admin or d.author == user.name]
    return {"item_id": item_id, "prompt": prompt, "demos": shown}


@router.put("/demos/{item_id}")
def put_demo(
    item_id: IdPath, body: DemoIn, request: Request, user: User = Depends(current_user)
) -> dict[str, Any]:
    """Write or edit your demonstration for a prompt (back to draft)."""
    from rlhfops.annotate.demos import save_demo

    require(user, user.is_expert, "write demonstrations")
    api_write_guard(request, user)
    return save_demo(_ws(request), user.name, item_id, body.text).to_json()


@router.post("/demos/review/{demo_id}")
def review(
    demo_id: IdPath, body: ReviewIn, request: Request, user: User = Depends(current_user)
) -> dict[str, Any]:
    """Accept or reject a demonstration (domain-expert lead)."""
    from rlhfops.annotate.demos import review_demo

    require(user, user.is_demo_lead, "review demonstrations")
    api_write_guard(request, user)
    return review_demo(_ws(request), user.name, demo_id, body.accept).to_json()


@router.get("/admin/accounts")
def list_accounts(request: Request, user: User = Depends(current_user)) -> list[dict[str, Any]]:
    """Accounts (admin)."""
    from rlhfops.annotate.accounts import accounts

    require(user, False, "manage accounts")
    return [{"name": a.name, "is_admin": a.is_admin} for a in accounts(_ws(request))]


@router.post("/admin/accounts", status_code=201)
def add_account(body: AccountIn, request: Request, user: User = Depends(current_user)) -> dict[str, Any]:
    """Create an account or set its password (admin)."""
    from rlhfops.annotate.accounts import set_account

    require(user, False, "manage accounts")
    api_write_guard(request, user)
    created = set_account(_ws(request), body.name, body.password, body.is_admin)
    return {"name": body.name.strip(), "created": created}
