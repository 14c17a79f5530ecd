"""The market feed against the paper exchange with hostile frames injected into the public socket: a book
level no book can hold makes its whole message invalid (nothing applied, the book resynced), a row that cannot
be built is emitted on time and flagged instead of wedging the symbol, trades are recorded whatever becomes of
the rows, the grace timer survives any error, and one failing sink stops neither the others nor the feed.

The market is a `ScriptedMarket`: a static ladder that changes only when a test queues an order, so the book
the feed should hold is known exactly at every step.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from exchange_sim.config import SimConfig
from exchange_sim.matching import OrderRequest
from exchange_sim.server.app import SimServer
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from testkit.configs import feed_config
from tests.fixtures.markets import ScriptedMarket
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.market.feed import MarketFeed
from trading_daemon.observability.metrics import DaemonMetrics

from .test_feed_checkpoints import Collect

SYMBOLS = ("BTCUSDT", "ETHUSDT")
SYMBOL = "BTCUSDT"
FAKE_BID = "63999.85"  # between two ladder levels: plausible, and in no real book of this market


@dataclass
class Rig:
    server: SimServer
    feed: MarketFeed
    sink: Collect
    metrics: DaemonMetrics

    @property
    def market(self) -> ScriptedMarket:
        market = self.server.venue.market
        assert isinstance(market, ScriptedMarket)
        return market

    def now(self) -> int:
        return int(self.server.venue.clock.now())

    def inject(self, frame: dict[str, Any] | str) -> None:
        """Send `frame` to every public connection, in order with what the exchange itself sends."""
        for conn in self.server.state.public.connections:
            if isinstance(frame, str):
                conn.queue.put_nowait(frame)
            else:
                conn.send(frame)

    def truth(self, symbol: str = SYMBOL) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        snap = self.server.venue.engine.books[symbol].snapshot(50)
        return [(float(p), float(q)) for p, q in snap.bids], [(float(p), float(q)) for p, q in snap.asks]

    def book_is_true(self, symbol: str = SYMBOL) -> bool:
        book = self.feed.builders[symbol].book
        return book.valid and book.top(50) == self.truth(symbol)

    def counter(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(f"depthcharge_{name}_total", labels) or 0.0

    def rows(self, symbol: str = SYMBOL) -> list[RawSnapshotRow]:
        return [r for r in self.sink.rows if r.symbol == symbol]

    def queue_order(self, side: str, price: Decimal, symbol: str = SYMBOL) -> None:
        spec = self.server.venue.engine.instruments[symbol]
        self.market.queue("probe", OrderRequest(symbol, side, "Limit", spec.min_order_qty, price))


async def more_rows(r: Rig, n: int = 2, symbol: str = SYMBOL) -> list[RawSnapshotRow]:
    """Wait for `n` more rows of `symbol` (and at least three in all); all its rows."""
    target = max(3, len(r.rows(symbol)) + n)
    await until(lambda: len(r.rows(symbol)) >= target, 5, f"{n} more rows of {symbol}")
    return r.rows(symbol)


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def rig() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    made: list[tuple[SimServer, BybitHttpClient, BybitPublicWebSocket, MarketFeed]] = []

    async def make(extra_sinks: Sequence[Any] = ()) -> Rig:
        server = SimServer(SimConfig(port=0, symbols=SYMBOLS), lambda venue: ScriptedMarket(venue.engine))
        await server.start()
        http = BybitHttpClient(server.base_url)
        stream = BybitPublicWebSocket(
            f"{server.ws_url}/v5/public/linear", backoff_initial_s=0.05, backoff_max_s=0.2
        )
        metrics = DaemonMetrics()
        stream.on_frame_dropped = metrics.ws_frame_dropped
        sink = Collect()
        feed = MarketFeed(
            feed_config(SYMBOLS),
            stream,
            BybitRestClient(http),
            [*extra_sinks, sink],
            exchange_now_ms=http.now_ms,
            metrics=metrics,
        )
        stream.on_disconnect = feed.on_disconnect
        made.append((server, http, stream, feed))
        await http.sync_time()
        await stream.start()
        await feed.start()
        made_rig = Rig(server, feed, sink, metrics)
        await until(lambda: all(made_rig.book_is_true(s) for s in SYMBOLS), 5, "books loaded")
        return made_rig

    yield make
    for server, http, stream, feed in made:
        await feed.stop()
        await stream.close()
        await http.close()
        await server.stop()


def assert_rows_on_time(rows: list[RawSnapshotRow]) -> None:
    assert len(rows) >= 3 and all(b.ts - a.ts == 1000 for a, b in itertools.pairwise(rows)), [
        r.ts for r in rows
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "bad_level",
    [["63999.75", "-1"], ["63999.75", "1e400"], ["NaN", "1"]],
    ids=["size -1", "size inf", "price NaN"],
)
async def test_a_delta_with_an_impossible_level_is_refused_whole(
    rig: Callable[..., Awaitable[Rig]], bad_level: list[str]
) -> None:
    r = await rig()
    book = r.feed.builders[SYMBOL].book
    u = book.last_u
    assert u is not None
    r.inject(
        {
            "topic": f"orderbook.50.{SYMBOL}",
            "type": "delta",
            "ts": r.now(),
            "data": {"s": SYMBOL, "b": [[FAKE_BID, "7"], bad_level], "a": [], "u": u + 1, "seq": 0},
            "cts": r.now(),
        }
    )
    await until(
        lambda: r.counter("market_messages_invalid", topic="orderbook", reason="invalid_level") == 1,
        3,
        "refusal",
    )
    # The real delta that carries this `u` must still be applied: a new order makes the exchange send it.
    spec = r.server.venue.engine.instruments[SYMBOL]
    r.queue_order("Buy", spec.ticks_to_price(r.server.venue.engine.books[SYMBOL].best_bid() - 20))  # type: ignore[operator]
    await until(
        lambda: r.book_is_true() and len(r.truth()[0]) == 11, 5, "the local book equals the exchange's"
    )
    assert r.feed.stats.resyncs >= 1
    rows = await more_rows(r)
    assert_rows_on_time(rows)
    fake = float(FAKE_BID)
    assert not any(
        fake in row.bid_prices[: row.n_bid_levels] for row in rows
    )  # nothing of the message applied
    assert not rows[-1].book_reset and rows[-1].n_bid_levels == 11


@pytest.mark.slow
async def test_a_row_that_cannot_be_built_is_emitted_flagged_and_trades_stay_recorded(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Two finite trade values whose notional overflows: the row of that interval cannot be built. It used to
    raise on every later message of the symbol (rows, trades and klines lost until a reconnect)."""
    r = await rig()
    now = r.now()
    r.inject(
        {
            "topic": f"publicTrade.{SYMBOL}",
            "type": "snapshot",
            "ts": now,
            "data": [
                {"T": now, "s": SYMBOL, "S": "Buy", "v": "1e200", "p": "1e200", "i": "hostile", "BT": False}
            ],
        }
    )
    await until(lambda: r.counter("snapshot_rows_degraded", symbol=SYMBOL) == 1, 5, "the flagged row")
    await until(r.book_is_true, 5, "the book resynced")
    flagged = [row for row in r.rows() if row.book_reset and row.n_bid_levels == 0]
    assert len(flagged) >= 1 and all(row.buy_notional == 0.0 for row in flagged)
    # A real trade afterwards is recorded and counted in a row.
    spec = r.server.venue.engine.instruments[SYMBOL]
    r.queue_order("Buy", spec.ticks_to_price(r.server.venue.engine.books[SYMBOL].best_ask()))  # type: ignore[arg-type]
    await until(lambda: any(t.trade_id != "hostile" for t in r.sink.trades), 5, "the real trade")
    await until(lambda: any(row.n_buy_trades == 1 for row in r.rows()), 5, "a row counting the real trade")
    assert r.sink.trades[0].trade_id == "hostile"  # recorded too: it is a trade, just absurd
    rows = await more_rows(r)
    assert_rows_on_time(rows)
    assert not rows[-1].book_reset


