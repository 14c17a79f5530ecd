"""The market feed: Bybit streams in, raw snapshot rows, trades and closed candles out.

Per symbol it subscribes `orderbook.50`, `publicTrade` and `kline.1` (FEATURES.md §6.2), feeds a
`RawSnapshotBuilder` and a `CandleStore`, and hands what they produce to a sink (the recorder, and later
the live features). A gap or a crossed book asks the socket for a fresh snapshot; a dropped connection
marks every book invalid at once, before the resubscription whose snapshots make them valid again. A grace
timer emits the rows of quiet symbols.

Nothing slow runs on the socket's reader: resyncs and candle back-fills are tasks of their own, at most one
in flight per topic or symbol, so a REST call retrying against a failing venue holds up no message (the
resync acknowledgements included). A candle hole that a back-fill cannot close is retried with a growing,
jittered interval (at least `backfill_min_interval_s`, at most `backfill_max_interval_s`, and never before
an open circuit breaker lets calls through again), not on every kline message.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from trading_daemon.exchange.errors import BybitError
from trading_daemon.exchange.messages import BybitWsKlines, BybitWsOrderbook, BybitWsTrades
from trading_daemon.exchange.parsing import parse_ws_trades
from trading_daemon.market.candles import CANDLE_WINDOW, CandleStore
from trading_daemon.market.snapshot_builder import RawSnapshotBuilder
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.resilience.circuit_breaker import CircuitBreakerError

log = structlog.get_logger(__name__)

BOOK_TOPIC_DEPTH = 50  # FEATURES.md §5: a different depth is a different feature spec
TIMER_PERIOD_S = 0.05
BACKFILL_MIN_INTERVAL_S = 2.0
BACKFILL_MAX_INTERVAL_S = 60.0


StreamHandler = Callable[[Any], Awaitable[None] | None]


class MarketSink(Protocol):
    """Where the feed's output goes (the recorder implements it)."""

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None: ...
    def submit_trades(self, trades: Sequence[PublicTrade]) -> None: ...
    def submit_candles(self, candles: Sequence[Candle]) -> None: ...


class PublicStream(Protocol):
    async def subscribe_orderbook(self, symbol: str, handler: StreamHandler, depth: int = 50) -> str: ...
    async def subscribe_trades(self, symbol: str, handler: StreamHandler) -> str: ...
    async def subscribe_klines(self, symbol: str, handler: StreamHandler, interval: str = "1") -> str: ...
    async def resync(self, topic: str) -> None: ...


class CandleSource(Protocol):
    async def get_klines(self, symbol: str, interval: str = "1", *, limit: int = 200) -> list[Candle]: ...


@dataclass
class FeedStats:
    rows: int = 0
    trades: int = 0
    candles: int = 0
    resyncs: int = 0
    by_symbol_rows: dict[str, int] = field(default_factory=dict)


def _levels(raw: list[tuple[str, str]]) -> list[tuple[float, float]]:
    return [(float(p), float(s)) for p, s in raw]


