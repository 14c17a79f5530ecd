"""Liveness, readiness and the Prometheus exposition: the three routes that need no token."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from trading_daemon.api.context import DaemonContext
from trading_daemon.api.deps import Daemon
from trading_daemon.api.models import HealthOut, ReadyCheck, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Liveness: the process answers")
async def health(ctx: Daemon) -> HealthOut:
    return HealthOut(status="ok", uptime_s=round(time.time() - ctx.started_ms / 1000, 3))


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready; the failing checks say why."}},
    summary="Readiness: database, exchange streams, recorder and model",
)
async def ready(ctx: Daemon) -> JSONResponse:
    checks = {"startup": ReadyCheck(ok=ctx.ready, detail="started" if ctx.ready else "start-up not finished")}
    checks["database"] = await _database(ctx)
    checks["public_stream"] = ReadyCheck(
        ok=ctx.stream.connected, detail="connected" if ctx.stream.connected else "disconnected (reconnecting)"
    )
    recorder = ctx.recorder.stats()
    checks["recorder"] = ReadyCheck(
        ok=recorder.db_up,
        detail=f"{recorder.state}, lag {recorder.lag_s:.1f} s, {recorder.rows_spooled} spooled",
    )
    if ctx.execution is not None:
        private = ctx.execution.tracker.ws.connected
        checks["private_stream"] = ReadyCheck(ok=private, detail="connected" if private else "disconnected")
    if ctx.decisions is not None:
        served = ctx.decisions.gate.production
        checks["model"] = ReadyCheck(
            ok=served is not None,
            detail=f"serving {served.manifest.version}"
            if served is not None
            else "no production model: the strategies trade alone (fallback)",
        )
    # The model is informative: a daemon without one trades on its strategies, by design.
    ready = all(c.ok for name, c in checks.items() if name != "model")
    body = ReadyOut(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


async def _database(ctx: DaemonContext) -> ReadyCheck:
    try:
        async with ctx.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:
        return ReadyCheck(ok=False, detail=f"unreachable: {type(exc).__name__}")
    return ReadyCheck(ok=True, detail="reachable")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus exposition of the daemon's metrics",
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(ctx: Daemon) -> PlainTextResponse:
    return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
