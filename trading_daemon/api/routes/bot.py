"""The bot: its status, stop and start (entries refused or allowed), and its configuration (admin)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from trading_daemon.api.context import DaemonContext
from trading_daemon.api.deps import Admin, Daemon, Trader, Viewer
from trading_daemon.api.models import BotAction, BotStatus, KillSwitchState, ReasonBody

router = APIRouter(prefix="/api/bot", tags=["bot"])


def bot_status(ctx: DaemonContext) -> BotStatus:
    execution, decisions = ctx.execution, ctx.decisions
    halted = execution is not None and execution.kill_switch.engaged
    served = decisions.gate.production if decisions is not None else None
    recorder = ctx.recorder.stats()
    return BotStatus(
        state=ctx.bot_state,
        ready=ctx.ready,
        trading_enabled=ctx.settings.trading_enabled,
        venue=ctx.settings.exchange.name,
        rest_url=ctx.settings.exchange.urls.rest,
        symbols=list(ctx.symbols),
        started_ms=ctx.started_ms,
        uptime_s=round(time.time() - ctx.started_ms / 1000, 3),
        paused_reason=ctx.paused_reason,
        kill_switch=KillSwitchState(
            engaged=halted, reason=execution.manager.halt_reason if execution is not None else None
        ),
        reconciled=execution.account.reconciled() if execution is not None else None,
        holds=dict(execution.account.holds) if execution is not None else {},
        model_version=served.manifest.version if served is not None else None,
        model_fallback=None if decisions is None or served is not None else "no production model",
        rows_recorded=ctx.feed.stats.rows,
        recorder_state=str(recorder.state),
    )


@router.get("/status", response_model=BotStatus, summary="What the bot is doing")
async def status(ctx: Daemon, _: Viewer) -> BotStatus:
    return bot_status(ctx)


@router.post(
    "/stop", response_model=BotAction, summary="Stop entries (orders, positions and exits stay managed)"
)
async def stop(ctx: Daemon, user: Trader, body: ReasonBody | None = None) -> BotAction:
    execution = ctx.require_execution()
    reason = body.reason if body is not None else "operator"
    changed = await execution.pause.stop(
        reason=f"{reason} (by {user.username})", actor=f"user:{user.username}"
    )
    return BotAction(changed=changed, status=bot_status(ctx))


@router.post("/start", response_model=BotAction, summary="Allow entries again after a stop")
async def start(ctx: Daemon, user: Trader, body: ReasonBody | None = None) -> BotAction:
    execution = ctx.require_execution()
    reason = body.reason if body is not None else "operator"
    changed = await execution.pause.start(reason=reason, actor=f"user:{user.username}")
    return BotAction(changed=changed, status=bot_status(ctx))


@router.get("/config", summary="The daemon's settings, secrets redacted (admin)")
async def config(ctx: Daemon, _: Admin) -> dict[str, Any]:
    return ctx.settings.redacted()
