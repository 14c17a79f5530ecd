"""A reconnect of the public socket against the paper exchange: the books are marked stale when the socket
drops, before the resubscription, so the fresh snapshots that follow it are the ones applied and no resync
is needed afterwards (it used to be: the reconnect hook ran after the resubscription and discarded them)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from exchange_sim.config import SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer
from testkit.configs import feed_config
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.market.feed import MarketFeed

from .test_feed_checkpoints import Collect

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DROPS = 3


@pytest.mark.slow
async def test_reconnect_applies_the_fresh_snapshots_without_resync() -> None:
    server = SimServer(
        SimConfig(port=0, symbols=SYMBOLS),
        lambda v: LadderMarket(v.engine, seed=11, events_per_second=100, trade_share=0.1),
    )
    await server.start()
    http = BybitHttpClient(server.base_url)
    stream = BybitPublicWebSocket(
        f"{server.ws_url}/v5/public/linear", backoff_initial_s=0.05, backoff_max_s=0.2
    )
    sink = Collect()
    feed = MarketFeed(
        feed_config(SYMBOLS), stream, BybitRestClient(http), [sink], exchange_now_ms=http.now_ms
    )
    stream.on_disconnect = feed.on_disconnect
    try:
        await stream.start()
        await feed.start()
        await asyncio.sleep(1.5)
        for _ in range(DROPS):
            assert server.state.public.disconnect_all() == 1
            await asyncio.sleep(1.5)
        await asyncio.sleep(1.0)  # rows after the last fresh snapshot
        books_valid = [feed.builders[s].book.valid for s in SYMBOLS]
    finally:
        await feed.stop()
        await stream.close()
        await http.close()
        await server.stop()
    assert stream.reconnects == DROPS and all(books_valid)
    assert feed.stats.resyncs == 0  # every reconnect's snapshot was applied, none discarded
    for symbol in SYMBOLS:
        rows = [r for r in sink.rows if r.symbol == symbol]
        assert all(b.ts - a.ts == 1000 for a, b in itertools.pairwise(rows))
        # The first row, then one run of book_reset rows per drop at most (none if the drop and the fresh
        # snapshot fell between the same two row boundaries); the book stays valid between drops.
        runs = [key for key, _ in itertools.groupby(r.book_reset for r in rows) if key]
        assert rows[0].book_reset and 1 <= len(runs) <= 1 + DROPS, [r.book_reset for r in rows]
        assert not rows[-1].book_reset and rows[-1].n_bid_levels > 0
