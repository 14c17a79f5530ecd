"""The daemon's market feed against the paper exchange: the local book equals the exchange's true book at
checkpoints, also with 1 % of deltas dropped and 1 % duplicated (every gap detected, resynchronised)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from exchange_sim.config import FaultConfig, SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.matching import OrderRequest
from exchange_sim.server.app import SimServer
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from testkit.configs import feed_config
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.market.feed import MarketFeed

SYMBOLS = ("BTCUSDT", "ETHUSDT")


class Collect:
    def __init__(self) -> None:
        self.rows: list[RawSnapshotRow] = []
        self.trades: list[PublicTrade] = []
        self.candles: list[Candle] = []

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        self.rows.extend(rows)

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        self.trades.extend(trades)

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        self.candles.extend(candles)


def _truth(server: SimServer, symbol: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    snap = server.venue.engine.books[symbol].snapshot(50)
    return [(float(p), float(q)) for p, q in snap.bids], [(float(p), float(q)) for p, q in snap.asks]


async def _checkpoint(server: SimServer, feed: MarketFeed, market: LadderMarket) -> None:
    """Pause the flow, then nudge each book with tiny orders until the local book equals the truth.

    A dropped *last* delta is invisible until the next one arrives (its `u` then skips), so each nudge
    is a new delta that either applies or reveals the gap and triggers a resync."""
    market.events_per_second = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    nudge = 0
    while True:
        await asyncio.sleep(0.3)
        if all(
            feed.builders[s].book.valid and feed.builders[s].book.top(50) == _truth(server, s)
            for s in SYMBOLS
        ):
            return
        assert loop.time() < deadline, {
            s: (feed.builders[s].book.valid, feed.builders[s].book.depth()) for s in SYMBOLS
        }
        nudge += 1
        for symbol in SYMBOLS:
            spec = server.venue.engine.instruments[symbol]
            bid = spec.ticks_to_price(server.venue.engine.books[symbol].best_bid() - 30 - nudge % 5)  # type: ignore[operator]
            server.venue.engine.submit("nudge", OrderRequest(symbol, "Buy", "Limit", spec.min_order_qty, bid))


@pytest.mark.slow
@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "drop-dup-1pct-and-disconnects"])
async def test_local_book_equals_true_book_at_checkpoints(faulty: bool) -> None:
    faults = FaultConfig(delta_drop_rate=0.01, delta_duplicate_rate=0.01) if faulty else FaultConfig()
    server = SimServer(
        SimConfig(port=0, symbols=SYMBOLS, faults=faults),
        lambda v: LadderMarket(v.engine, seed=11, events_per_second=300, trade_share=0.1),
    )
    await server.start()
    http = BybitHttpClient(server.base_url)
    stream = BybitPublicWebSocket(
        f"{server.ws_url}/v5/public/linear", backoff_initial_s=0.05, backoff_max_s=0.5
    )
    sink = Collect()
    feed = MarketFeed(
        feed_config(SYMBOLS), stream, BybitRestClient(http), [sink], exchange_now_ms=http.now_ms
    )
    stream.on_disconnect = feed.on_disconnect
    try:
        await stream.start()
        await feed.start()
        market = server.venue.market
        assert isinstance(market, LadderMarket)
        for period in range(3):  # active periods, each followed by a checkpoint
            market.events_per_second = 300
            await asyncio.sleep(1.5)
            if faulty and period == 1:  # the server drops the socket in the middle of the flow
                assert server.state.public.disconnect_all() == 1
            await asyncio.sleep(1.5)
            await _checkpoint(server, feed, market)
    finally:
        await feed.stop()
        await stream.close()
        await http.close()
        await server.stop()
    for symbol in SYMBOLS:  # rows kept coming, one per second, through resyncs
        ts = [r.ts for r in sink.rows if r.symbol == symbol]
        assert len(ts) >= 5 and all(b - a == 1000 for a, b in itertools.pairwise(ts))
    if faulty:
        assert feed.stats.resyncs > 0  # gaps were seen and repaired
        assert stream.reconnects > 0  # and the socket came back, resubscribed, with fresh snapshots
        assert any(r.book_reset for r in sink.rows[len(SYMBOLS) :])  # rows after a resync are marked
    else:
        assert feed.stats.resyncs == 0
        assert not any(r.book_reset for r in sink.rows[len(SYMBOLS) :])
