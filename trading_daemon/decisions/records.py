"""What the decision engine works with: the row it takes, what became of it, its counters, and the small
conversions between the strategies' signals, execution's positions and intents."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from ml.windows import FeatureWindow
from schemas.enums import Side
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from schemas.trading import Position, Signal, TradeIntent
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.execution.contracts import SubmitResult
from trading_daemon.ml_gate.prediction import GatePrediction
from trading_daemon.ml_gate.validator import Validation

LATENCY_SAMPLES = 20_000


class ArrivalStamp:
    """A market sink placed first in the feed's sinks: stamps when each row left the feed, so the decision's
    latency includes the sinks before the engine (live features, analysis, detectors)."""

    def __init__(self) -> None:
        self._stamps: dict[tuple[str, int], int] = {}

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        now = time.perf_counter_ns()
        for row in rows:
            self._stamps[(row.symbol, row.ts)] = now
        if len(self._stamps) > 10_000:  # rows no engine took (a symbol it does not decide)
            self._stamps.clear()

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Only rows are stamped."""

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        """Only rows are stamped."""

    def take(self, symbol: str, ts_ms: int, default: int) -> int:
        return self._stamps.pop((symbol, ts_ms), default)


@dataclass
class RowTicket:
    """A row taken for decision: what the engine captured when it arrived."""

    symbol: str
    ts_ms: int
    arrived_ns: int  # time.perf_counter_ns() at arrival
    window: FeatureWindow | None
    analysis: MarketAnalysis | None


@dataclass
class Decision:
    """What became of one row (for tests, the benchmark and the demo)."""

    symbol: str
    ts_ms: int
    prediction: GatePrediction
    strategy_signals: list[Signal] = field(default_factory=list)
    consensus: Signal | None = None
    validation: Validation | None = None
    outcome: str = "no_signal"
    intent: TradeIntent | None = None
    result: SubmitResult | None = None
    exits: list[TradeIntent] = field(default_factory=list)
    signal_ms: float | None = None  # arrival → the intent decided (features, model, strategies, risk)
    submitted_ms: float | None = None  # arrival → the submitter returned (the order is on the wire)


@dataclass
class EngineStats:
    rows: int = 0
    rows_skipped: int = 0  # queued past MAX_QUEUED_ROWS: decided without trading
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    intents: int = 0
    exits: int = 0
    by_strategy: dict[str, int] = field(default_factory=dict)

    signal_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    submitted_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def latency(self) -> dict[str, dict[str, float]]:
        """p50/p99/max of the recent decisions: arrival → decided (rows decided by the whole path, the model
        included), and arrival → order submitted (ms)."""
        out: dict[str, dict[str, float]] = {}
        for name, samples in (("signal", self.signal_ms), ("submitted", self.submitted_ms)):
            values = sorted(samples)
            if not values:
                out[name] = {"count": 0}
                continue
            out[name] = {
                "count": len(values),
                "p50_ms": round(values[len(values) // 2], 3),
                "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 3),
                "max_ms": round(values[-1], 3),
            }
        return out


def edge_bps(signal: Signal) -> float | None:
    value = (signal.context or {}).get("expected_edge_bps")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def positive_decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return out if out.is_finite() and out > 0 else None


def protection(signal: Signal, side: Side, price: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """The strategy's take-profit and stop-loss, each kept only when it lies on its side of the entry."""
    ctx = signal.context or {}
    tp, sl = positive_decimal(ctx.get("take_profit")), positive_decimal(ctx.get("stop_loss"))
    if side is Side.BUY:
        tp = tp if tp is not None and tp > price else None
        sl = sl if sl is not None and sl < price else None
    else:
        tp = tp if tp is not None and tp < price else None
        sl = sl if sl is not None and sl > price else None
    return tp, sl


def position_of(positions: Sequence[Position], symbol: str) -> Position | None:
    for p in positions:
        if p.symbol == symbol and p.quantity > 0:
            return p
    return None


def signal_json(signal: Signal) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(signal, enc_hook=str)
    return out


def describe(value: object) -> Any:
    try:
        return msgspec.to_builtins(value, enc_hook=str)
    except TypeError:
        return str(value)
