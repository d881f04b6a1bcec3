"""The web app: ``create_app(workspace_root)`` -> FastAPI.

Server-rendered pages (Jinja2, autoescape on, no inline scripts: a Content-Security-Policy forbids them)
and a JSON API under ``/api`` (OpenAPI at ``/openapi.json``, docs at ``/docs`` and ``/redoc``: signed-in
admins only, 401 / 403 for anyone else). Request bodies larger than ``web.max_body_bytes`` (default
10 MiB) get 413 (:class:`BodyLimitMiddleware`); a number too large for the database gets 422.

The other parts of rlhfops add their routers by plain imports in :func:`_mount_signed_in` (the gate
pages, the monitor page and API), mounted behind the login (401 without one). Their dependencies find the
app's workspace and the signed-in user on the request (:mod:`rlhfops.web.deps`), so the app overrides
none. Pages should extend the base template :data:`rlhfops.web.render.BASE_TEMPLATE` (``"base.html"``:
blocks ``title`` and ``content``) and render with :func:`rlhfops.web.render.render` (which passes
``user``, ``csrf`` and ``project``).
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as _Request

from rlhfops.annotate.settings import annotation_settings
from rlhfops.errors import UserError
from rlhfops.web import api, gate_pages, lead, monitor_api, monitor_pages, pages, rater_pages
from rlhfops.web.auth import CSRF_COOKIE, Auth, current_user, require
from rlhfops.web.guidelines import GuidelinesCache
from rlhfops.web.render import make_env, render
from rlhfops.web.settings import web_settings

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
# Threads for the blocking (database) handlers. Few are enough on SQLite, which runs one writer at a
# time; on PostgreSQL a thread mostly waits for round trips, and 16 gave ~10% more labels/s than 8 on
# the load benchmark (the pool keeps 20 connections: rlhfops.workspace.db.make_engine). anyio's
# default of 40 only adds GIL and lock contention.
DEFAULT_THREADS = 8
DEFAULT_THREADS_SERVER_DB = 16


def default_threads(ws: Any) -> int:
    """``$RLHFOPS_WEB_THREADS``, else 8 on SQLite and 16 on a database server."""
    env = os.environ.get("RLHFOPS_WEB_THREADS")
    if env:
        return max(1, int(env))
    return DEFAULT_THREADS if ws.engine.dialect.name == "sqlite" else DEFAULT_THREADS_SERVER_DB


SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
)


def _open_workspace(workspace_root: str | Path, database_url: str | None) -> Any:
    from rlhfops.workspace import Workspace, db

    ws = Workspace.open(Path(workspace_root), check_revision=False)
    if database_url:
        ws._engine = db.make_engine(database_url)
    ws.require_current_schema()
    return ws


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or "application/json" in request.headers.get("accept", "")


def _error(request: Request, status: int, detail: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status)

    kind = "csrf" if status == 403 and detail.startswith("CSRF") else "session" if status == 401 else ""
    titles = {"csrf": "This page was open too long", "session": "Please sign in again"}
    return render(
        request,
        "error.html",
        status_code=status,
        title=titles.get(kind, f"Error {status}"),
        status=status,
        detail=detail,
        kind=kind,
        rating=request.method == "POST" and request.url.path.startswith("/rate/"),
    )


def _install_handlers(app: FastAPI) -> None:
    from rlhfops.annotate.queue import NotAssignedError, ProductionBlockedError

    # starlette's HTTPException (FastAPI's is a subclass): an unknown path's 404 gets the error page too
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(NotAssignedError)
    async def _not_assigned(request: Request, exc: NotAssignedError) -> Response:
        return _error(request, 403, str(exc))

    @app.exception_handler(ProductionBlockedError)
    async def _blocked(request: Request, exc: ProductionBlockedError) -> Response:
        return _error(request, 409, str(exc))

    @app.exception_handler(UserError)
    async def _user(request: Request, exc: UserError) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        # a number the database cannot hold (a route without a bound): the request is wrong, not the server
        return _error(request, 422, "a number in the request is out of range")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": jsonable(exc.errors())}, status_code=422)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", []))
        return _error(request, 422, f"{where}: {first.get('msg', 'invalid request')}")


def jsonable(errors: Any) -> Any:
    return jsonable_encoder(errors, custom_encoder={BaseException: str, bytes: lambda b: b.decode("latin-1")})


class SecurityMiddleware:
    """Pure ASGI: security headers on every response; a signed CSRF cookie for browsers without one
    (its value is ``request.state.csrf`` for the templates)."""

    def __init__(self, app: Any, auth: Any) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api")
        token = self.auth.csrf_from_cookie(_Request(scope))
        fresh = token is None
        if fresh:  # a browser's first page gets one; the JSON API renders no form and sets no cookie
            token = "" if api else secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf"] = token
        set_cookie = fresh and not api

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name == "content-security-policy" and scope["path"] in ("/docs", "/redoc"):
                        continue  # the OpenAPI pages load their viewer from a CDN
                    if name not in headers:
                        headers[name] = value
                if set_cookie:
                    cookie = Response()
                    cookie.set_cookie(
                        CSRF_COOKIE,
                        self.auth.signer.sign(token),
                        httponly=True,
                        samesite="lax",
                        secure=scope.get("scheme") == "https",
                    )
                    headers.append("set-cookie", cookie.headers["set-cookie"])
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Pure ASGI: a request body over ``limit`` bytes is refused with 413, by its Content-Length before
    anything is read, or (chunked uploads) as soon as the bytes received pass the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _refuse(self, send: Any) -> None:
        detail = f"request body larger than {self.limit} bytes (web.max_body_bytes)"
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                + [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        seen, started, over = 0, False, False

        async def counting_receive() -> Any:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if over:  # the app turned the interrupted read into its own error: answer 413 instead
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)


def _install_docs(app: FastAPI) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc`` for signed-in admins only (401 / 403 otherwise)."""

    def admin(user=Depends(current_user)) -> None:
        require(user, False, "read the API documentation (admin only)")

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(admin)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(admin)])
    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API")

    @app.get("/redoc", include_in_schema=False, dependencies=[Depends(admin)])
    async def redoc() -> Response:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - API")