class MarketFeed:
    """Turns one public stream of several symbols into rows, trades and candles for `sink`."""

    def __init__(
        self,
        symbols: Sequence[str],
        stream: PublicStream,
        candles_rest: CandleSource,
        sink: MarketSink,
        *,
        exchange_now_ms: Callable[[], int],
        interval_ms: int = 1000,
        grace_ms: int = 250,
        metrics: DaemonMetrics | None = None,
        backfill_min_interval_s: float = BACKFILL_MIN_INTERVAL_S,
        backfill_max_interval_s: float = BACKFILL_MAX_INTERVAL_S,
    ) -> None:
        if not 0 < backfill_min_interval_s <= backfill_max_interval_s:
            raise ValueError(
                "candle back-fill intervals must satisfy 0 < min <= max, got "
                f"min {backfill_min_interval_s} s, max {backfill_max_interval_s} s"
            )
        self.symbols = list(symbols)
        self.stream = stream
        self.candles_rest = candles_rest
        self.sink = sink
        self.exchange_now_ms = exchange_now_ms
        self.metrics = metrics
        self.candles = {s: CandleStore(s) for s in self.symbols}
        self.builders = {
            s: RawSnapshotBuilder(s, interval_ms=interval_ms, grace_ms=grace_ms, candle_pin=self._pin_of(s))
            for s in self.symbols
        }
        self.stats = FeedStats(by_symbol_rows=dict.fromkeys(self.symbols, 0))
        self._timer: asyncio.Task[None] | None = None
        self._resyncs: dict[str, asyncio.Task[None]] = {}
        self.backfill_min_interval_s = backfill_min_interval_s
        self.backfill_max_interval_s = backfill_max_interval_s
        self._backfills: dict[str, asyncio.Task[None]] = {}
        self._next_backfill_at = dict.fromkeys(self.symbols, 0.0)  # time.monotonic()

    def _pin_of(self, symbol: str) -> Callable[[], int]:
        return lambda: self.candles[symbol].pin

    async def start(self, *, timer: bool = True) -> None:
        """Load the candle history, subscribe every topic, start the grace timer.

        With `timer=False` no timer task runs: the caller calls `on_timer` itself on its own clock (the
        offline recording of `depthcharge/sim_recording.py` runs on virtual exchange time). The daemon
        runs the three steps one by one instead (`backfill_candles` per symbol, `subscribe`,
        `start_timer`), retrying each until it succeeds.
        """
        for symbol in self.symbols:
            await self.backfill_candles(symbol)
        await self.subscribe()
        if timer:
            self.start_timer()

    async def subscribe(self) -> None:
        """Subscribe every topic of every symbol (topics already tracked by the stream are skipped)."""
        for symbol in self.symbols:
            await self.stream.subscribe_orderbook(symbol, self._on_orderbook, depth=BOOK_TOPIC_DEPTH)
            await self.stream.subscribe_trades(symbol, self._on_trades)
            await self.stream.subscribe_klines(symbol, self._on_klines, "1")

    def start_timer(self) -> None:
        """Start the grace timer task (once)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._tick(), name="market-feed-timer")

    async def stop(self) -> None:
        """Stop the timer, resyncs and back-fills. The row still open is not emitted: a row exists only
        once its boundary passed."""
        tasks = [*self._resyncs.values(), *self._backfills.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._resyncs.clear()
        self._backfills.clear()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    async def backfill_candles(self, symbol: str) -> None:
        """Load CANDLE_WINDOW + 1 candles over REST (the newest may still be open and is dropped)."""
        candles = await self.candles_rest.get_klines(symbol, "1", limit=CANDLE_WINDOW + 1)
        store = self.candles[symbol]
        store.load_history([c for c in candles if c.confirmed], self.exchange_now_ms())
        self._submit_candles(store)

    def on_disconnect(self) -> None:
        """The socket dropped: every book is stale until the snapshot that follows the resubscription.

        Called before the reconnect (`BybitWebSocket.on_disconnect`), so that snapshot is the one
        applied; the rows meanwhile carry no levels and `book_reset` (FEATURES.md §6.2).
        """
        for builder in self.builders.values():
            builder.invalidate_book()

    # -- handlers ------------------------------------------------------------------------------------

    async def _on_orderbook(self, msg: BybitWsOrderbook) -> None:
        data = msg.data
        builder = self.builders.get(data.s)
        if builder is None:
            return
        self._count(msg.topic)
        bids, asks = _levels(data.b), _levels(data.a)
        if msg.type == "snapshot":
            self._emit(builder.on_book_snapshot(bids, asks, data.u, msg.ts))
            return
        rows, outcome = builder.on_book_delta(bids, asks, data.u, msg.ts)
        self._emit(rows)
        if outcome.needs_resync:
            self.stats.resyncs += 1
            if self.metrics is not None:
                self.metrics.book_resyncs.labels(symbol=data.s).inc()
            log.warning("order book resync", symbol=data.s, outcome=outcome.value, u=data.u)
            self._request_resync(msg.topic)

    def _request_resync(self, topic: str) -> None:
        # Not awaited here: the resubscribe waits for its ack, which the socket's reader can only
        # deliver once this handler has returned. One resync per topic at a time.
        pending = self._resyncs.get(topic)
        if pending is not None and not pending.done():
            return
        self._resyncs[topic] = asyncio.get_running_loop().create_task(
            self._resync(topic), name=f"resync-{topic}"
        )

    async def _resync(self, topic: str) -> None:
        try:
            await self.stream.resync(topic)
        except Exception:
            # The socket's own reconnect resubscribes every topic, so a failed resync heals too.
            log.exception("order book resync failed", topic=topic)

    async def _on_trades(self, msg: BybitWsTrades) -> None:
        self._count(msg.topic)
        trades = [t for t in parse_ws_trades(msg.data) if t.symbol in self.builders]
        for t in trades:
            builder = self.builders[t.symbol]
            self._emit(builder.on_trade(msg.ts, t.side, t.price, t.size, block_trade=t.block_trade))
        if trades:
            self.stats.trades += len(trades)
            self.sink.submit_trades(trades)

    async def _on_klines(self, msg: BybitWsKlines) -> None:
        self._count(msg.topic)
        symbol = msg.topic.rsplit(".", 1)[-1]
        builder = self.builders.get(symbol)
        if builder is None:
            return
        self._emit(builder.on_other_message(msg.ts))
        store = self.candles[symbol]
        for k in msg.data:
            candle = Candle(symbol=symbol, start_ms=k.start, open=float(k.open), high=float(k.high),
                            low=float(k.low), close=float(k.close), volume=float(k.volume),
                            turnover=float(k.turnover), confirmed=k.confirm)  # fmt: skip
            store.on_kline(candle, confirm=k.confirm)
        if store.missing():
            # A confirm was lost (reconnect): fill the hole over REST so the pin can advance.
            self._request_backfill(symbol)
        self._submit_candles(store)

    # -- candle back-fill ----------------------------------------------------------------------------

    def _request_backfill(self, symbol: str) -> None:
        # A task, not awaited: the REST call and its retries must not hold up the socket's reader.
        pending = self._backfills.get(symbol)
        if pending is not None and not pending.done():
            return
        self._backfills[symbol] = asyncio.get_running_loop().create_task(
            self._fill_hole(symbol), name=f"candle-backfill-{symbol}"
        )

    async def _fill_hole(self, symbol: str) -> None:
        """Back-fill until `symbol` has no candle hole, spacing the attempts out."""
        store = self.candles[symbol]
        persisting = 0  # attempts in a row that left the hole open
        while True:
            wait = self._next_backfill_at[symbol] - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not store.missing():
                return  # closed meanwhile (a late confirm)
            not_before = 0.0
            try:
                await self.backfill_candles(symbol)
            except CircuitBreakerError as exc:
                outcome, error, not_before = "failed", str(exc), exc.retry_after
            except BybitError as exc:  # the venue failed after the client's own retries: try later
                outcome, error = "failed", str(exc)
            except Exception as exc:
                log.exception("candle back-fill failed unexpectedly", symbol=symbol)
                outcome, error = "failed", repr(exc)
            else:
                outcome, error = ("hole" if store.missing() else "filled"), ""
            if self.metrics is not None:
                self.metrics.candle_backfills.labels(symbol=symbol, outcome=outcome).inc()
            delay = max(self._backfill_delay(persisting), not_before)
            self._next_backfill_at[symbol] = time.monotonic() + delay
            if outcome == "filled":
                return
            persisting += 1
            log.warning(
                "candle hole persists", symbol=symbol, missing=len(store.missing()), outcome=outcome,
                error=error, retry_in_s=round(delay, 2),
            )  # fmt: skip

    def _backfill_delay(self, persisting: int) -> float:
        # Exponential with upward jitter: never below the minimum, at most the maximum.
        base = self.backfill_min_interval_s * 2.0 ** min(persisting, 30) * random.uniform(1.0, 1.25)
        return min(self.backfill_max_interval_s, base)

    # -- output --------------------------------------------------------------------------------------

    def on_timer(self, exchange_now_ms: int) -> None:
        """Emit the rows whose grace period has passed at `exchange_now_ms` (what the timer does)."""
        for builder in self.builders.values():
            self._emit(builder.on_timer(exchange_now_ms))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TIMER_PERIOD_S)
            self.on_timer(self.exchange_now_ms())

    def _emit(self, rows: list[RawSnapshotRow]) -> None:
        if not rows:
            return
        self.stats.rows += len(rows)
        for row in rows:
            self.stats.by_symbol_rows[row.symbol] += 1
        self.sink.submit_rows(rows)

    def _submit_candles(self, store: CandleStore) -> None:
        closed = store.drain_unrecorded()
        if closed:
            self.stats.candles += len(closed)
            self.sink.submit_candles(closed)

    def _count(self, topic: str) -> None:
        if self.metrics is not None:
            self.metrics.market_messages.labels(topic=topic.split(".", 1)[0]).inc()
