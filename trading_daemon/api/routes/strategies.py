"""`/api/strategies`: each strategy's settings and statistics; enabling and disabling one at run time (admin,
audited). The decisions' strategy manager does the work; 503 without the decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from schemas.enums import AuditAction
from trading_daemon.api.audit import audit_action
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.deps import Admin, Daemon, Viewer
from trading_daemon.api.models_ops import StrategiesOut, StrategyOut, StrategyStatisticsOut, StrategyToggle
from trading_daemon.api.principal import Principal
from trading_daemon.strategies.manager import ManagerStatus, StrategyManager

router = APIRouter(prefix="/api/strategies", tags=["strategies"])

StrategyName = Annotated[str, Path(min_length=1, max_length=50, examples=["imbalance"])]


def strategies_out(status: ManagerStatus) -> StrategiesOut:
    return StrategiesOut.model_validate(status)


def strategy_out(status: ManagerStatus, name: str) -> StrategyOut:
    found = next(s for s in status.strategies if s.name == name)
    return StrategyOut.model_validate(found)


def _known(manager: StrategyManager, name: str) -> str:
    if name not in manager.strategies:
        raise HTTPException(
            404, f"unknown strategy {name!r}: the strategies are {', '.join(sorted(manager.strategies))}"
        )
    return name


@router.get("", response_model=StrategiesOut, summary="Every strategy: enabled, weight, statistics")
async def strategies(ctx: Daemon, user: Viewer) -> StrategiesOut:
    return strategies_out(ctx.require_decisions().strategies.status())


@router.get(
    "/statistics",
    response_model=dict[str, StrategyStatisticsOut],
    summary="Each strategy's counters and the consensus's (under 'consensus')",
)
async def statistics(ctx: Daemon, user: Viewer) -> dict[str, StrategyStatisticsOut]:
    stats = ctx.require_decisions().strategies.statistics()
    return {name: StrategyStatisticsOut.model_validate(s) for name, s in stats.items()}


async def _set_enabled(ctx: DaemonContext, user: Principal, name: str, enabled: bool) -> StrategyToggle:
    manager = ctx.require_decisions().strategies
    _known(manager, name)
    was = name in manager.enabled
    if enabled:
        manager.enable(name)
    else:
        manager.disable(name)
    await audit_action(
        ctx, user, AuditAction.CONFIG_CHANGE, "strategy", name,
        reason=f"{'enable' if enabled else 'disable'} through the API",
        old={"enabled": was}, new={"enabled": enabled},
    )  # fmt: skip
    return StrategyToggle(changed=was != enabled, strategy=strategy_out(manager.status(), name))


@router.post("/{name}/enable", response_model=StrategyToggle, summary="Let a strategy vote (admin)")
async def enable(ctx: Daemon, user: Admin, name: StrategyName) -> StrategyToggle:
    return await _set_enabled(ctx, user, name, True)


@router.post(
    "/{name}/disable",
    response_model=StrategyToggle,
    summary="Stop a strategy voting (admin); its exits still apply to positions it opened",
)
async def disable(ctx: Daemon, user: Admin, name: StrategyName) -> StrategyToggle:
    return await _set_enabled(ctx, user, name, False)