@pytest.mark.slow
async def test_the_grace_timer_survives_any_error(rig: Callable[..., Awaitable[Rig]]) -> None:
    r = await rig()
    calls = {"n": 0}
    real_now = r.feed.exchange_now_ms

    def flaky_now() -> int:
        calls["n"] += 1
        if calls["n"] % 2:
            raise RuntimeError("clock broke")
        return real_now()

    def broken_on_timer(exchange_now_ms: int) -> list[RawSnapshotRow]:
        raise KeyError("nan")

    r.feed.exchange_now_ms = flaky_now
    r.feed.builders["BTCUSDT"].on_timer = broken_on_timer  # type: ignore[method-assign]
    before = len(r.rows("ETHUSDT"))
    await until(lambda: calls["n"] >= 6, 3, "timer ticks")
    assert r.feed._timer is not None and not r.feed._timer.done()
    assert r.counter("market_feed_timer_errors") >= 4  # the clock's errors and the builder's, each counted
    await until(lambda: len(r.rows("ETHUSDT")) >= before + 1, 3, "ETHUSDT rows after BTCUSDT's timer broke")


class _BrokenSink:
    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        raise RuntimeError("sink down")

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        raise RuntimeError("sink down")

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        raise RuntimeError("sink down")


@pytest.mark.slow
async def test_one_failing_sink_stops_neither_the_others_nor_the_feed(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig(extra_sinks=[_BrokenSink()])  # placed before the collector
    spec = r.server.venue.engine.instruments[SYMBOL]
    r.queue_order("Sell", spec.ticks_to_price(r.server.venue.engine.books[SYMBOL].best_bid()))  # type: ignore[arg-type]
    await until(lambda: len(r.sink.trades) == 1, 5, "the trade")
    assert_rows_on_time(await more_rows(r))
    assert r.counter("market_sink_errors", sink="_BrokenSink", kind="rows") >= 3
    assert r.counter("market_sink_errors", sink="_BrokenSink", kind="trades") == 1
