"""Jinja2 rendering with autoescape always on (model output is untrusted and must show as text)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from rlhfops.web.auth import optional_user
from rlhfops.web.markdown import render_markdown

BASE_TEMPLATE = "base.html"


def make_env() -> Environment:
    """Templates from ``rlhfops/web/templates`` plus any extra package loaders; autoescape ON."""
    env = Environment(
        loader=PackageLoader("rlhfops.web", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{100 * float(v):.1f}%"

    env.filters["md"] = render_markdown
    env.filters["num"] = lambda v, d=3: "n/a" if v is None else f"{float(v):.{d}f}"
    return env


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``template`` with ``user``, ``csrf`` and ``title`` available to every page."""
    env: Environment = request.app.state.templates

    base = {
        "user": optional_user(request),
        "csrf": csrf_token(request),
        "project": request.app.state.ws.settings.name,
        "title": ctx.pop("title", ""),
    }
    html = env.get_template(template).render(**base, **ctx)
    return HTMLResponse(html, status_code=status_code)


def csrf_token(request: Request) -> str:
    """The CSRF token for this request's forms (bound to the session once signed in)."""
    auth = getattr(request.app.state, "auth", None)
    return auth.csrf_token(request) if auth is not None else getattr(request.state, "csrf", "")
