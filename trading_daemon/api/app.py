"""The FastAPI application: every router, CORS, the OpenAPI docs and the built dashboard.

`create_app(ctx, auth)` is pure wiring: the routes read the live daemon from `app.state.daemon` and the
caller from `app.state.auth` (docs/api.md). The dashboard's built files (`ApiConfig.dashboard_dir`) are
served at `/`, with the single-page app's routes falling back to its `index.html`; without a build the
root says how to make one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from infra.db.errors import DatabaseUnavailable
from trading_daemon.api.auth import AuthService
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.routes import ROUTERS

# Paths the dashboard's client-side router owns are answered with index.html; these never are.
API_PREFIXES = ("api/", "ws", "health", "ready", "metrics", "docs", "redoc", "openapi.json")


class ErrorBody(BaseModel):
    detail: str | list[dict[str, Any]]


# What any route may answer besides its success (docs/api.md, "Conventions"); in the schema so that clients
# and schemathesis know them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not valid JSON"},
    401: {"model": ErrorBody, "description": "No valid access token"},
    403: {"model": ErrorBody, "description": "The caller's role is too low"},
    404: {"model": ErrorBody, "description": "An unknown id, symbol or name"},
    409: {"model": ErrorBody, "description": "The state forbids the action; the detail says why"},
    429: {"model": ErrorBody, "description": "Too many attempts; see Retry-After"},
    502: {
        "model": ErrorBody,
        "description": "The exchange refused or failed the request; the detail says how",
    },
    503: {
        "model": ErrorBody,
        "description": "A component or the database is unavailable; the detail says which",
    },
}


def create_app(ctx: DaemonContext, auth: AuthService) -> FastAPI:
    app = FastAPI(
        title="Depthcharge daemon API",
        version="1",
        summary="Status and control of the trading daemon, its models and its market data.",
        description="Every endpoint but /health, /ready, /metrics and /api/auth/login needs a bearer token "
        "from /api/auth/login. Money is a decimal string, time integer milliseconds UTC.",
    )
    app.state.daemon = ctx
    app.state.auth = auth
    if ctx.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(ctx.api.cors_origins),
            allow_credentials=False,  # bearer tokens, no cookies
            allow_methods=["GET", "POST", "DELETE", "PATCH"],
            allow_headers=["Authorization", "Content-Type"],
        )
    for router in ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)
    app.add_exception_handler(DatabaseUnavailable, _database_down)
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(psycopg.DataError, _unstorable_input)
    _serve_dashboard(app, ctx.api.dashboard_dir)
    return app


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    # The daemon keeps trading and spooling through an outage; the API says so instead of a bare 500.
    return JSONResponse(
        {
            "detail": f"the database is unavailable ({type(exc).__name__}); the daemon keeps running, retry later"
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _unstorable_input(request: Request, exc: Exception) -> JSONResponse:
    # A parameter the database cannot hold (a NUL character, a number out of range): the caller's input.
    return JSONResponse(
        {
            "detail": [
                {
                    "loc": ["query"],
                    "msg": f"a parameter the database cannot store: {exc}",
                    "type": "value_error",
                }
            ]
        },
        status_code=422,
    )


def _serve_dashboard(app: FastAPI, root: Path) -> None:
    # The build's files, listed once: a request can only ever get one of these (no path tricks).
    files = (
        {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    )
    index = files.get("index.html")

    @app.get("/{path:path}", include_in_schema=False)
    async def dashboard(path: str, request: Request) -> Response:
        if path.startswith(API_PREFIXES):
            raise HTTPException(404, f"no endpoint {request.url.path}: see /docs")
        if index is None:
            return PlainTextResponse(
                f"The dashboard is not built ({root / 'index.html'} is missing): run `make dashboard`. "
                "The API is at /docs.",
                status_code=503,
            )
        if path in files:
            return FileResponse(files[path])
        return FileResponse(index, headers={"Cache-Control": "no-cache"})  # a client-side route
