"""Public stream: subscribe (batched), order-book snapshot then deltas, trades, tickers, refusals."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from schemas.enums import OrderType, Side
from trading_daemon.exchange.messages import BybitWsOrderbook, BybitWsTicker, BybitWsTrades
from trading_daemon.exchange.parsing import parse_ws_orderbook_snapshot, parse_ws_trades
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket, BybitSubscriptionError, batches

from .conftest import Collector

Factory = Callable[..., BybitPublicWebSocket]


async def test_orderbook_snapshot_then_delta(public_ws: Factory, rest: BybitRestClient) -> None:
    books = Collector()
    client = public_ws()
    await client.start()
    topic = await client.subscribe_orderbook("BTCUSDT", books, depth=50)
    assert topic == "orderbook.50.BTCUSDT" and client.topics == [topic]

    snapshot_msg: BybitWsOrderbook = await books.wait(lambda m: m.type == "snapshot")
    snapshot = parse_ws_orderbook_snapshot(snapshot_msg)
    assert snapshot.symbol == "BTCUSDT" and len(snapshot.bids) == 10
    assert snapshot.bids[0].price == 63999.9 and snapshot.asks[0].price == 64000.1

    await rest.place_order(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.5"),
        price=Decimal("64000.00"),
    )
    delta: BybitWsOrderbook = await books.wait(lambda m: m.type == "delta")
    assert delta.data.u == snapshot_msg.data.u + 1
    assert ("64000.00", "0.500") in delta.data.b
    with pytest.raises(ValueError):
        parse_ws_orderbook_snapshot(delta)


async def test_trades_and_tickers(public_ws: Factory, rest: BybitRestClient) -> None:
    trades, tickers = Collector(), Collector()
    client = public_ws()
    await client.start()
    await client.subscribe_trades("BTCUSDT", trades)
    await client.subscribe_tickers("BTCUSDT", tickers)
    first: BybitWsTicker = await tickers.wait(lambda m: m.type == "snapshot")
    assert first.data.symbol == "BTCUSDT" and first.data.bid1Price is not None

    await rest.place_order(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.MARKET, qty=Decimal("0.01"))
    message: BybitWsTrades = await trades.wait(lambda m: bool(m.data))
    (trade,) = parse_ws_trades(message.data)
    assert trade.side is Side.SELL and trade.price == 63999.9 and trade.size == 0.01


async def test_subscribe_before_start_and_in_batches(public_ws: Factory) -> None:
    """Topics tracked before `start` are subscribed on connect, several requests of `subscribe_batch`."""
    received = Collector()
    client = public_ws(subscribe_batch=2)
    topics = [f"{kind}.BTCUSDT" for kind in ("publicTrade", "tickers")] + [
        f"orderbook.{d}.{s}" for d in (1, 50, 200) for s in ("BTCUSDT", "ETHUSDT")
    ]
    await client.subscribe(topics, received)
    await client.start()
    assert set(client.topics) == set(topics)
    for depth in (1, 50, 200):
        await received.wait(lambda m, d=depth: getattr(m, "topic", "") == f"orderbook.{d}.ETHUSDT")


async def test_refused_topic(public_ws: Factory) -> None:
    client = public_ws()
    await client.start()
    with pytest.raises(BybitSubscriptionError, match=r"orderbook\.30\.BTCUSDT"):
        await client.subscribe(["orderbook.30.BTCUSDT"], Collector())
    assert client.topics == []
    with pytest.raises(BybitSubscriptionError):
        await client.subscribe(["order"], Collector())  # a private topic on the public socket


class BrokenHandler(Collector):
    """Keeps every message it is given, then fails on it."""

    def __call__(self, message: Any) -> None:
        super().__call__(message)
        raise RuntimeError("handler bug")


async def test_handler_errors_do_not_stop_delivery(public_ws: Factory, rest: BybitRestClient) -> None:
    """A handler that raises is logged and keeps being called; the other topics and the socket go on."""
    seen, broken = Collector(), BrokenHandler()
    client = public_ws()
    await client.start()
    with capture_logs() as logs:
        await client.subscribe(["orderbook.50.BTCUSDT"], broken)
        await client.subscribe(["orderbook.50.ETHUSDT"], seen)
        await broken.wait(lambda m: m.type == "snapshot")  # the failing handler did run
        await rest.place_order(
            symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, qty=Decimal("0.5"),
            price=Decimal("64000.00"),
        )  # fmt: skip
        await broken.wait(lambda m: m.type == "delta")  # ...and was called again after it raised
        await seen.wait(lambda m: m.type == "snapshot")
        calls = len(broken.messages)
        failures = [e for e in logs if e["event"] == "bybit ws handler failed"]
    assert len(failures) == calls  # every failure logged, with its topic and traceback
    assert all(e["topic"] == "orderbook.50.BTCUSDT" and e["log_level"] == "error" for e in failures)
    assert client.connected


async def test_unsubscribe_and_resync(public_ws: Factory) -> None:
    books = Collector()
    client = public_ws()
    await client.start()
    await client.subscribe_orderbook("BTCUSDT", books)
    await books.wait(lambda m: m.type == "snapshot")
    await client.resync("orderbook.50.BTCUSDT")  # a u gap: ask the server for a fresh snapshot
    await books.wait(lambda m: m is not books.messages[0] and m.type == "snapshot")
    await client.unsubscribe(["orderbook.50.BTCUSDT"])
    assert client.topics == []


def test_batches_respect_count_and_length() -> None:
    assert batches(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert batches(["aaaa", "bbbb", "cc"], 10, max_chars=8) == [["aaaa", "bbbb"], ["cc"]]
    assert batches([], 5) == []
