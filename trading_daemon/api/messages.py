"""The WebSocket's messages: what each topic's `data` holds, built from the daemon's records and state.

Every `data` is plain JSON: money as a decimal string, time as integer ms, enums as their values. Orders,
positions, fills and signals carry the HTTP routes' own models (`trading_daemon.api.views`), so a page reads
the same fields from a push as from a GET.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

from infra.db.repositories.orchestration import DriftReportRecord
from schemas.enums import PositionStatus
from schemas.snapshot import RawSnapshotRow
from schemas.trading import Fill, Order, Position, Signal
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.views import fill_out, order_out, position_out, signal_out

T = TypeVar("T")
DRIFTED_FEATURES_SHOWN = 10


def book_message(row: RawSnapshotRow) -> dict[str, Any]:
    """The touch of a row; a side without levels (a resyncing book) is null, and so are mid and spread."""
    bid = row.bid_prices[0] if row.n_bid_levels else None
    ask = row.ask_prices[0] if row.n_ask_levels else None
    mid = (bid + ask) / 2 if bid is not None and ask is not None else None
    return {
        "symbol": row.symbol,
        "ts": row.ts,
        "best_bid": bid,
        "best_ask": ask,
        "bid_size": row.bid_sizes[0] if row.n_bid_levels else None,
        "ask_size": row.ask_sizes[0] if row.n_ask_levels else None,
        "mid": mid,
        "spread_bps": None if mid is None or bid is None or ask is None else (ask - bid) / mid * 10_000,
        "book_reset": row.book_reset,
    }


_SCREENER = ("last_price", "mid", "spread_bps", "imbalance_5", "imbalance_total", "volume_1m", "trades_1m",
             "volatility_1m_bps", "change_24h_pct", "volume_24h", "turnover_24h")  # fmt: skip


def metrics_message(analyses: Mapping[str, MarketAnalysis]) -> dict[str, dict[str, Any]]:
    """symbol → the screener's columns of its newest analysis (the row's `ts` and `valid` with them)."""
    return {
        symbol: {"ts": a.ts, "valid": a.valid} | {name: getattr(a, name) for name in _SCREENER}
        for symbol, a in analyses.items()
    }


def order_message(order: Order) -> dict[str, Any]:
    """The HTTP routes' `OrderOut`, with `live` (not yet in a terminal status) and `version`."""
    return order_out(order).model_dump(mode="json") | {
        "live": not order.status.is_terminal,
        "version": order.version,
    }


def position_message(position: Position) -> dict[str, Any]:
    """The HTTP routes' `PositionOut` as stored (the mid moves on the `book` topic), with `live` and `version`."""
    live = position.status is not PositionStatus.CLOSED
    return position_out(None, position).model_dump(mode="json") | {"live": live, "version": position.version}


def fill_message(fill: Fill) -> dict[str, Any]:
    return fill_out(fill).model_dump(mode="json") | {
        "id": fill.id, "order_id": fill.order_id, "client_order_id": fill.client_order_id, "symbol": fill.symbol,
        "exec_type": str(fill.exec_type), "fee_currency": fill.fee_currency,
    }  # fmt: skip


def signal_message(signal: Signal) -> dict[str, Any]:
    """The HTTP routes' `SignalOut` (the context as stored: what the decision saw)."""
    return signal_out(signal).model_dump(mode="json")


def order_fingerprint(order: Order) -> Hashable:
    return (order.status, order.filled_quantity, order.version, order.updated_ms)


def position_fingerprint(position: Position) -> Hashable:
    return (position.status, position.quantity, position.version, position.updated_ms, position.unrealized_pnl,
            position.realized_pnl)  # fmt: skip


def position_key(position: Position) -> str:
    # By id, not by symbol (the account's key): a reversal closes one position and opens another.
    return str(position.id) if position.id is not None else f"{position.symbol}:{position.side}"


def diff_live(
    seen: Mapping[str, tuple[Hashable, T]], current: Mapping[str, T], fingerprint: Callable[[T], Hashable]
) -> tuple[dict[str, tuple[Hashable, T]], list[tuple[str, T]], dict[str, T]]:
    """Compare the live records now (`current`) with the last look (`seen`: key → (fingerprint, record)).

    Returns the new `seen`, the records that are new or whose fingerprint changed (in `current`'s order),
    and the last known state of the records that left, by key."""
    now = {key: (fingerprint(record), record) for key, record in current.items()}
    changed = [(key, record) for key, (fp, record) in now.items() if key not in seen or seen[key][0] != fp]
    gone = {key: record for key, (_, record) in seen.items() if key not in now}
    return now, changed, gone


def bot_message(ctx: DaemonContext) -> dict[str, Any]:
    """Whether the bot runs, and if not why: start-up, recording only, an operator's stop, the kill switch."""
    execution = ctx.execution
    halt = execution.manager.halt_reason if execution is not None else None
    paused = ctx.paused_reason
    return {
        "state": ctx.bot_state,
        "ready": ctx.ready,
        "trading_enabled": ctx.settings.trading_enabled,
        "paused_reason": paused,
        "kill_switch": {"engaged": halt is not None, "reason": halt},
        "reconciled": execution.account.reconciled() if execution is not None else None,
        "holds": dict(execution.account.holds) if execution is not None else {},
    }


def model_message(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The served versions from `MLGate.stats()`, and why rows go without a model (`fallback`), if they do."""
    production = stats.get("production")
    fallback = "no_model" if production is None else "stale_model" if stats.get("stale") else None
    return {
        "production": production,
        "shadow": stats.get("shadow"),
        "fallback": fallback,
        "last_reload_ms": stats.get("last_reload_ms"),
        "swaps": stats.get("swaps", {}),
        "refused": stats.get("refused", {}),
    }


def model_key(message: Mapping[str, Any]) -> Hashable:
    """What a `model` message is published on a change of (the versions' age changes every look)."""

    def version(served: Any) -> Any:
        return served.get("version") if isinstance(served, dict) else None

    return (version(message["production"]), version(message["shadow"]), message["fallback"])


def drift_message(report: DriftReportRecord) -> dict[str, Any]:
    return {
        "id": report.id,
        "symbol": report.symbol,
        "severity": report.severity,
        "drift_share": report.feature_drift_score,  # the share of features found drifted
        "drifted_features": len(report.drifted_features),
        "top_drifted": report.drifted_features[:DRIFTED_FEATURES_SHOWN],
        "drivers": report.drivers,
        "prediction_psi": report.prediction_psi,
        "accuracy_drop": report.accuracy_drop,
        "recommendation": report.recommendation,
        "production_version": report.production_version,
        "partition_key": report.partition_key,
        "window_start_ms": report.window_start_ms,
        "window_end_ms": report.window_end_ms,
        "created_ms": report.created_ms,
    }
