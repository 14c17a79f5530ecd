"""Per-strategy statistics: signals, their measured outcomes, and trades with PnL after fees.

* A **shadow** follows every new signal (traded or not) on the mid from the row it appeared on: it ends at
  the signal's take-profit or stop-loss, or when the strategy's horizon passes, and its outcome is the
  signed mid move in bps (before fees). The mean of those outcomes is the "measured" half of the expected
  edge (`trading_daemon.strategies.costs`); following untraded signals too keeps a strategy whose signals
  are all filtered from being stuck without evidence.
* A **trade** is reported by whoever closes a position (`TradeOutcome`): it counts, with its PnL in USDT
  after fees, for each strategy the entry came from, split by maker and taker entries.

`StatisticsBook` holds the counters as `schemas.strategies.StrategyStatistics` records and remembers which
changed since they were last persisted.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from schemas.enums import EntryStyle, PositionStatus, Side, SignalAction
from schemas.strategies import CONSENSUS_SOURCE, StrategyStatistics
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis

MAX_SHADOWS_PER_SYMBOL = 1000  # bounds memory if horizons are long and signals frequent


@dataclass(frozen=True, slots=True)
class TradeOutcome:
    """A closed position, as execution saw it, credited to the strategies its entry came from."""

    symbol: str
    strategies: tuple[str, ...]  # the consensus's agreeing strategies, or the one strategy
    side: Side  # of the entry
    entry_style: EntryStyle
    quantity: Decimal
    entry_price: Decimal  # average
    exit_price: Decimal  # average
    fees: Decimal  # USDT, both sides (funding included if any)
    closed_ms: int
    consensus: bool = True  # the entry was a consensus signal: count it under the consensus as well

    def __post_init__(self) -> None:
        where = f"TradeOutcome {self.symbol} {self.side}"
        if not self.strategies:
            raise ValueError(f"{where}: names no strategy")
        for name in ("quantity", "entry_price", "exit_price"):
            value = getattr(self, name)
            if not (value.is_finite() and value > 0):
                raise ValueError(f"{where}: {name} must be a positive finite decimal, got {value}")
        if not self.fees.is_finite():
            raise ValueError(f"{where}: fees must be finite, got {self.fees}")

    @property
    def gross_pnl(self) -> Decimal:
        return self.side.sign * (self.exit_price - self.entry_price) * self.quantity

    @property
    def net_pnl(self) -> Decimal:
        return self.gross_pnl - self.fees


def entry_context(signal_data: dict[str, Any] | None) -> dict[str, Any]:
    """A position's signal data with its intent's context lifted to the top.

    Execution keeps the intent as the position's `signal_data` and nests the intent's own context (where the
    decision engine writes `strategies`, `source` and `entry_style`) under "context"; exit rules and
    statistics read those keys at the top. Top-level keys win, except `source`, which is the context's.
    """
    data = dict(signal_data or {})
    context = data.get("context")
    if isinstance(context, dict):
        lifted = {**context, **{k: v for k, v in data.items() if k != "context"}}
        lifted["source"] = context.get("source", data.get("source"))
        return lifted
    return data


def outcome_from_position(
    position: Position,
    *,
    quantity: Decimal | None = None,
    known: Collection[str] | None = None,
    closed_ms: int | None = None,
) -> TradeOutcome | None:
    """The outcome of a closed position whose signal data names the strategies it came from.

    `quantity` is the size traded: a position closed by execution keeps quantity 0, so its caller passes
    the entry's filled quantity (the position's own quantity is used when it is not given). `known`
    restricts the strategies to those still configured. None when the position is not closed, has no exit
    price or size, or names no (known) strategy: an operator's or a scripted entry.
    """
    data = entry_context(position.signal_data)
    named = data.get("strategies")
    source = data.get("source")
    strategies = tuple(str(n) for n in named) if isinstance(named, list) and named else ()
    if not strategies and isinstance(source, str) and source != CONSENSUS_SOURCE:
        strategies = (source,)
    if known is not None:
        strategies = tuple(s for s in strategies if s in known)
    size = position.quantity if quantity is None else quantity
    if (
        position.status is not PositionStatus.CLOSED
        or position.exit_price is None
        or position.entry_price <= 0
        or size <= 0
        or not strategies
    ):
        return None
    try:
        style = EntryStyle(str(data.get("entry_style", EntryStyle.TAKER)))
    except ValueError:
        style = EntryStyle.TAKER
    return TradeOutcome(
        symbol=position.symbol,
        strategies=strategies,
        side=position.side,
        entry_style=style,
        quantity=size,
        entry_price=position.entry_price,
        exit_price=position.exit_price,
        fees=position.fees_paid,
        closed_ms=position.closed_ms or closed_ms or position.updated_ms,
        consensus=source == CONSENSUS_SOURCE,
    )


@dataclass(slots=True)
class Shadow:
    """A signal followed on the mid (see the module docstring)."""

    strategy: str
    buy: bool
    entry: float
    stop: float
    target: float
    expires_ms: int

    def outcome_bps(self, mid: float) -> float:
        move = math.log(mid / self.entry) * 1e4
        return move if self.buy else -move


def open_shadow(strategy: str, signal: Signal, analysis: MarketAnalysis) -> Shadow | None:
    """A shadow of `signal` from the row's mid; None without a mid or the signal's levels."""
    context = signal.context or {}
    stop, target, horizon = context.get("stop_loss"), context.get("take_profit"), context.get("horizon_s")
    if analysis.mid <= 0 or stop is None or target is None or horizon is None:
        return None
    return Shadow(
        strategy=strategy,
        buy=signal.action is SignalAction.BUY,
        entry=analysis.mid,
        stop=float(stop),
        target=float(target),
        expires_ms=analysis.ts + int(float(horizon) * 1000),
    )


class ShadowBook:
    """Open shadows of one symbol; `update` resolves those the new row ends."""

    def __init__(self) -> None:
        self.open: list[Shadow] = []

    def add(self, shadow: Shadow) -> None:
        if len(self.open) >= MAX_SHADOWS_PER_SYMBOL:
            self.open.pop(0)
        self.open.append(shadow)

    def update(self, analysis: MarketAnalysis) -> list[tuple[str, float]]:
        """(strategy, outcome bps) of every shadow ended at this row: target or stop touched by the mid, or
        horizon passed. Rows of an invalid book end nothing (their mid is no price)."""
        if not analysis.valid or not self.open:
            return []
        mid, now = analysis.mid, analysis.ts
        done: list[tuple[str, float]] = []
        keep: list[Shadow] = []
        for s in self.open:
            hit = (mid >= s.target or mid <= s.stop) if s.buy else (mid <= s.target or mid >= s.stop)
            if hit or now >= s.expires_ms:
                done.append((s.strategy, s.outcome_bps(mid)))
            else:
                keep.append(s)
        self.open = keep
        return done


class StatisticsBook:
    """The counters of every strategy (and of the consensus), and which changed since the last save."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._stats = {n: StrategyStatistics(strategy=n) for n in names}
        self.dirty: set[str] = set()

    def __getitem__(self, name: str) -> StrategyStatistics:
        return self._stats[name]

    def all(self) -> dict[str, StrategyStatistics]:
        return dict(self._stats)

    def restore(self, stored: dict[str, StrategyStatistics]) -> None:
        """Continue from the persisted counters of the names this book holds (others are ignored)."""
        for name, record in stored.items():
            if name in self._stats:
                self._stats[name] = record

    def _change(self, name: str, now_ms: int, **changes: object) -> None:
        self._stats[name] = msgspec.structs.replace(self._stats[name], updated_ms=now_ms, **changes)
        self.dirty.add(name)

    def set_enabled(self, name: str, enabled: bool, now_ms: int) -> None:
        self._change(name, now_ms, enabled=enabled)

    def signal(self, name: str, *, sent: bool, now_ms: int) -> None:
        s = self._stats[name]
        if sent:
            self._change(name, now_ms, signals=s.signals + 1)
        else:
            self._change(name, now_ms, signals_below_cost=s.signals_below_cost + 1)

    def measured(self, name: str, outcome_bps: float, now_ms: int) -> None:
        if not math.isfinite(outcome_bps):
            return
        s = self._stats[name]
        self._change(
            name,
            now_ms,
            measured=s.measured + 1,
            measured_sum_bps=s.measured_sum_bps + outcome_bps,
            measured_sumsq_bps=s.measured_sumsq_bps + outcome_bps * outcome_bps,
            measured_hits=s.measured_hits + (outcome_bps > 0),
        )

    def trade(self, name: str, outcome: TradeOutcome) -> None:
        s = self._stats[name]
        net = outcome.net_pnl
        maker = outcome.entry_style is EntryStyle.MAKER
        self._change(
            name,
            outcome.closed_ms,
            trades=s.trades + 1,
            wins=s.wins + (net > 0),
            maker_trades=s.maker_trades + maker,
            taker_trades=s.taker_trades + (not maker),
            gross_pnl=s.gross_pnl + outcome.gross_pnl,
            fees=s.fees + outcome.fees,
            net_pnl=s.net_pnl + net,
            maker_net_pnl=s.maker_net_pnl + (net if maker else 0),
            taker_net_pnl=s.taker_net_pnl + (0 if maker else net),
            last_trade_ms=max(s.last_trade_ms, outcome.closed_ms),
        )

    def take_dirty(self) -> list[StrategyStatistics]:
        """The changed records, and forget that they changed (give them back with `mark_dirty` on failure)."""
        out = [self._stats[n] for n in sorted(self.dirty)]
        self.dirty.clear()
        return out

    def mark_dirty(self, records: list[StrategyStatistics]) -> None:
        self.dirty.update(r.strategy for r in records)
