"""The detection service: every detector of every symbol behind one market sink, and the entry block.

`DetectionService` is a `MarketSink` (rows, trades, candles) and a `BookSink` (every applied book
message) of the market feed. Per symbol it runs the large-order tracker (`orders.py`), the spoofing and
layering detectors on the orders it finishes, and the support/resistance detector on closed candles.
What they find is kept in memory for the decisions and the API, logged, counted, and handed to the
store (`store.py`), which writes it off the market path.

**The entry block** (the original spec's highest priority): a spoofing or layering detection of a
symbol with confidence >= MANIPULATION_MIN_CONFIDENCE blocks new entries on that symbol until
MANIPULATION_BLOCK_S after its last evidence (`blocked`). Exits and protective orders are the risk
manager's and stay allowed.

A detector that raises is logged (the first time, then every hundredth) and counted, and that symbol's
detection carries on with the next message; the other symbols and the feed never notice.

All times are exchange milliseconds from the messages themselves, so a recording replays exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from infra.settings import DetectionConfig
from schemas.detection import Detection, DetectionKind, SupportResistanceLevel
from schemas.enums import Side
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from trading_daemon.detection.layering import LayeringDetector
from trading_daemon.detection.orders import LargeOrder, LargeOrderTracker, Level, TrackerParams
from trading_daemon.detection.spoofing import SpoofingDetector
from trading_daemon.detection.store import DetectionStore, StoreStats
from trading_daemon.detection.support_resistance import SupportResistanceDetector
from trading_daemon.observability.metrics import DaemonMetrics

log = structlog.get_logger(__name__)

HISTORY = 500  # detections kept in memory per symbol (the store keeps all)
TRACKED_LEVELS = 40  # large orders are followed this deep (a layer's far end may lie deep behind the touch)
ERROR_LOG_EVERY = 100


@dataclass(frozen=True, slots=True)
class SymbolDetectionStatus:
    """One symbol's detectors at a glance (the API's /detection/status/{symbol})."""

    symbol: str
    last_ts: int
    large_orders_resting: int
    large_orders_finished: int
    detections: dict[str, int]
    unconfirmed_breakouts: int
    blocked_by: str | None  # detection_id of the detection blocking entries now, if any
    blocked_until_ms: int | None
    levels: int
    errors: int


@dataclass(frozen=True, slots=True)
class DetectionStatus:
    """Every symbol's status, the active manipulations and the store's counters."""

    enabled: bool
    symbols: dict[str, SymbolDetectionStatus]
    active_manipulations: int
    errors: int
    store: StoreStats | None


@dataclass
class _Symbol:
    """The detectors and the memory of one symbol."""

    tracker: LargeOrderTracker
    spoofing: SpoofingDetector
    layering: LayeringDetector
    sr: SupportResistanceDetector
    last_ts: int = 0
    # finished orders not yet judged, or kept because a later one may still join them in a layer
    ended: list[LargeOrder] = field(default_factory=list)
    judged: set[int] = field(default_factory=set)
    consumed: set[int] = field(default_factory=set)  # orders already part of a layer
    trades: deque[tuple[int, Side, float]] = field(default_factory=deque)  # (ts, taker, size), recent
    detections: dict[str, Detection] = field(default_factory=dict)  # by id, insertion-ordered
    counts: dict[str, int] = field(default_factory=dict)
    finished: int = 0
    errors: int = 0
    levels_key: tuple[tuple[str, float, int, int | None], ...] = ()


class DetectionService:
    """Runs the detectors of `symbols` on the market feed's output; answers `blocked`, `active`, `levels`.

    `store` (optional) persists detections and level sets; `start`/`stop` run its writer. The newest
    `history` detections per symbol are kept in memory.
    """

    def __init__(
        self,
        config: DetectionConfig,
        symbols: Sequence[str],
        *,
        store: DetectionStore | None = None,
        metrics: DaemonMetrics | None = None,
        history: int = HISTORY,
    ) -> None:
        if isinstance(symbols, str):
            raise ValueError(f"symbols must be a sequence of symbols, got the string {symbols!r}")
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.config = config
        self.history = history
        self.store = store
        self.metrics = metrics
        params = TrackerParams(
            min_notional_usdt=min(config.spoofing_min_notional_usdt, config.layering_min_order_notional_usdt),
            min_size_multiple=min(config.spoofing_min_size_multiple, config.layering_min_size_multiple),
            max_level=TRACKED_LEVELS,
            settle_ms=config.settle_ms,
        )
        self._symbols = {
            s: _Symbol(
                tracker=LargeOrderTracker(s, params),
                spoofing=SpoofingDetector(s, config),
                layering=LayeringDetector(s, config),
                sr=SupportResistanceDetector(s, config),
            )
            for s in symbols
        }
        self._block_ms = round(config.manipulation_block_s * 1000)
        # How long a finished order may still join a layer with orders that finish after it.
        self._keep_ms = round((config.layering_max_ttl_s + config.layering_cancel_window_s) * 1000) + 1000
        self._trade_keep_ms = round(config.layering_max_ttl_s * 1000) + 5000

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the store's writer (call inside the running event loop)."""
        if self.store is not None:
            self.store.start()

    async def stop(self) -> None:
        if self.store is not None:
            await self.store.stop()

    # -- the feed's sinks ----------------------------------------------------------------------------

    def submit_book(
        self, symbol: str, ts_ms: int, bids: Sequence[Level], asks: Sequence[Level], *, snapshot: bool
    ) -> None:
        state = self._symbols.get(symbol)
        if state is None or not self.config.enabled:
            return
        try:
            state.tracker.on_book(ts_ms, bids, asks, snapshot=snapshot)
            self._advance(symbol, state, ts_ms)
        except Exception:
            self._failed(symbol, state, "book")

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        if not self.config.enabled:
            return
        for trade in trades:
            state = self._symbols.get(trade.symbol)
            if state is None or trade.block_trade:
                continue
            try:
                taker = Side(trade.side)
                state.tracker.on_trade(trade.ts, trade.price, trade.size, taker)
                state.trades.append((trade.ts, taker, trade.size))
                state.last_ts = max(state.last_ts, trade.ts)
            except Exception:
                self._failed(trade.symbol, state, "trade")

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        """Rows move each symbol's clock, so orders finish on time while the book is quiet."""
        if not self.config.enabled:
            return
        for row in rows:
            state = self._symbols.get(row.symbol)
            if state is None:
                continue
            try:
                self._advance(row.symbol, state, row.ts)
            except Exception:
                self._failed(row.symbol, state, "row")

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        if not self.config.enabled:
            return
        by_symbol: dict[str, list[Candle]] = {}
        for candle in candles:
            by_symbol.setdefault(candle.symbol, []).append(candle)
        for symbol, batch in by_symbol.items():
            state = self._symbols.get(symbol)
            if state is None:
                continue
            try:
                now = max(state.last_ts, max(c.start_ms + c.interval_ms for c in batch))
                for breakout in state.sr.on_candles(batch, now):
                    self._emit(state, breakout)
                self._levels_changed(symbol, state)
            except Exception:
                self._failed(symbol, state, "candles")

    # -- what the decisions and the API ask ----------------------------------------------------------

    def blocked(self, symbol: str, now_ms: int) -> Detection | None:
        """The manipulation blocking new entries on `symbol` at `now_ms` (exchange ms), if any: the most
        confident spoofing or layering detection of at least MANIPULATION_MIN_CONFIDENCE whose last
        evidence is at most MANIPULATION_BLOCK_S old."""
        state = self._symbols.get(symbol)
        if state is None:
            return None
        blocking = [
            d
            for d in state.detections.values()
            if d.kind.manipulative
            and d.confidence >= self.config.manipulation_min_confidence
            and d.start_ms <= now_ms <= d.end_ms + self._block_ms
        ]
        return max(blocking, key=lambda d: (d.confidence, d.end_ms)) if blocking else None

    def active(self, symbol: str) -> list[Detection]:
        """Spoofing and layering detections of `symbol` within their block window at its latest message
        (any confidence), newest first."""
        state = self._symbols.get(symbol)
        if state is None:
            return []
        now = state.last_ts
        found = [
            d for d in state.detections.values() if d.kind.manipulative and now <= d.end_ms + self._block_ms
        ]
        return sorted(found, key=lambda d: d.end_ms, reverse=True)

    def detections(self, symbol: str, *, kind: DetectionKind | None = None) -> list[Detection]:
        """The detections of `symbol` held in memory (the newest HISTORY), oldest first."""
        state = self._symbols.get(symbol)
        if state is None:
            return []
        return [d for d in state.detections.values() if kind is None or d.kind is kind]

    def levels(self, symbol: str) -> list[SupportResistanceLevel]:
        """The support/resistance levels of `symbol`, lowest price first."""
        state = self._symbols.get(symbol)
        return [] if state is None else state.sr.levels()

    def nearest_levels(
        self, symbol: str, price: float
    ) -> tuple[SupportResistanceLevel | None, SupportResistanceLevel | None]:
        """The nearest level at or below `price` and the nearest at or above it."""
        state = self._symbols.get(symbol)
        return (None, None) if state is None else state.sr.nearest(price)

    def status(self) -> DetectionStatus:
        symbols = {}
        active = 0
        for symbol, state in self._symbols.items():
            blocking = self.blocked(symbol, state.last_ts)
            active += len(self.active(symbol))
            symbols[symbol] = SymbolDetectionStatus(
                symbol=symbol,
                last_ts=state.last_ts,
                large_orders_resting=len(state.tracker.live),
                large_orders_finished=state.finished,
                detections=dict(state.counts),
                unconfirmed_breakouts=state.sr.unconfirmed_breakouts,
                blocked_by=None if blocking is None else blocking.detection_id,
                blocked_until_ms=None if blocking is None else blocking.end_ms + self._block_ms,
                levels=len(state.sr.levels()),
                errors=state.errors,
            )
        return DetectionStatus(
            enabled=self.config.enabled,
            symbols=symbols,
            active_manipulations=active,
            errors=sum(s.errors for s in self._symbols.values()),
            store=None if self.store is None else self.store.stats(),
        )

    # -- internals -----------------------------------------------------------------------------------

    def _advance(self, symbol: str, state: _Symbol, ts: int) -> None:
        """Move the symbol's clock to `ts` and judge the orders whose companions have had time to leave."""
        state.last_ts = max(state.last_ts, ts)
        now = state.last_ts
        finished = state.tracker.pop_finished(now)
        if finished:
            state.finished += len(finished)
            state.ended.extend(finished)
        if not state.ended:
            return
        ready_ms = now - round(self.config.layering_cancel_window_s * 1000)
        for order in state.ended:
            if order.order_id in state.judged or (order.ended_ms or 0) > ready_ms:
                continue
            state.judged.add(order.order_id)
            self._judge(state, order, now)
        keep_from = now - self._keep_ms
        kept = [o for o in state.ended if (o.ended_ms or 0) >= keep_from or o.order_id not in state.judged]
        if len(kept) != len(state.ended):
            dropped = {o.order_id for o in state.ended} - {o.order_id for o in kept}
            state.judged -= dropped
            state.consumed -= dropped
            state.ended = kept
        trade_from = now - self._trade_keep_ms
        while state.trades and state.trades[0][0] < trade_from:
            state.trades.popleft()

    def _judge(self, state: _Symbol, order: LargeOrder, now: int) -> None:
        if order.order_id in state.consumed:
            return
        pool = [o for o in state.ended if o.order_id not in state.consumed]
        layer = state.layering.find(order, pool, state.tracker.tick)
        if layer:
            state.consumed.update(o.order_id for o in layer)
            state.judged.update(o.order_id for o in layer)
            start = min(o.placed_ms for o in layer)
            end = max(o.ended_ms or o.placed_ms for o in layer)
            opposite = same = 0.0
            for ts, taker, size in state.trades:
                if start <= ts <= end:
                    # A taker selling hits bids: against a bid layer that is the other side's business.
                    if (taker is Side.SELL) == (layer[0].side is Side.BUY):
                        opposite += size
                    else:
                        same += size
            self._emit(state, state.layering.detection(layer, now, opposite, same))
            return
        detection = state.spoofing.on_finished(order, now)
        if detection is not None:
            self._emit(state, detection)

    def _emit(self, state: _Symbol, detection: Detection) -> None:
        new = detection.detection_id not in state.detections
        state.detections[detection.detection_id] = detection
        if new:
            state.counts[str(detection.kind)] = state.counts.get(str(detection.kind), 0) + 1
            while len(state.detections) > self.history:
                del state.detections[next(iter(state.detections))]
        if self.metrics is not None and new:
            self.metrics.detections.labels(symbol=detection.symbol, kind=str(detection.kind)).inc()
        fields = {
            "symbol": detection.symbol,
            "side": str(detection.side),
            "confidence": detection.confidence,
            "price_low": detection.price_low,
            "price_high": detection.price_high,
            "detection_id": detection.detection_id,
        }
        if detection.kind.manipulative:
            blocks = detection.confidence >= self.config.manipulation_min_confidence
            event = f"{detection.kind} detected" if new else f"{detection.kind} continues"
            log.warning(
                event,
                orders=detection.evidence.get("order_count"),
                blocks_entries=blocks,
                blocked_until_ms=detection.end_ms + self._block_ms if blocks else None,
                **fields,
            )
        else:
            log.info("breakout detected", **fields)
        if self.store is not None:
            self.store.submit_detection(detection)

    def _levels_changed(self, symbol: str, state: _Symbol) -> None:
        levels = state.sr.levels()
        key = tuple((str(lv.kind), lv.price, lv.touches, lv.broken_ms) for lv in levels)
        if key == state.levels_key:
            return
        state.levels_key = key
        if levels:
            support = [lv.price for lv in levels if lv.kind == "support"]
            resistance = [lv.price for lv in levels if lv.kind == "resistance"]
            log.info(
                "support/resistance levels",
                symbol=symbol,
                support=max(support) if support else None,
                resistance=min(resistance) if resistance else None,
                levels=len(levels),
            )
            if self.store is not None:
                self.store.submit_levels(symbol, levels[0].computed_ms, levels)

    def _failed(self, symbol: str, state: _Symbol, what: str) -> None:
        state.errors += 1
        if self.metrics is not None:
            self.metrics.detector_errors.labels(symbol=symbol).inc()
        if state.errors == 1 or state.errors % ERROR_LOG_EVERY == 0:
            log.exception(
                "detector failed, detection carries on", symbol=symbol, input=what, errors=state.errors
            )
