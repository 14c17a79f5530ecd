"""Candle back-fills of the market feed against the paper exchange: they run off the socket's reader, and a
hole that persists is retried on a growing interval, not on every kline message.

A hole is made as in production: the socket drops, the exchange clock jumps three minutes (their confirms go
nowhere), the socket comes back, and the confirm of the next minute reveals the missing ones. The feed's
clock offset was measured before the jump and is not re-measured here, so each back-fill drops the missing
candles as "still open" and the hole persists for as long as a test needs.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from exchange_sim.config import SimConfig
from exchange_sim.market import build_market
from exchange_sim.server.app import SimServer
from testkit.configs import feed_config
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.market.feed import MarketFeed
from trading_daemon.observability.metrics import DaemonMetrics

from .test_feed_checkpoints import Collect

SYMBOLS = ("BTCUSDT", "ETHUSDT")
MINUTE = 60_000
KLINE = "/v5/market/kline"


@dataclass
class KlineCall:
    symbol: str
    arrived: float  # time.monotonic()
    answered: float | None = None


@dataclass
class Rig:
    server: SimServer
    http: BybitHttpClient
    stream: BybitPublicWebSocket
    feed: MarketFeed
    metrics: DaemonMetrics
    calls: list[KlineCall] = field(default_factory=list)

    def jump_to(self, exchange_ms: int) -> None:
        """Move the exchange clock forward to `exchange_ms` and run one step there (as `/sim/clock/advance`)."""
        venue = self.server.venue
        venue.clock.jump(exchange_ms - venue.clock.now())
        venue.step(venue.clock.now())

    async def make_hole(self) -> None:
        """Lose three confirms during an outage; the confirm after the reconnect reveals the hole."""
        now = self.server.venue.clock.now()
        assert self.server.state.public.disconnect_all() == 1
        self.jump_to(now - now % MINUTE + 3 * MINUTE + 30_000)
        await until(lambda: self.stream.reconnects >= 1 and self.stream.connected, 5, "the reconnect")
        now = self.server.venue.clock.now()
        self.jump_to(now - now % MINUTE + MINUTE + 10)

    def kline_calls(self, symbol: str, since: float) -> list[KlineCall]:
        return [c for c in self.calls if c.symbol == symbol and c.arrived >= since]

    def book_messages(self) -> float:
        return (
            self.metrics.registry.get_sample_value(
                "depthcharge_market_messages_total", {"topic": "orderbook"}
            )
            or 0.0
        )


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {what}")
        await asyncio.sleep(0.02)


def _log_klines(server: SimServer, calls: list[KlineCall]) -> None:
    @web.middleware
    async def log_klines(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        if request.path != KLINE:
            return await handler(request)
        call = KlineCall(request.query.get("symbol", ""), time.monotonic())
        calls.append(call)
        try:
            return await handler(request)
        finally:
            call.answered = time.monotonic()

    server.app.middlewares.insert(0, log_klines)  # outermost: the injected latency is inside


@pytest.fixture
async def rig() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    made: list[Rig] = []

    async def make(**feed_options: Any) -> Rig:
        server = SimServer(
            SimConfig(port=0, symbols=SYMBOLS),
            lambda venue: build_market(venue.engine, list(SYMBOLS), seed=5),
        )
        calls: list[KlineCall] = []
        _log_klines(server, calls)
        await server.start()
        http = BybitHttpClient(server.base_url, max_attempts=1)
        stream = BybitPublicWebSocket(
            f"{server.ws_url}/v5/public/linear", backoff_initial_s=0.05, backoff_max_s=0.2
        )
        metrics = DaemonMetrics()
        feed = MarketFeed(
            feed_config(SYMBOLS, **feed_options), stream, BybitRestClient(http), [Collect()],
            exchange_now_ms=http.now_ms, metrics=metrics,
        )  # fmt: skip
        stream.on_disconnect = feed.on_disconnect
        made.append(Rig(server, http, stream, feed, metrics, calls))
        await http.sync_time()
        await stream.start()
        await feed.start()
        await until(lambda: all(feed.builders[s].book.valid for s in SYMBOLS), 5, "books loaded")
        return made[-1]

    yield make
    for r in made:
        await r.feed.stop()
        await r.stream.close()
        await r.http.close()
        await r.server.stop()


@pytest.mark.slow
async def test_backfill_runs_off_the_reader(rig: Callable[..., Awaitable[Rig]]) -> None:
    """While a back-fill waits for a slow REST reply, messages flow and a resync completes."""
    r = await rig()
    r.server.state.faults.update({"latency_ms": 3_000, "paths": [KLINE]})
    start = time.monotonic()
    await r.make_hole()
    await until(lambda: bool(r.kline_calls("BTCUSDT", start)), 5, "the back-fill request")
    backfill = r.kline_calls("BTCUSDT", start)[0]
    books_before = r.book_messages()
    # A gap on every book: each needs a resync, whose (un)subscribe acks come through the reader.
    r.server.state.faults.update({"delta_drop_rate": 1.0})
    await asyncio.sleep(0.3)
    r.server.state.faults.update({"delta_drop_rate": 0.0})
    await until(
        lambda: r.feed.stats.resyncs >= len(SYMBOLS) and all(r.feed.builders[s].book.valid for s in SYMBOLS),
        2,
        "every book resynchronised",
    )
    assert backfill.answered is None  # all of that while the back-fill was still waiting for its reply
    assert r.book_messages() > books_before  # the resyncs brought snapshots: messages flowed


@pytest.mark.slow
async def test_persistent_hole_is_retried_with_backoff(rig: Callable[..., Awaitable[Rig]]) -> None:
    """A hole the back-fill cannot close costs a few spaced-out requests, not one per kline message."""
    r = await rig(backfill_min_interval_s=1.0, backfill_max_interval_s=30.0)
    start = time.monotonic()
    await r.make_hole()
    await until(lambda: bool(r.kline_calls("BTCUSDT", start)), 5, "the first back-fill")
    await asyncio.sleep(7.5)
    kline_messages = r.metrics.registry.get_sample_value(
        "depthcharge_market_messages_total", {"topic": "kline"}
    )
    assert kline_messages is not None and kline_messages > 10  # each of them used to start a back-fill
    for symbol in SYMBOLS:
        assert r.feed.candles[symbol].missing(), symbol  # the hole persisted throughout
        arrivals = [c.arrived for c in r.kline_calls(symbol, start)]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        # 1 s, then 2 s, then 4 s (each up to a quarter more): four requests at most in these 7.5 s.
        assert 3 <= len(arrivals) <= 4, (symbol, gaps)
        assert all(g >= 1.0 for g in gaps) and all(b > 1.5 * a for a, b in itertools.pairwise(gaps)), gaps
    holes = r.metrics.registry.get_sample_value(
        "depthcharge_candle_backfills_total", {"symbol": "BTCUSDT", "outcome": "hole"}
    )
    calls = len(r.kline_calls("BTCUSDT", start))
    assert holes is not None and calls - 1 <= holes <= calls  # the last one may still be in flight
