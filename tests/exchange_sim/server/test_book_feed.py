"""Book topics nobody subscribes to are not diffed at their interval, yet read consistently: a REST read
or a subscription brings them up to date, and the deltas that follow continue from there."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import websockets

from exchange_sim.config import SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer
from tests.exchange_sim.server.test_ws_public import LocalBook


async def test_idle_topic_is_brought_up_to_date_when_read_and_continues_with_deltas() -> None:
    server = SimServer(
        SimConfig(port=0, symbols=("BTCUSDT",)),
        lambda v: LadderMarket(v.engine, seed=7, events_per_second=400, trade_share=0.15),
    )
    async with server, aiohttp.ClientSession() as session:
        market = server.venue.market
        assert isinstance(market, LadderMarket)
        book = server.venue.engine.books["BTCUSDT"]
        topics = server.state.public.feed.topics
        await asyncio.sleep(0.5)  # the book changes while nobody listens
        market.events_per_second = 0
        await asyncio.sleep(0.1)
        for depth in (50, 200, 1000):
            state = topics[f"orderbook.{depth}.BTCUSDT"]
            assert state.idle and state.u == 1 and state.seq != book.seq  # never diffed since start

        async def truth(depth: int) -> tuple[list[list[str]], list[list[str]]]:
            params = {"symbol": "BTCUSDT", "depth": str(depth)}
            async with session.get(f"{server.base_url}/sim/book", params=params) as r:
                body = await r.json()
            return body["b"], body["a"]

        params = {"category": "linear", "symbol": "BTCUSDT", "limit": "1000"}
        async with session.get(f"{server.base_url}/v5/market/orderbook", params=params) as r:
            rest = (await r.json())["result"]
        assert (rest["b"], rest["a"]) == await truth(1000) and rest["u"] == 2  # refreshed once on read

        conn = await websockets.connect(f"{server.ws_url}/v5/public/linear")
        await conn.send(json.dumps({"op": "subscribe", "args": ["orderbook.200.BTCUSDT"]}))
        assert json.loads(await conn.recv())["success"]
        local = LocalBook()
        snapshot = json.loads(await conn.recv())
        assert snapshot["type"] == "snapshot" and snapshot["data"]["u"] == 2
        local.apply(snapshot)
        assert local.top(200) == await truth(200)

        market.events_per_second = 400  # deltas continue from the refreshed state, u + 1 each
        deltas = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.5
        while loop.time() < end:
            message = json.loads(await asyncio.wait_for(conn.recv(), 2))
            local.apply(message)  # asserts u = previous u + 1
            deltas += 1
        market.events_per_second = 0
        state = topics["orderbook.200.BTCUSDT"]
        while state.seq != book.seq:
            local.apply(json.loads(await asyncio.wait_for(conn.recv(), 2)))
        while True:  # drain what is in flight
            try:
                local.apply(json.loads(await asyncio.wait_for(conn.recv(), 0.2)))
            except TimeoutError:
                break
        assert deltas > 5 and not state.idle
        assert local.top(200) == await truth(200)
        await conn.close()