def _mount_signed_in(app: FastAPI) -> None:
    """The gate pages, the monitor page and the monitor API, behind the login."""
    for router in (monitor_api.router, gate_pages.router, monitor_pages.router):
        app.include_router(router, dependencies=[Depends(current_user)])


def create_app(workspace_root: str | Path, database_url: str | None = None) -> FastAPI:
    """The annotation web app for the workspace at ``workspace_root`` (database from its settings,
    ``$RLHFOPS_DATABASE_URL``, or ``database_url``)."""
    ws = _open_workspace(workspace_root, database_url)
    web = web_settings(ws)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = default_threads(ws)
        yield
        ws.close()

    app = FastAPI(
        title="rlhfops annotation",
        description="Pairwise preferences, demonstrations, calibration and agreement for a workspace. "
        "Authenticate with `Authorization: Bearer <token>` (`rlhfops raters token NAME`).",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by _install_docs, for admins only
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ws = ws
    app.state.web_settings = web
    app.state.auth = Auth(ws, web.trusted_proxies)
    app.state.settings = annotation_settings(ws)
    app.state.templates = make_env()
    app.state.guidelines = GuidelinesCache(ws)
    _install_handlers(app)
    app.add_middleware(SecurityMiddleware, auth=app.state.auth)
    app.add_middleware(BodyLimitMiddleware, limit=web.max_body_bytes)  # outermost: before anything reads
    app.mount("/static", StaticFiles(packages=[("rlhfops.web", "static")]), name="static")
    app.include_router(api.router)
    app.include_router(rater_pages.router)  # /rate/recent before /rate/{item_id}
    app.include_router(pages.router)
    app.include_router(lead.router)
    _mount_signed_in(app)
    _install_docs(app)

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn (``rlhfops serve``): the workspace in ``$RLHFOPS_WORKSPACE`` (or the cwd's)."""
    from rlhfops.workspace.core import find_workspace_root

    root = find_workspace_root()
    if root is None:
        raise UserError("serve: no workspace (set RLHFOPS_WORKSPACE or run inside one)")
    return create_app(root)
