"""The paper exchange serves a kline history from its start (docs/exchange_sim_market.md §13), and live candles follow it."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import aiohttp

from exchange_sim.config import SimConfig
from exchange_sim.market import MarketConfig, build_market
from exchange_sim.server.app import SimServer

START_MS = 1_767_225_630_000  # half a minute into a minute: the test ends before the next one


async def _klines(
    session: aiohttp.ClientSession, server: SimServer, symbol: str
) -> tuple[int, list[list[str]]]:
    params = {"category": "linear", "symbol": symbol, "interval": "1", "limit": "1000"}
    async with session.get(f"{server.base_url}/v5/market/kline", params=params) as resp:
        body: dict[str, Any] = await resp.json()
    assert body["retCode"] == 0, body
    return body["time"], body["result"]["list"]


async def test_kline_endpoint_returns_the_history_right_after_start() -> None:
    server = SimServer(
        SimConfig(port=0, start_ms=START_MS, symbols=("BTCUSDT", "SOLUSDT")),
        lambda venue: build_market(venue.engine, list(venue.instruments), seed=9),
    )
    async with server, aiohttp.ClientSession() as session:
        for symbol in ("BTCUSDT", "SOLUSDT"):
            now, rows = await _klines(session, server, symbol)
            running, *closed = rows  # newest first: the live minute, then the history
            assert int(running[0]) == now - now % 60_000 == START_MS - 30_000
            assert len(closed) == 999  # the page holds 1000 rows, the running candle first
            starts = [int(r[0]) for r in closed]
            assert starts[0] == int(running[0]) - 60_000  # ends at the last closed minute
            assert all(a - b == 60_000 for a, b in itertools.pairwise(starts))
            for _, o, h, low, c, volume, turnover in closed:
                o_, h_, l_, c_, v_, t_ = map(Decimal, (o, h, low, c, volume, turnover))
                assert l_ <= min(o_, c_) <= max(o_, c_) <= h_ and v_ > 0
                assert l_ * v_ <= t_ <= h_ * v_ + Decimal("0.0001")  # turnover ≈ price·volume
            # The first live candle follows on: it opened at the last close, the live book's start price.
            start_price = MarketConfig().symbol(symbol).start_price
            assert running[1] == closed[0][4] and float(running[1]) == start_price
        # A minute later the live candle has closed onto the history, with the trades of its minute.
        async with session.post(f"{server.base_url}/sim/clock/advance", json={"ms": 60_000}) as resp:
            assert resp.status == 200
        _, rows = await _klines(session, server, "BTCUSDT")
        live = rows[1]
        assert int(live[0]) == START_MS - 30_000 and int(rows[2][0]) == int(live[0]) - 60_000
        assert live[1] == rows[2][4] and Decimal(live[5]) > 0
        assert Decimal(live[3]) <= Decimal(live[1]) <= Decimal(live[2])
