"""Public WebSocket: ops and replies; orderbook snapshot/delta sequences that rebuild the true book;
publicTrade, kline (with confirm) and tickers."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import websockets

from exchange_sim.config import SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer


class LocalBook:
    """A client-side book kept exactly as docs/exchange_protocol.md §5.3 tells a client to."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, str] = {}
        self.asks: dict[Decimal, str] = {}
        self.u: int | None = None

    def apply(self, message: dict) -> None:
        data = message["data"]
        if message["type"] == "snapshot":
            self.bids = {Decimal(p): q for p, q in data["b"]}
            self.asks = {Decimal(p): q for p, q in data["a"]}
        else:
            assert self.u is not None and data["u"] == self.u + 1, (self.u, data["u"])
            assert data["b"] or data["a"], "empty delta"
            for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
                for p, q in levels:
                    if Decimal(q) == 0:
                        side.pop(Decimal(p), None)
                    else:
                        side[Decimal(p)] = q
        self.u = data["u"]
        if self.bids and self.asks:
            assert max(self.bids) < min(self.asks), "crossed book"

    def top(self, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return [[str(p), q] for p, q in bids], [[str(p), q] for p, q in asks]


async def test_ops_and_replies(public_ws) -> None:
    ws = await public_ws()
    await ws.send({"req_id": "sub-1", "op": "subscribe", "args": ["publicTrade.BTCUSDT", "tickers.ETHUSDT"]})
    ack = await ws.recv()
    assert (
        ack["success"] is True
        and ack["ret_msg"] == ""
        and ack["req_id"] == "sub-1"
        and ack["op"] == "subscribe"
    )
    assert isinstance(ack["conn_id"], str)
    snapshot = await ws.recv()
    assert snapshot["topic"] == "tickers.ETHUSDT" and snapshot["type"] == "snapshot"
    await ws.send({"op": "ping"})
    pong = await ws.recv_until(lambda m: m.get("op") == "ping")
    assert pong["ret_msg"] == "pong" and pong["req_id"] == "" and pong["success"] is True
    for bad in (
        "orderbook.30.BTCUSDT",
        "orderbook.500.BTCUSDT",
        "orderbook.50.btcusdt",
        "order",
        "kline.2.BTCUSDT",
    ):
        await ws.send({"req_id": "bad", "op": "subscribe", "args": [bad]})
        reply = await ws.recv_until(lambda m: m.get("req_id") == "bad")
        assert reply["success"] is False and reply["ret_msg"] == f"error:handler not found,topic:{bad}"
    await ws.send({"req_id": "dup", "op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
    reply = await ws.recv_until(lambda m: m.get("req_id") == "dup")
    assert reply["ret_msg"] == "error:already subscribed,topic:publicTrade.BTCUSDT"
    await ws.send({"req_id": "u1", "op": "unsubscribe", "args": ["publicTrade.BTCUSDT"]})
    reply = await ws.recv_until(lambda m: m.get("req_id") == "u1")
    assert reply["success"] is True and reply["op"] == "unsubscribe"
    await ws.send({"req_id": "x", "op": "dance"})
    assert (await ws.recv_until(lambda m: m.get("req_id") == "x"))["ret_msg"] == "error:invalid op"
    await ws.conn.send("not json")
    reply = await ws.recv_until(lambda m: "success" in m and m["success"] is False)
    assert reply["ret_msg"].startswith("Failed to decode incoming data")


async def test_deltas_rebuild_the_true_book() -> None:
    config = SimConfig(port=0, symbols=("BTCUSDT",))
    server = SimServer(
        config, lambda v: LadderMarket(v.engine, seed=7, events_per_second=400, trade_share=0.15)
    )
    async with server, aiohttp.ClientSession() as session:
        depths = (50, 200, 1000)
        conn = await websockets.connect(f"{server.ws_url}/v5/public/linear")
        await conn.send(json.dumps({"op": "subscribe", "args": [f"orderbook.{d}.BTCUSDT" for d in depths]}))
        books = {d: LocalBook() for d in depths}
        deltas = dict.fromkeys(depths, 0)

        async def consume(seconds: float) -> None:
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while (remaining := end - loop.time()) > 0:
                try:
                    message = json.loads(await asyncio.wait_for(conn.recv(), remaining))
                except TimeoutError:
                    return
                if "topic" not in message:
                    continue
                depth = int(message["topic"].split(".")[1])
                if books[depth].u is None:
                    assert message["type"] == "snapshot"  # the first message of a subscription
                deltas[depth] += message["type"] == "delta"
                books[depth].apply(message)
                assert isinstance(message["data"]["seq"], int) and isinstance(message["cts"], int)

        await consume(1.5)
        assert all(n > 5 for n in deltas.values()), deltas
        market = server.venue.market
        assert isinstance(market, LadderMarket)
        market.events_per_second = 0  # let the book settle, then compare with the truth
        book = server.venue.engine.books["BTCUSDT"]
        topics = [server.state.public.feed.topics[f"orderbook.{d}.BTCUSDT"] for d in depths]
        deadline = asyncio.get_running_loop().time() + 5
        while not all(t.seq == book.seq for t in topics):
            assert asyncio.get_running_loop().time() < deadline, "the feed never caught up with the book"
            await consume(0.05)
        await consume(0.3)
        for depth, local in books.items():
            async with session.get(
                f"{server.base_url}/sim/book", params={"symbol": "BTCUSDT", "depth": depth}
            ) as r:
                truth = await r.json()
            assert local.top(depth) == (truth["b"], truth["a"]), depth
        async with session.get(
            f"{server.base_url}/v5/market/orderbook",
            params={"category": "linear", "symbol": "BTCUSDT", "limit": 1000},
        ) as r:
            rest_book = (await r.json())["result"]
        assert rest_book["u"] == books[1000].u
        assert (rest_book["b"], rest_book["a"]) == books[1000].top(1000)
        await conn.close()


async def test_level1_is_snapshots_only_and_reset_restarts_u(public_ws, admin, market, order_request) -> None:
    ws = await public_ws()
    await ws.send({"op": "subscribe", "args": ["orderbook.1.BTCUSDT", "orderbook.50.BTCUSDT"]})
    await ws.recv()
    first = [await ws.recv(), await ws.recv()]
    assert {m["type"] for m in first} == {"snapshot"}
    market.queue("taker", order_request("BTCUSDT", "Buy", "Market", Decimal("0.010")))
    messages = await ws.drain(0.4)
    level1 = [m for m in messages if m["topic"] == "orderbook.1.BTCUSDT"]
    assert level1 and all(m["type"] == "snapshot" for m in level1)
    assert level1[-1]["data"]["a"] == [["64000.20", "0.020"]] and len(level1[-1]["data"]["b"]) == 1
    level50 = [m for m in messages if m["topic"] == "orderbook.50.BTCUSDT"]
    assert [m["type"] for m in level50] == ["delta"]
    assert level50[0]["data"]["a"] == [["64000.10", "0"]] and level50[0]["data"]["b"] == []
    await admin("POST", "/sim/book/reset", {"symbol": "BTCUSDT"})
    resets = [m for m in await ws.drain(0.3) if m["data"]["u"] == 1]
    assert {m["topic"] for m in resets} == {"orderbook.1.BTCUSDT", "orderbook.50.BTCUSDT"}
    assert all(m["type"] == "snapshot" for m in resets)


async def test_public_trades(public_ws, market, order_request) -> None:
    ws = await public_ws()
    await ws.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
    await ws.recv()
    market.queue("taker", order_request("BTCUSDT", "Sell", "Market", Decimal("0.015")))
    message = await ws.recv()
    assert message["topic"] == "publicTrade.BTCUSDT" and message["type"] == "snapshot"
    trades = message["data"]
    assert [(t["p"], t["v"], t["S"]) for t in trades] == [
        ("63999.90", "0.010", "Sell"),
        ("63999.80", "0.005", "Sell"),
    ]
    assert trades[0]["T"] <= trades[1]["T"] and trades[1]["L"] == "MinusTick" and trades[0]["BT"] is False
    assert all(isinstance(t["seq"], int) and len(t["i"]) == 36 for t in trades)


async def test_kline_updates_and_single_confirm(
    public_ws, market, order_request, admin, align_minute
) -> None:
    await align_minute()
    ws = await public_ws()
    await ws.send({"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
    await ws.recv()
    market.queue("taker", order_request("BTCUSDT", "Buy", "Market", Decimal("0.010")))
    update = await ws.recv(within=2.5)
    (candle,) = update["data"]
    assert update["topic"] == "kline.1.BTCUSDT" and candle["confirm"] is False
    assert candle["end"] == candle["start"] + 59_999 and candle["interval"] == "1"
    assert (candle["open"], candle["close"], candle["volume"]) == ("64000.10", "64000.10", "0.010")
    await admin("POST", "/sim/clock/advance", {"ms": 60_000})
    messages = await ws.drain(0.5)
    confirmed = [m["data"][0] for m in messages if m["data"][0]["confirm"]]
    assert len(confirmed) == 1 and confirmed[0]["start"] == candle["start"]
    assert confirmed[0]["volume"] == "0.010"


async def test_tickers_snapshot_then_changed_fields(public_ws, market, order_request) -> None:
    ws = await public_ws()
    await ws.send({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
    await ws.recv()
    snapshot = await ws.recv()
    assert snapshot["type"] == "snapshot" and snapshot["data"]["symbol"] == "BTCUSDT"
    assert snapshot["data"]["bid1Price"] == "63999.90" and isinstance(snapshot["cs"], int)
    market.queue("taker", order_request("BTCUSDT", "Buy", "Market", Decimal("0.010")))
    delta = await ws.recv_until(lambda m: m.get("type") == "delta" and "lastPrice" in m["data"])
    assert delta["data"]["symbol"] == "BTCUSDT" and delta["data"]["lastPrice"] == "64000.10"
    assert delta["data"]["ask1Price"] == "64000.20" and "fundingRate" not in delta["data"]
