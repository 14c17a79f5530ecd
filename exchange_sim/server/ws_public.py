"""Public WebSocket ``/v5/public/linear`` (docs/exchange_protocol.md §5): ops, and the orderbook, publicTrade, kline and
tickers topics.

Each connection has an outgoing queue drained by its own writer task, so producers (the driver, REST
handlers causing trades) never wait on a slow socket and messages keep their order per connection.
Replies echo ``req_id`` (``""`` when none was sent) and every data message carries ``topic``, as pybit
requires (Appendix A).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import WSMsgType, web

from exchange_sim import wire
from exchange_sim.events import PublicTrade
from exchange_sim.klines import INTERVALS, Candle
from exchange_sim.server.book_feed import DEPTHS, BookFeed, PushClock
from exchange_sim.server.faults import FaultInjector
from exchange_sim.server.market_data import ticker_object
from exchange_sim.server.ws_socket import QueuedSocket, shown_topic
from exchange_sim.venue import Venue

TRADES_PER_MESSAGE = 1024
KLINE_PUSH_MS = 1_000
TICKER_PUSH_MS = 100


class Connection(QueuedSocket):
    """One WebSocket connection: its id, subscriptions and outgoing queue."""

    missing_req_id = ""  # public replies always carry req_id

    def __init__(self, ws: web.WebSocketResponse) -> None:
        super().__init__(ws)
        self.topics: set[str] = set()
        self.tickers: dict[str, dict[str, str]] = {}  # topic → last ticker sent on this connection


def reply(conn: Connection, op: str, req_id: str, success: bool = True, ret_msg: str = "") -> dict[str, Any]:
    """A control reply in the linear shape of §5.2."""
    return conn.reply(op, req_id, success, ret_msg)


class PublicHub:
    """All public connections and subscriptions; also the venue's :class:`PublicListener`.

    ``depths`` and ``clock_ms`` go to the :class:`BookFeed`; ``clock_ms`` (exchange time: the venue's
    clock by default, an offline recording passes its virtual clock, see ``depthcharge/offline_recording/``)
    also paces the open-candle and ticker pushes, so every topic keeps its cadence per exchange second
    at any speed. Book topics nobody subscribes to are not diffed (see :class:`BookFeed`).
    """

    def __init__(
        self,
        venue: Venue,
        faults: FaultInjector,
        *,
        depths: Iterable[int] = DEPTHS,
        clock_ms: PushClock | None = None,
    ) -> None:
        self.venue = venue
        self.faults = faults
        self.connections: set[Connection] = set()
        self.subscribers: dict[str, set[Connection]] = {}
        self.clock_ms: PushClock = clock_ms if clock_ms is not None else venue.clock.now
        self.feed = BookFeed(
            venue,
            faults,
            self.broadcast_book,
            depths=depths,
            clock_ms=self.clock_ms,
            has_subscribers=lambda topic: bool(self.subscribers.get(topic)),
        )
        self._last_kline_push = -math.inf
        self._last_ticker_push = -math.inf
        venue.listeners.append(self)
        venue.tick_hooks.append(self.tick)

    # -- topics --------------------------------------------------------------------------------------

    def valid_topic(self, topic: object) -> bool:
        """Whether ``topic`` names a public linear topic of a listed symbol."""
        if not isinstance(topic, str):
            return False
        parts = topic.split(".")
        symbols = self.venue.instruments
        if parts[0] == "orderbook" and len(parts) == 3:
            return parts[1] in {str(d) for d in self.feed.depths} and parts[2] in symbols
        if parts[0] == "kline" and len(parts) == 3:
            return parts[1] in INTERVALS and parts[2] in symbols
        if parts[0] in ("publicTrade", "tickers") and len(parts) == 2:
            return parts[1] in symbols
        return False

    # -- venue events --------------------------------------------------------------------------------

    def broadcast_book(self, topic: str, message: dict[str, Any], is_delta: bool) -> None:
        """Deliver an orderbook message, applying the delta drop/duplicate faults per connection."""
        for conn in self.subscribers.get(topic, ()):
            if is_delta and self.faults.drop_delta():
                continue
            conn.send(message)
            if is_delta and self.faults.duplicate_delta():
                conn.send(message)

    def on_trades(self, symbol: str, trades: list[PublicTrade]) -> None:
        """Publish ``publicTrade.{symbol}``."""
        conns = self.subscribers.get(f"publicTrade.{symbol}")
        if not conns:
            return
        spec = self.venue.instruments[symbol]
        now = self.venue.clock.now()
        for i in range(0, len(trades), TRADES_PER_MESSAGE):
            chunk = [wire.public_trade_object(spec, t) for t in trades[i : i + TRADES_PER_MESSAGE]]
            message = {"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": now, "data": chunk}
            for conn in conns:
                conn.send(message)

    def on_candles(self, symbol: str, candles: list[Candle]) -> None:
        """Publish the closing (``confirm: true``) update of each closed candle."""
        for candle in candles:
            self._send_kline(symbol, candle)

    def tick(self, now: int) -> None:
        """Driver hook: book pushes, open-candle and ticker updates, disconnect faults."""
        self.feed.tick(now)
        push_now = self.clock_ms()
        if push_now - self._last_kline_push >= KLINE_PUSH_MS:
            self._last_kline_push = push_now
            for symbol, book in self.venue.klines.items():
                for interval in INTERVALS:
                    if self.subscribers.get(f"kline.{interval}.{symbol}"):
                        candle = book.current(interval)
                        if candle is not None:
                            self._send_kline(symbol, candle)
        if push_now - self._last_ticker_push >= TICKER_PUSH_MS:
            self._last_ticker_push = push_now
            for symbol in self.venue.instruments:
                topic = f"tickers.{symbol}"
                conns = self.subscribers.get(topic)
                if conns:
                    self._send_ticker_deltas(topic, symbol, conns)
        wall = time.monotonic()  # disconnect faults hit real sockets: wall time
        for conn in list(self.connections):
            elapsed = wall - conn.last_fault_roll
            if elapsed >= 1.0:
                conn.last_fault_roll = wall
                if self.faults.ws_disconnect(elapsed):
                    conn.close()

    def _send_kline(self, symbol: str, candle: Candle) -> None:
        topic = f"kline.{candle.interval}.{symbol}"
        conns = self.subscribers.get(topic)
        if not conns:
            return
        spec = self.venue.instruments[symbol]
        data = {
            "start": candle.start,
            "end": candle.end,
            "interval": candle.interval,
            "open": wire.price(spec, candle.open),
            "close": wire.price(spec, candle.close),
            "high": wire.price(spec, candle.high),
            "low": wire.price(spec, candle.low),
            "volume": wire.qty(spec, candle.volume),
            "turnover": wire.num(candle.turnover),
            "confirm": candle.confirm,
            "timestamp": candle.timestamp,
        }
        message = {"topic": topic, "type": "snapshot", "ts": self.venue.clock.now(), "data": [data]}
        for conn in conns:
            conn.send(message)

    def _ticker_message(self, topic: str, kind: str, data: dict[str, str]) -> dict[str, Any]:
        symbol = topic.split(".")[1]
        seq = self.venue.engine.books[symbol].seq
        return {"topic": topic, "type": kind, "data": data, "cs": seq, "ts": self.venue.clock.now()}

    def _send_ticker_deltas(self, topic: str, symbol: str, conns: set[Connection]) -> None:
        current = ticker_object(self.venue, symbol)
        for conn in conns:
            last = conn.tickers.get(topic, {})
            changed = {k: v for k, v in current.items() if last.get(k) != v}
            if changed:
                conn.tickers[topic] = current
                conn.send(self._ticker_message(topic, "delta", {"symbol": symbol, **changed}))

    # -- connection handling -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The ``/v5/public/linear`` WebSocket endpoint."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.add(conn)
        writer = asyncio.create_task(conn.writer())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.receive(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.connections.discard(conn)
            for topic in conn.topics:
                self.subscribers.get(topic, set()).discard(conn)
            conn.close()
            await writer
        return ws

    def receive(self, conn: Connection, text: str) -> None:
        """Handle one text frame of ``conn`` (an op request); replies go out through ``conn.send``."""
        conn.dispatch(text, lambda request, op, req_id: self._on_request(conn, request, op, req_id or ""))

    def _on_request(self, conn: Connection, request: dict[str, Any], op: str, req_id: str) -> None:
        args = request.get("args") or []
        if op == "ping":
            conn.send(reply(conn, "ping", req_id, True, "pong"))
        elif op == "subscribe":
            self._subscribe(conn, req_id, args)
        elif op == "unsubscribe":
            self._unsubscribe(conn, req_id, args)
        else:
            conn.send(reply(conn, op, req_id, False, "error:invalid op"))

    def _subscribe(self, conn: Connection, req_id: str, args: Any) -> None:
        if not isinstance(args, list) or not args:
            conn.send(
                reply(conn, "subscribe", req_id, False, "error:args must be a non-empty list of topics")
            )
            return
        failure = ""
        added: list[str] = []
        for topic in args:
            if not self.valid_topic(topic):
                failure = failure or f"error:handler not found,topic:{shown_topic(topic)}"
            elif topic in conn.topics:
                failure = failure or f"error:already subscribed,topic:{topic}"
            else:
                conn.topics.add(topic)
                self.subscribers.setdefault(topic, set()).add(conn)
                added.append(topic)
        conn.send(reply(conn, "subscribe", req_id, not failure, failure))
        for topic in added:
            kind = topic.split(".")[0]
            if kind == "orderbook":
                conn.send(self.feed.snapshot_message(topic))
            elif kind == "tickers":
                data = ticker_object(self.venue, topic.split(".")[1])
                conn.tickers[topic] = data
                conn.send(self._ticker_message(topic, "snapshot", data))

    def _unsubscribe(self, conn: Connection, req_id: str, args: Any) -> None:
        if not isinstance(args, list) or not args:
            conn.send(
                reply(conn, "unsubscribe", req_id, False, "error:args must be a non-empty list of topics")
            )
            return
        failure = ""
        for topic in args:
            if not isinstance(topic, str) or topic not in conn.topics:
                failure = failure or f"error:not subscribed,topic:{shown_topic(topic)}"
                continue
            conn.topics.discard(topic)
            conn.tickers.pop(topic, None)
            self.subscribers.get(topic, set()).discard(conn)
        conn.send(reply(conn, "unsubscribe", req_id, not failure, failure))

    def disconnect_all(self) -> int:
        """Close every public connection (admin fault); returns how many."""
        for conn in self.connections:
            conn.close()
        return len(self.connections)
