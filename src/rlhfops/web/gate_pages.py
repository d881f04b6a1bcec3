"""Read-only gate pages for the web app: thresholds, evidence, decision history, failing examples.

``router`` is a FastAPI ``APIRouter``; :func:`rlhfops.web.app.create_app` mounts it behind the login.
Nothing here writes: decisions are made with ``rlhfops gate sign`` and ``rlhfops promote``.

* ``GET /gate`` -- the deployed model, the spec's gate thresholds, every model with its gate verdict.
* ``GET /gate/models/{model}`` -- thresholds with the evidence (links into failing examples) and the
  model's decision history.
* ``GET /gate/models/{model}/failures/{category}`` -- the red-team failing examples of a category.
* ``GET /gate/models/{model}/report`` -- the full HTML gate report (rendered, not stored).
* ``GET /gate/log`` -- the decision log with its verification.
* ``GET /gate/static/gate.css`` -- the pages' stylesheet (the app's CSP forbids inline styles).

The workspace is :func:`get_workspace` (``$RLHFOPS_WORKSPACE`` or the server's working directory; inside
the web app, its configured workspace).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from rlhfops.errors import UserError
from rlhfops.gate import log as dlog
from rlhfops.gate.decide import MODEL_KINDS, gate_evaluate, gate_model, model_evaluations
from rlhfops.report.data import gate_report_data
from rlhfops.report.render import CSS_FILE, fmt, render_html
from rlhfops.web.auth import optional_user
from rlhfops.web.deps import gate_reader, get_workspace  # the app's own workspace inside create_app

# Inside the web app every page needs a signed-in user who may read the gate (403 for a rater):
# rlhfops.web.auth.GATE_READERS (the stylesheet: any signed-in user).
router = APIRouter(prefix="/gate", tags=["gate"])
_READ = [Depends(gate_reader)]


# Inside the web app the gate pages carry the app's header (navigation, sign-out): the gate templates'
# base is replaced by this one, which extends the app's base.html.
IN_APP_BASE = """{% extends "base.html" %}
{% block head %}<link rel="stylesheet" href="{{ base }}/gate/static/gate.css">{% endblock %}
{% block content %}
<nav class="gate-nav"><a href="{{ base }}/gate">Gate</a> <a href="{{ base }}/gate/log">Decision log</a></nav>
<p class="muted">read-only: decisions are made with <code>rlhfops gate sign</code> and
<code>rlhfops promote</code></p>
<div class="scroll-x">{% block body %}{% endblock %}</div>
{% endblock %}
"""


def _env(in_app: bool = False):
    import jinja2

    gate = jinja2.FileSystemLoader(str(Path(__file__).parent.parent / "gate" / "templates"))
    loader: jinja2.BaseLoader = gate
    if in_app:
        web = jinja2.PackageLoader("rlhfops.web", "templates")
        loader = jinja2.ChoiceLoader([jinja2.DictLoader({"gate_base.html": IN_APP_BASE}), gate, web])
    return jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _page(request: Request, template: str, **ctx: Any) -> HTMLResponse:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    auth = getattr(request.app.state, "auth", None)
    if auth is None:  # the router on its own: the gate templates' own base
        return HTMLResponse(_env().get_template(template).render(base=base, fmt=fmt, **ctx))
    from rlhfops.web.render import csrf_token

    app_ctx = {
        "user": optional_user(request),
        "csrf": csrf_token(request),
        "project": request.app.state.ws.settings.name,
        "title": "Gate",
    }
    html = _env(in_app=True).get_template(template).render(base=base, fmt=fmt, **app_ctx, **ctx)
    return HTMLResponse(html)


def _model_or_404(ws: Any, ref: str):
    try:
        return gate_model(ws, ref)
    except UserError as err:
        raise HTTPException(status_code=404, detail=str(err)) from None


def _log_entries(ws: Any) -> tuple[list[Any], Any]:
    v = dlog.verify(ws)
    return dlog.entries(ws, verified=False), v


@router.get("", response_class=HTMLResponse, dependencies=_READ)
def gate_index(request: Request, ws: Any = Depends(get_workspace)) -> HTMLResponse:
    sv = ws.current_spec()
    entries, v = _log_entries(ws)
    trusted = entries if v.ok else []
    promos = [e for e in trusted if e.get("action") == "promote"]
    deployed = None
    if promos:
        e = promos[-1]
        deployed = {
            "model": e.get("model"),
            "model_kind": e.get("model_kind"),
            "person": e.get("person"),
            "promoted_at": e.get("logged_at"),
            "override": e.get("override"),
        }
    models = []
    for m in [a for a in ws.artifacts() if a.kind in MODEL_KINDS]:
        verdict = gate_evaluate(ws, m.id).verdict if sv.spec is not None else "?"
        mine = [e for e in trusted if e.get("model") == m.id]
        models.append(
            {
                "id": m.id,
                "kind": m.kind,
                "creator": m.creator,
                "created_at": m.created_at.isoformat(),
                "n_evals": len(model_evaluations(ws, m)),
                "verdict": verdict,
                "decision": mine[-1].get("decision") if mine else None,
                "override": bool(mine[-1].get("override")) if mine else False,
            }
        )
    return _page(
        request,
        "gate_index.html",
        deployed=deployed,
        log_problem=None if v.ok else v.problem,
        spec_hash=sv.hash,
        spec_signed=sv.is_signed_and_current,
        gate=sv.spec.gate if sv.spec is not None else None,
        models=models,
    )


@router.get("/log", response_class=HTMLResponse, dependencies=_READ)
def gate_log_page(request: Request, ws: Any = Depends(get_workspace)) -> HTMLResponse:
    entries, v = _log_entries(ws)
    return _page(request, "gate_log.html", entries=entries, verification=v)


@router.get("/models/{model}", response_class=HTMLResponse, dependencies=_READ)
def gate_model_page(model: str, request: Request, ws: Any = Depends(get_workspace)) -> HTMLResponse:
    m = _model_or_404(ws, model)
    try:
        g = gate_evaluate(ws, m.id)
    except UserError as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    entries, v = _log_entries(ws)
    decisions = [e for e in entries if e.get("model") == m.id] if v.ok else []
    return _page(request, "gate_model.html", model=m, g=g, decisions=decisions)


@router.get("/models/{model}/failures/{category}", response_class=HTMLResponse, dependencies=_READ)
def gate_failures_page(
    model: str, category: str, request: Request, ws: Any = Depends(get_workspace)
) -> HTMLResponse:
    m = _model_or_404(ws, model)
    g = gate_evaluate(ws, m.id)
    row = g.evidence.redteam.get(category)
    if row is None:
        raise HTTPException(
            status_code=404, detail=f"red-team category {category!r} not evaluated for {m.short_id}"
        )
    return _page(
        request,
        "gate_failures.html",
        model=m,
        category=category,
        row=row,
        failures=list(row.get("failures") or []),
        source=g.evidence.sources.get(f"redteam:{category}"),
    )


@router.get("/models/{model}/report", response_class=HTMLResponse, dependencies=_READ)
def gate_report_page(model: str, request: Request, ws: Any = Depends(get_workspace)) -> HTMLResponse:
    m = _model_or_404(ws, model)
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return HTMLResponse(render_html(gate_report_data(ws, m.id), css_href=f"{base}/gate/static/gate.css"))


@router.get("/static/gate.css")
def gate_css() -> Response:
    return Response(CSS_FILE.read_text(encoding="utf-8"), media_type="text/css")
