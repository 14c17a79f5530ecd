"""The paper exchange's public side in-process, on a virtual clock: what the offline recorder drives.

* `VirtualClock` is exchange time that moves only when the recorder moves it;
* `InProcessPublicStream` is the daemon's `PublicStream` over the exchange's own `PublicHub`: each
  message the hub publishes is encoded as the JSON a socket would carry, decoded into the daemon's
  message types (`trading_daemon.exchange.messages`, msgspec) and handed to the subscribed handler;
* `InProcessCandleSource` is the daemon's `CandleSource` over the exchange's kline endpoint, parsed by
  the daemon's `parse_klines`.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections import deque
from typing import Any

import msgspec
from aiohttp import web

from exchange_sim.clock import ExchangeClock
from exchange_sim.server import rest_public
from exchange_sim.server.http import Params
from exchange_sim.server.ws_public import Connection, PublicHub
from exchange_sim.venue import Venue
from schemas.market import Candle
from trading_daemon.exchange.messages import (
    BybitKlineResult,
    BybitWsFrame,
    BybitWsKlines,
    BybitWsOrderbook,
    BybitWsTrades,
)
from trading_daemon.exchange.parsing import parse_klines
from trading_daemon.market.feed import StreamHandler

_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "orderbook": msgspec.json.Decoder(BybitWsOrderbook),
    "publicTrade": msgspec.json.Decoder(BybitWsTrades),
    "kline": msgspec.json.Decoder(BybitWsKlines),
}
_FRAME = msgspec.json.Decoder(BybitWsFrame)
_KLINES = msgspec.json.Decoder(BybitKlineResult)


class SimRecordingError(RuntimeError):
    """The in-process exchange refused something the recording asked for."""


class VirtualClock(ExchangeClock):
    """Exchange time that moves only when the recording moves it."""

    def __init__(self, start_ms: int) -> None:
        super().__init__(1.0, start_ms)
        self.ms = start_ms

    def now(self) -> int:
        return self.ms

    __call__ = now

    def jump(self, ms: int) -> int:
        if ms < 0:
            raise ValueError(f"the exchange clock only moves forward; jump of {ms} ms refused")
        self.ms += ms
        return self.ms


class _Inbox(Connection):
    """The daemon's end of an in-process public connection: each message the hub sends is encoded as the
    JSON a socket would carry and queued with its topic (empty for op replies)."""

    def __init__(self) -> None:
        super().__init__(web.WebSocketResponse())  # never prepared: nothing goes over a network
        self.frames: deque[tuple[str, bytes]] = deque()

    def send(self, message: dict[str, Any]) -> None:
        self.frames.append((message.get("topic", ""), msgspec.json.encode(message)))

    def close(self) -> None:
        raise SimRecordingError("the in-process exchange closed the public connection")


class InProcessPublicStream:
    """`trading_daemon.market.feed.PublicStream` over an in-process `PublicHub`.

    Subscriptions go to the hub as the op frames a socket would carry; `deliver` hands the queued
    messages, decoded into the daemon's message types, to the subscribed handlers in order.
    """

    def __init__(self, hub: PublicHub) -> None:
        self.hub = hub
        self.inbox = _Inbox()
        self.handlers: dict[str, StreamHandler] = {}
        self.messages = 0
        self._ids = itertools.count(1)

    async def subscribe_orderbook(self, symbol: str, handler: StreamHandler, depth: int = 50) -> str:
        return await self._subscribe(f"orderbook.{depth}.{symbol}", handler)

    async def subscribe_trades(self, symbol: str, handler: StreamHandler) -> str:
        return await self._subscribe(f"publicTrade.{symbol}", handler)

    async def subscribe_klines(self, symbol: str, handler: StreamHandler, interval: str = "1") -> str:
        return await self._subscribe(f"kline.{interval}.{symbol}", handler)

    async def resync(self, topic: str) -> None:
        """Unsubscribe and subscribe again: the hub answers with a fresh snapshot."""
        self._op("unsubscribe", topic)
        self._op("subscribe", topic)
        await self.deliver()

    async def deliver(self) -> None:
        """Hand every queued message to its topic's handler (op replies are checked, not handed on)."""
        frames = self.inbox.frames
        while frames:
            topic, raw = frames.popleft()
            if not topic:
                reply = _FRAME.decode(raw)
                if reply.success is False:
                    raise SimRecordingError(f"the exchange refused {reply.op!r}: {reply.ret_msg}")
                continue
            handler = self.handlers.get(topic)
            if handler is None:
                continue  # a late message of an unsubscribed topic
            self.messages += 1
            result = handler(_DECODERS[topic.split(".", 1)[0]].decode(raw))
            if inspect.isawaitable(result):
                await result

    async def _subscribe(self, topic: str, handler: StreamHandler) -> str:
        self.handlers[topic] = handler
        self._op("subscribe", topic)
        await self.deliver()
        return topic

    def _op(self, op: str, topic: str) -> None:
        request = {"req_id": f"{op}-{next(self._ids)}", "op": op, "args": [topic]}
        self.hub.receive(self.inbox, json.dumps(request))


class InProcessCandleSource:
    """`trading_daemon.market.feed.CandleSource`: the exchange's kline endpoint, parsed by the daemon."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    async def get_klines(self, symbol: str, interval: str = "1", *, limit: int = 200) -> list[Candle]:
        query = {"category": "linear", "symbol": symbol, "interval": interval, "limit": str(limit)}
        result = rest_public.kline(self.venue, Params(query))
        raw = _KLINES.decode(msgspec.json.encode(result))
        return parse_klines(raw, interval, now_ms=self.venue.clock.now())
