"""Public market endpoints against the paper exchange: each reply parsed into its record."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange_sim.server.app import SimServer
from schemas.enums import OrderType, Side
from schemas.market import BookSnapshot, Candle
from trading_daemon.exchange.rest import BybitRestClient

from .conftest import Admin


async def test_server_time_and_offset(rest: BybitRestClient) -> None:
    server_ms = await rest.get_server_time()
    assert server_ms > 1_700_000_000_000
    offset = await rest.sync_time()
    assert abs(offset) < 1_000  # the paper exchange runs on the wall clock at speed 1
    assert rest.http.time_offset_ms == offset


async def test_instruments(rest: BybitRestClient) -> None:
    all_instruments = await rest.get_instruments()
    assert {i.symbol for i in all_instruments} == {"BTCUSDT", "ETHUSDT"}
    (btc,) = await rest.get_instruments("BTCUSDT")
    assert btc.tick_size == Decimal("0.10")
    assert btc.qty_step == Decimal("0.001")
    assert btc.min_order_qty == Decimal("0.001")
    assert btc.contract_type == "LinearPerpetual"
    assert btc.settle_coin == "USDT"
    assert btc.max_leverage >= 10


async def test_orderbook(rest: BybitRestClient) -> None:
    book = await rest.get_orderbook("BTCUSDT", limit=5)
    assert isinstance(book, BookSnapshot)
    assert len(book.bids) == len(book.asks) == 5
    assert book.bids[0].price == 63999.9 and book.asks[0].price == 64000.1
    assert book.bids[0].price > book.bids[1].price
    assert book.update_id > 0 and book.seq > 0


async def test_tickers(rest: BybitRestClient) -> None:
    (ticker,) = await rest.get_tickers("BTCUSDT")
    assert ticker.symbol == "BTCUSDT"
    assert ticker.bid_price == Decimal("63999.90") and ticker.ask_price == Decimal("64000.10")
    assert ticker.mark_price == Decimal("64000")
    assert {t.symbol for t in await rest.get_tickers()} == {"BTCUSDT", "ETHUSDT"}


async def test_recent_trades_oldest_first(rest: BybitRestClient) -> None:
    for _ in range(2):
        await rest.place_order(
            symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal("0.01")
        )
    trades = await rest.get_recent_trades("BTCUSDT")
    assert len(trades) >= 2
    assert [t.ts for t in trades] == sorted(t.ts for t in trades)
    assert all(t.side is Side.BUY and t.price >= 64000.1 for t in trades)


async def test_klines_oldest_first(rest: BybitRestClient, admin: Admin, sim: SimServer) -> None:
    await rest.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal("0.01"))
    for _ in range(3):
        await admin("POST", "/sim/clock/advance", {"ms": 60_000})
    candles = await rest.get_klines("BTCUSDT", "1", limit=10)
    assert len(candles) >= 3
    assert all(isinstance(c, Candle) and c.interval_ms == 60_000 for c in candles)
    starts = [c.start_ms for c in candles]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(c.confirmed for c in candles[:-1])
    assert any(c.volume > 0 for c in candles)


async def test_a_result_of_the_wrong_shape_is_a_fatal_protocol_error() -> None:
    """A good envelope (retCode 0) whose `result` is not the documented shape names the shape and is
    fatal (the venue's own answer, not a bad moment), not a msgspec error the policy would read as a bug."""
    from aiohttp import web

    from trading_daemon.errors import Kind, classify
    from trading_daemon.exchange.errors import BybitProtocolError

    from .conftest import make_http

    async def klines(request: web.Request) -> web.Response:
        result = {"symbol": "BTCUSDT", "category": "linear", "list": "not a list"}
        return web.json_response({"retCode": 0, "retMsg": "OK", "result": result, "time": 1_767_225_600_000})

    app = web.Application()
    app.router.add_get("/v5/market/kline", klines)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with make_http(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(BybitProtocolError, match="shape of BybitKlineResult") as caught:
                await BybitRestClient(http).get_klines("BTCUSDT", "1", limit=5)
        assert classify(caught.value).kind is Kind.FATAL
    finally:
        await runner.cleanup()
