"""What the daemon's decisions did in a run, for `depthcharge demo` (its decisions stage): signals per
strategy, the ML gate's agreement and fallback rates, orders, fills, fees and PnL after fees, and each
strategy's trades, hit rate and PnL split by maker and taker entries.

The per-strategy counters persist across runs (`strategy_statistics`), so the run's share is the difference
between a snapshot taken before and one taken after.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import click

from infra.db.connection import Database
from infra.db.repositories.strategy_statistics import StrategyStatisticsRepository
from infra.settings import Settings
from schemas.strategies import StrategyStatistics
from schemas.times import now_ms
from trading_daemon.service import ServiceReport


@dataclass(frozen=True)
class Snapshot:
    ts_ms: int
    statistics: dict[str, StrategyStatistics]


async def snapshot(db: Database) -> Snapshot:
    """The persisted per-strategy statistics now."""
    pool = await db.open_pool(min_size=1, max_size=1)
    try:
        return Snapshot(now_ms(), await StrategyStatisticsRepository(pool).load())
    finally:
        await pool.close()


def production_note(db: Database, settings: Settings) -> str:
    from ml.registry import ModelRegistry  # PyTorch loads only for the stages that need it

    production = ModelRegistry(db, settings.models_dir).production()
    if production is None:
        return "no model promoted, the ML gate falls back to the consensus"
    return f"the ML gate serves {production.version} ({production.model_type})"


def print_decisions(report: ServiceReport, before: Snapshot, after: Snapshot) -> None:
    """Print the run (module docstring)."""
    decisions = report.decisions
    if decisions is None:
        click.echo("the daemon did not decide (no credentials, or start-up did not finish)")
        return
    engine, gate = decisions["engine"], decisions["ml_gate"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(engine["outcomes"].items(), key=lambda kv: -kv[1]))
    click.echo(f"rows decided: {engine['rows']:,} ({outcomes}); errors {engine['errors']}")
    signals = ", ".join(f"{k} {v}" for k, v in sorted(engine["strategy_signals"].items())) or "none"
    click.echo(f"signals per strategy: {signals}")
    rates, verdicts = gate["rates"], gate["verdicts_total"]
    served = gate["production"]["version"] if gate["production"] else "none"
    click.echo(
        f"ML gate ({served}): {sum(verdicts.values())} consensus signals validated "
        f"({', '.join(f'{k} {v}' for k, v in sorted(verdicts.items())) or 'none'}); agreement rate "
        f"{rates['agreement_rate']:.0%}, fallback rate {rates['fallback_rate']:.0%}; rows predicted "
        f"{gate['row_predictions']:,}, fallbacks {gate['row_fallbacks']}; inference {_latency(gate['inference']['production'])}"
    )
    latency = engine.get("latency", {})
    click.echo(
        f"latency: snapshot → signal {_latency(latency.get('signal', {}))}; "
        f"→ order submitted {_latency(latency.get('submitted', {}))}"
    )
    risk = decisions["risk"]
    click.echo(f"risk: approvals {risk['approvals']}, refusals {risk['refusals'] or 'none'}")
    execution = report.execution or {}
    manager = execution.get("manager", {})
    fills = execution.get("fills", {})
    click.echo(
        f"orders: submitted {manager.get('submitted', 0)}, sent {manager.get('sent', 0)}, refused "
        f"{manager.get('refused', 0)}; fills {fills.get('fills', 0)}; positions opened "
        f"{fills.get('positions_opened', 0)}, closed {fills.get('positions_closed', 0)}; reconciled "
        f"{execution.get('reconciled')}"
    )
    _print_strategies(before, after)


def _latency(stats: dict[str, Any]) -> str:
    if not stats.get("count"):
        return "—"
    return f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms (n={stats['count']})"


def _print_strategies(before: Snapshot, after: Snapshot) -> None:
    click.echo(
        "per strategy (this run): signals (of them stopped by cost), trades, hit rate, PnL after fees, fees, "
        "maker / taker trades"
    )
    total_fees, total_net = Decimal(0), Decimal(0)
    for name, now in sorted(after.statistics.items()):
        then = before.statistics.get(name)
        d = _delta(now, then)
        hit = f"{d['wins'] / d['trades']:.0%}" if d["trades"] else "—"
        click.echo(
            f"  {name:<15} signals {d['signals']:>4} ({d['signals_below_cost']:>4})  trades {d['trades']:>3}  hit {hit:>4}  "
            f"net {d['net_pnl']:>10.4f} USDT  fees {d['fees']:>8.4f}  maker {d['maker_trades']} "
            f"({d['maker_net_pnl']:.4f}) / taker {d['taker_trades']} ({d['taker_net_pnl']:.4f})"
        )
        if name == "consensus":
            total_fees, total_net = d["fees"], d["net_pnl"]
    click.echo(f"traded (consensus): fees {total_fees:.4f} USDT, PnL after fees {total_net:.4f} USDT")


def _delta(now: StrategyStatistics, then: StrategyStatistics | None) -> dict[str, Any]:
    fields = ("signals", "signals_below_cost", "trades", "wins", "maker_trades", "taker_trades", "fees", "net_pnl", "maker_net_pnl",
              "taker_net_pnl")  # fmt: skip
    return {f: getattr(now, f) - (getattr(then, f) if then is not None else 0) for f in fields}
