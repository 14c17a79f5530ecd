"""`/api/monitoring`: recovery (the state machines, reconciliation and its history, a pass on demand), the
circuit breakers and the rate limiters, with resets. Every control is admin-only and audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from infra.configs import ExecutionConfig
from infra.db.repositories import ReconciliationRun, ReconciliationRunRepository
from schemas.enums import AuditAction
from trading_daemon.api.audit import audit_action
from trading_daemon.api.deps import Admin, Daemon, Viewer
from trading_daemon.api.models_ops import (
    BreakerOut,
    BreakerReset,
    FSMStats,
    RateLimiterOut,
    RateLimiterReset,
    ReconciliationRunOut,
    ReconciliationSummary,
    RecoverySettings,
    RecoveryStatus,
)

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])

Name = Annotated[str, Path(min_length=1, max_length=100)]


# ---- pure mapping and small helpers ----------------------------------------------------------------------


def summary_out(summary: dict[str, Any]) -> ReconciliationSummary:
    return ReconciliationSummary.model_validate(summary)


def run_out(run: ReconciliationRun) -> ReconciliationRunOut:
    # A stored summary may predate a field: the run's own columns fill what the summary must say.
    summary = {"trigger": run.trigger, "started_ms": run.started_ms} | (run.summary or {})
    return ReconciliationRunOut(
        id=run.id,
        trigger=run.trigger,
        started_ms=run.started_ms,
        finished_ms=run.finished_ms,
        success=run.success,
        attempts=run.attempts,
        error=run.error,
        trace_id=run.trace_id,
        summary=summary_out(summary),
    )


def recovery_settings(config: ExecutionConfig) -> RecoverySettings:
    return RecoverySettings.model_validate(config)


def breaker_out(status: dict[str, Any]) -> BreakerOut:
    return BreakerOut.model_validate(status)


def limiter_out(bucket: str, status: dict[str, Any]) -> RateLimiterOut:
    return RateLimiterOut.model_validate({"bucket": bucket, **status})


# ---- recovery --------------------------------------------------------------------------------------------


@router.get("/recovery/status", response_model=RecoveryStatus, summary="State machines and reconciliation")
async def recovery_status(
    ctx: Daemon,
    user: Viewer,
    runs: Annotated[int, Query(ge=1, le=100, description="Recent reconciliation runs to list.")] = 10,
) -> RecoveryStatus:
    execution = ctx.require_execution()
    last = execution.reconciler.last
    recent = await ReconciliationRunRepository(ctx.pool).recent(execution.account_key, limit=runs)
    return RecoveryStatus(
        running=execution.reconciler.running,
        reconciled=execution.account.reconciled(),
        holds=dict(execution.account.holds),
        fsm=FSMStats.model_validate(execution.registry.get_stats()),
        hanging_orders=0 if last is None else len(last.hanging_orders),
        last_reconciliation=None if last is None else summary_out(last.summary()),
        recent_runs=[run_out(r) for r in recent],
        settings=recovery_settings(execution.config),
    )


@router.post(
    "/recovery/trigger",
    response_model=ReconciliationSummary,
    summary="Reconcile with the exchange now (admin)",
    responses={409: {"description": "A reconciliation pass is already running."}},
)
async def recovery_trigger(ctx: Daemon, user: Admin) -> ReconciliationSummary:
    execution = ctx.require_execution()
    if execution.reconciler.running:
        raise HTTPException(
            409, "a reconciliation pass is already running: see GET /api/monitoring/recovery/status"
        )
    report = await execution.reconcile_now()
    await audit_action(
        ctx, user, AuditAction.RECONCILIATION, "Recovery", "recovery",
        reason="reconciliation triggered through the API",
        new={
            "trigger": report.trigger, "success": report.success, "attempts": report.attempts,
            "discrepancies": report.discrepancies, "hanging_orders": len(report.hanging_orders),
        },
        success=report.success, error=report.error,
    )  # fmt: skip
    return summary_out(report.summary())


# ---- circuit breakers ------------------------------------------------------------------------------------


@router.get("/circuit-breakers", response_model=list[BreakerOut], summary="Every circuit breaker")
async def circuit_breakers(ctx: Daemon, user: Viewer) -> list[BreakerOut]:
    return [breaker_out(s) for _, s in sorted(ctx.breakers.get_all_status().items())]


@router.post("/circuit-breakers/{name}/reset", response_model=BreakerReset, summary="Close a breaker (admin)")
async def reset_circuit_breaker(ctx: Daemon, user: Admin, name: Name) -> BreakerReset:
    known = ctx.breakers.get_all_status()
    if name not in known:
        raise HTTPException(
            404,
            f"unknown circuit breaker {name!r}: the breakers are {', '.join(sorted(known)) or 'none yet'}",
        )
    before = known[name]
    ctx.breakers.reset(name)
    after = ctx.breakers.get_breaker(name).get_status()
    await audit_action(
        ctx, user, AuditAction.CONFIG_CHANGE, "circuit_breaker", name, reason="reset through the API",
        old={"state": before["state"], "failure_count": before["failure_count"]},
        new={"state": after["state"], "failure_count": after["failure_count"]},
    )  # fmt: skip
    return BreakerReset(previous_state=before["state"], breaker=breaker_out(after))


# ---- rate limiters ---------------------------------------------------------------------------------------


@router.get("/rate-limiters", response_model=list[RateLimiterOut], summary="Every rate limit bucket")
async def rate_limiters(ctx: Daemon, user: Viewer) -> list[RateLimiterOut]:
    return [limiter_out(bucket, s) for bucket, s in ctx.limiter.get_all_status().items()]


@router.post(
    "/rate-limiters/{bucket}/reset",
    response_model=RateLimiterReset,
    summary="Refill a bucket (admin); blocks imposed by the exchange stay",
)
async def reset_rate_limiter(ctx: Daemon, user: Admin, bucket: Name) -> RateLimiterReset:
    if bucket not in ctx.limiter.bucket_names:
        raise HTTPException(
            404,
            f"unknown rate limit bucket {bucket!r}: the buckets are {', '.join(ctx.limiter.bucket_names)}",
        )
    before = ctx.limiter.get_status(bucket)
    ctx.limiter.reset(bucket)
    after = ctx.limiter.get_status(bucket)
    await audit_action(
        ctx, user, AuditAction.CONFIG_CHANGE, "rate_limiter", bucket, reason="refilled through the API",
        old={"tokens": round(before["tokens"], 3)}, new={"tokens": round(after["tokens"], 3)},
    )  # fmt: skip
    return RateLimiterReset(previous_tokens=before["tokens"], limiter=limiter_out(bucket, after))
