"""The market feed: Bybit streams in, raw snapshot rows, trades and closed candles out.

Per symbol it subscribes `orderbook.50`, `publicTrade` and `kline.1` (docs/features.md §6.2), feeds a
`RawSnapshotBuilder` and a `CandleStore`, and hands what they produce to every sink in turn (the recorder,
the live features); a sink that raises is logged and counted and stops neither the others nor the feed. A
gap or a crossed book asks the socket for a fresh snapshot; a dropped connection marks every book invalid
at once, before the resubscription whose snapshots make them valid again. A grace timer emits the rows of
quiet symbols, and no error of one symbol stops it. Book sinks (`BookSink`, the manipulation detectors)
also get every applied order-book message, for what 1 s rows are too coarse to show.

What the venue sends is checked before anything of it is applied: a book level whose price is not finite
and > 0 or whose size is not finite and >= 0, a trade or a kline that is no trade or candle, makes its whole
message invalid; it is dropped, logged and counted, and a bad book message also invalidates the book and
resyncs it (its `u` must not be taken, or the real message with that `u` would be dropped as a duplicate).
A row the builder cannot build is emitted anyway, flagged as an invalid book's, and the book resynced.

Nothing slow runs on the socket's reader: resyncs and candle back-fills are tasks of their own, at most one
in flight per topic or symbol, so a REST call retrying against a failing venue holds up no message (the
resync acknowledgements included). A candle hole that a back-fill cannot close is retried with a growing,
jittered interval (at least CANDLE_BACKFILL_MIN_INTERVAL_S, at most CANDLE_BACKFILL_MAX_INTERVAL_S, and never
before an open circuit breaker lets calls through again), not on every kline message.

The symbols, the row cadence, the grace and the back-fill throttle come from `infra.settings.FeedConfig`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from infra.settings import FeedConfig
from schemas.features import BOOK_TOPIC_DEPTH, CANDLE_WINDOW
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from trading_daemon.errors import Backoff, classify
from trading_daemon.exchange.messages import BybitWsKlines, BybitWsOrderbook, BybitWsTrades
from trading_daemon.exchange.parsing import parse_ws_klines, parse_ws_trades
from trading_daemon.market.candles import CandleStore
from trading_daemon.market.orderbook import DeltaOutcome, Level
from trading_daemon.market.snapshot_builder import RawSnapshotBuilder
from trading_daemon.observability.metrics import DaemonMetrics

log = structlog.get_logger(__name__)

TIMER_PERIOD_S = 0.05


StreamHandler = Callable[[Any], Awaitable[None] | None]


class MarketSink(Protocol):
    """Where the feed's output goes (the recorder and the live features implement it)."""

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None: ...
    def submit_trades(self, trades: Sequence[PublicTrade]) -> None: ...
    def submit_candles(self, candles: Sequence[Candle]) -> None: ...


class BookSink(Protocol):
    """Where each applied order-book message goes, for consumers that need the book finer than rows.

    The manipulation detectors (`trading_daemon.detection`) follow single large orders from one 20 ms
    push to the next, which 1 s rows cannot show (a spoof often lives well under a second). Called with
    the message's levels as parsed (size 0 deletes a price) after the builder applied it: every
    snapshot, and every delta that applied cleanly. A delta that was dropped, found a gap or left the
    book crossed is not passed on, so a sink's copy of the book stays equal to the builder's until the
    snapshot that follows a resync, which replaces it (`snapshot=True`).
    """

    def submit_book(
        self, symbol: str, ts_ms: int, bids: Sequence[Level], asks: Sequence[Level], *, snapshot: bool
    ) -> None: ...


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


class InvalidBookMessage(ValueError):
    """An order-book message holding a level that no book can hold: nothing of it may be applied."""


def _levels(raw: list[tuple[str, str]], side: str) -> list[Level]:
    """One side's `[price, size]` strings as floats; price finite and > 0, size finite and >= 0 (0 deletes)."""
    levels = []
    for price_text, size_text in raw:
        try:
            price, size = float(price_text), float(size_text)
        except ValueError:
            price = size = math.nan
        if not (0.0 < price < math.inf and 0.0 <= size < math.inf):  # NaN fails both comparisons
            raise InvalidBookMessage(
                f"{side} level [{price_text!r}, {size_text!r}]: price must be finite and > 0, size finite and >= 0"
            )
        levels.append((price, size))
    return levels


class MarketFeed:
    """Turns one public stream of several symbols into rows, trades and candles for every sink of `sinks`."""

    def __init__(
        self,
        config: FeedConfig,
        stream: PublicStream,
        candles_rest: CandleSource,
        sinks: Sequence[MarketSink],
        *,
        exchange_now_ms: Callable[[], int],
        metrics: DaemonMetrics | None = None,
        book_sinks: Sequence[BookSink] = (),
    ) -> None:
        backfill_min_interval_s = config.backfill_min_interval_s
        backfill_max_interval_s = config.backfill_max_interval_s
        if not 0 < backfill_min_interval_s <= backfill_max_interval_s:
            raise ValueError(
                "candle back-fill intervals must satisfy 0 < min <= max, got "
                f"min {backfill_min_interval_s} s, max {backfill_max_interval_s} s"
            )
        interval_ms, grace_ms = config.snapshot_interval_ms, config.row_grace_ms
        self.config = config
        self.symbols = list(config.symbols)
        self.stream = stream
        self.candles_rest = candles_rest
        self.sinks = list(sinks)
        self.book_sinks = list(book_sinks)
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
        self._book_topics: dict[str, str] = {}  # symbol → its order-book topic, once subscribed

    def _pin_of(self, symbol: str) -> Callable[[], int]:
        return lambda: self.candles[symbol].pin

    async def start(self, *, timer: bool = True) -> None:
        """Load the candle history, subscribe every topic, start the grace timer.

        With `timer=False` no timer task runs: the caller calls `on_timer` itself on its own clock (the
        offline recording of `depthcharge/offline_recording/` runs on virtual exchange time). The daemon
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
            self._book_topics[symbol] = await self.stream.subscribe_orderbook(
                symbol, self._on_orderbook, depth=BOOK_TOPIC_DEPTH
            )
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
        applied; the rows meanwhile carry no levels and `book_reset` (docs/features.md §6.2).
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
        try:
            bids, asks = _levels(data.b, "bid"), _levels(data.a, "ask")
        except InvalidBookMessage as exc:
            self._reject(msg.topic, data.s, "invalid_level", exc, type=msg.type, u=data.u, ts=msg.ts)
            builder.invalidate_book()  # its `u` is not taken: the book waits for a fresh snapshot instead
            self._resync_book(data.s)
            return
        if msg.type == "snapshot":
            self._emit(builder, builder.on_book_snapshot(bids, asks, data.u, msg.ts))
            self._fan_out_book(data.s, msg.ts, bids, asks, snapshot=True)
            return
        rows, outcome = builder.on_book_delta(bids, asks, data.u, msg.ts)
        self._emit(builder, rows)
        if outcome is DeltaOutcome.APPLIED:
            self._fan_out_book(data.s, msg.ts, bids, asks, snapshot=False)
        if outcome.needs_resync:
            log.warning("order book resync", symbol=data.s, outcome=outcome.value, u=data.u)
            self._resync_book(data.s)

    def _resync_book(self, symbol: str) -> None:
        self.stats.resyncs += 1
        if self.metrics is not None:
            self.metrics.book_resyncs.labels(symbol=symbol).inc()
        topic = self._book_topics.get(symbol)
        if topic is not None:  # else not subscribed yet: the subscription's snapshot loads the book
            self._request_resync(topic)

    def _reject(self, topic: str, symbol: str, reason: str, error: Exception, **context: Any) -> None:
        """Log and count a message dropped as invalid (nothing of it was applied)."""
        log.warning(
            "market message invalid, dropped", topic=topic, symbol=symbol, error=str(error), **context
        )
        if self.metrics is not None:
            self.metrics.market_messages_invalid.labels(topic=topic.split(".", 1)[0], reason=reason).inc()

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
        try:
            parsed = parse_ws_trades(msg.data)
        except ValueError as exc:
            self._reject(msg.topic, msg.topic.rsplit(".", 1)[-1], "invalid_trade", exc, ts=msg.ts)
            return
        trades = [t for t in parsed if t.symbol in self.builders]
        if not trades:
            return
        # Recorded first: trades are kept whatever becomes of the rows.
        self.stats.trades += len(trades)
        self._fan_out("trades", len(trades), lambda sink: sink.submit_trades(trades))
        for t in trades:
            builder = self.builders[t.symbol]
            self._emit(builder, builder.on_trade(msg.ts, t.side, t.price, t.size, block_trade=t.block_trade))

    async def _on_klines(self, msg: BybitWsKlines) -> None:
        self._count(msg.topic)
        symbol = msg.topic.rsplit(".", 1)[-1]
        builder = self.builders.get(symbol)
        if builder is None:
            return
        try:
            candles = parse_ws_klines(msg)
        except ValueError as exc:
            self._reject(msg.topic, symbol, "invalid_kline", exc, ts=msg.ts)
            return
        self._emit(builder, builder.on_other_message(msg.ts))
        store = self.candles[symbol]
        for candle in candles:
            store.on_kline(candle, confirm=candle.confirmed)
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
            delay = self._backfill_delay(persisting)
            try:
                await self.backfill_candles(symbol)
            except Exception as exc:  # the hole must close: every failure is tried again, spaced out
                decision = classify(exc)
                delay = decision.wait_s(delay)  # never before an open breaker lets calls through
                if not decision.retry:  # a refusal or a bug: worth more than a warning
                    log.error(
                        "candle back-fill failed", symbol=symbol, kind=decision.kind.value, exc_info=exc
                    )
                outcome, error = "failed", str(exc) or repr(exc)
            else:
                outcome, error = ("hole" if store.missing() else "filled"), ""
            if self.metrics is not None:
                self.metrics.candle_backfills.labels(symbol=symbol, outcome=outcome).inc()
            self._next_backfill_at[symbol] = time.monotonic() + delay
            if outcome == "filled":
                return
            persisting += 1
            log.warning(
                "candle hole persists", symbol=symbol, missing=len(store.missing()), outcome=outcome,
                error=error, retry_in_s=round(delay, 2),
            )  # fmt: skip

    def _backfill_delay(self, persisting: int) -> float:
        # The daemon's one backoff: never below the minimum, at most the maximum.
        return Backoff(self.backfill_min_interval_s, self.backfill_max_interval_s).delay(persisting)

    # -- output --------------------------------------------------------------------------------------

    def on_timer(self, exchange_now_ms: int) -> None:
        """Emit the rows whose grace period has passed at `exchange_now_ms` (what the timer does).

        One symbol's error is logged and counted; the other symbols' rows are still emitted.
        """
        for symbol, builder in self.builders.items():
            try:
                self._emit(builder, builder.on_timer(exchange_now_ms))
            except Exception:
                log.exception("market feed timer failed for a symbol", symbol=symbol)
                if self.metrics is not None:
                    self.metrics.market_feed_timer_errors.inc()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TIMER_PERIOD_S)
            try:
                self.on_timer(self.exchange_now_ms())
            except Exception:  # the timer serves every symbol: nothing may end it
                log.exception("market feed timer failed")
                if self.metrics is not None:
                    self.metrics.market_feed_timer_errors.inc()

    def _emit(self, builder: RawSnapshotBuilder, rows: list[RawSnapshotRow]) -> None:
        degraded = builder.pop_degraded_rows()
        if degraded:  # the builder invalidated the book of a row it could not build
            if self.metrics is not None:
                self.metrics.snapshot_rows_degraded.labels(symbol=builder.symbol).inc(degraded)
            self._resync_book(builder.symbol)
        if not rows:
            return
        self.stats.rows += len(rows)
        for row in rows:
            self.stats.by_symbol_rows[row.symbol] += 1
        self._fan_out("rows", len(rows), lambda sink: sink.submit_rows(rows))

    def _submit_candles(self, store: CandleStore) -> None:
        closed = store.drain_unrecorded()
        if closed:
            self.stats.candles += len(closed)
            self._fan_out("candles", len(closed), lambda sink: sink.submit_candles(closed))

    def _fan_out(self, kind: str, n: int, deliver: Callable[[MarketSink], None]) -> None:
        """`deliver` to every sink in turn; one that raises is logged and counted, the others still get it."""
        for sink in self.sinks:
            try:
                deliver(sink)
            except Exception:
                name = type(sink).__name__
                log.exception("market sink failed", sink=name, kind=kind, items=n)
                if self.metrics is not None:
                    self.metrics.market_sink_errors.labels(sink=name, kind=kind).inc()

    def _fan_out_book(
        self, symbol: str, ts_ms: int, bids: list[Level], asks: list[Level], *, snapshot: bool
    ) -> None:
        """An applied book message to every book sink; one that raises is logged and counted."""
        for sink in self.book_sinks:
            try:
                sink.submit_book(symbol, ts_ms, bids, asks, snapshot=snapshot)
            except Exception:
                name = type(sink).__name__
                log.exception("market sink failed", sink=name, kind="book", symbol=symbol)
                if self.metrics is not None:
                    self.metrics.market_sink_errors.labels(sink=name, kind="book").inc()

    def _count(self, topic: str) -> None:
        if self.metrics is not None:
            self.metrics.market_messages.labels(topic=topic.split(".", 1)[0]).inc()
