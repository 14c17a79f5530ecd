"""Public market REST endpoints: envelope, field names, string numbers, ordering, parameter errors."""

from __future__ import annotations

import time
from decimal import Decimal


def _assert_envelope(body: dict) -> None:
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert isinstance(body["time"], int)
    assert body["retExtInfo"] == {}


async def test_time(rest) -> None:
    status, _, body = await rest.get("/v5/market/time", signed=False)
    assert status == 200
    _assert_envelope(body)
    assert body["retCode"] == 0 and body["retMsg"] == "OK"
    seconds = int(body["result"]["timeSecond"])
    assert abs(seconds - time.time()) < 5
    assert int(body["result"]["timeNano"]) // 1_000_000_000 == seconds


async def test_instruments_info(rest) -> None:
    result = await rest.ok("GET", "/v5/market/instruments-info", {"category": "linear"})
    assert result["category"] == "linear" and result["nextPageCursor"] == ""
    btc = next(i for i in result["list"] if i["symbol"] == "BTCUSDT")
    assert btc["contractType"] == "LinearPerpetual" and btc["status"] == "Trading"
    assert btc["priceFilter"]["tickSize"] == "0.10" and btc["priceScale"] == "2"
    assert btc["lotSizeFilter"]["qtyStep"] == "0.001" and btc["lotSizeFilter"]["minOrderQty"] == "0.001"
    assert btc["lotSizeFilter"]["minNotionalValue"] == "5" and btc["fundingInterval"] == 480
    page = await rest.ok("GET", "/v5/market/instruments-info", {"category": "linear", "limit": 2})
    assert len(page["list"]) == 2 and page["nextPageCursor"]
    rest_page = await rest.ok(
        "GET",
        "/v5/market/instruments-info",
        {"category": "linear", "limit": 2, "cursor": page["nextPageCursor"]},
    )
    assert len(rest_page["list"]) == 1 and rest_page["nextPageCursor"] == ""
    spot = await rest.ok("GET", "/v5/market/instruments-info", {"category": "spot"})
    assert spot["list"] == []
    _, _, body = await rest.get("/v5/market/instruments-info", {"category": "futures"}, signed=False)
    assert body["retCode"] == 10001 and "category" in body["retMsg"] and body["result"] == {}


async def test_orderbook(rest, published) -> None:
    await published()
    result = await rest.ok(
        "GET", "/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT", "limit": 5}
    )
    assert set(result) == {"s", "b", "a", "ts", "u", "seq", "cts"}
    assert result["s"] == "BTCUSDT" and len(result["b"]) == 5 and len(result["a"]) == 5
    bids = [Decimal(p) for p, _ in result["b"]]
    asks = [Decimal(p) for p, _ in result["a"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert result["b"][0] == ["63999.90", "0.010"]
    assert isinstance(result["u"], int) and isinstance(result["seq"], int)
    _, _, body = await rest.get(
        "/v5/market/orderbook", {"category": "linear", "symbol": "btcusdt"}, signed=False
    )
    assert body["retCode"] == 10001 and "symbol" in body["retMsg"]
    _, _, body = await rest.get("/v5/market/orderbook", {"category": "linear"}, signed=False)
    assert body["retCode"] == 10001 and "symbol is required" in body["retMsg"]
    _, _, body = await rest.get(
        "/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT", "limit": 5000}, signed=False
    )
    assert body["retCode"] == 10001 and "limit" in body["retMsg"]


async def test_kline_recent_trade_and_tickers_after_trades(
    rest, sim, market, order_request, until, admin, align_minute
) -> None:
    await align_minute()
    market.queue("taker", order_request("BTCUSDT", "Buy", "Market", Decimal("0.015")))
    await until(lambda: len(sim.venue.recent_trades["BTCUSDT"]) == 2)
    trades = await rest.ok("GET", "/v5/market/recent-trade", {"category": "linear", "symbol": "BTCUSDT"})
    assert [t["price"] for t in trades["list"]] == ["64000.20", "64000.10"]  # newest first
    first = trades["list"][1]
    assert first["size"] == "0.010" and first["side"] == "Buy" and first["isBlockTrade"] is False
    assert isinstance(first["time"], str) and isinstance(first["seq"], str)
    klines = await rest.ok(
        "GET", "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "1"}
    )
    assert klines["symbol"] == "BTCUSDT" and len(klines["list"]) == 1
    start, o, h, low, c, volume, turnover = klines["list"][0]
    assert (o, h, low, c, volume) == ("64000.10", "64000.20", "64000.10", "64000.20", "0.015")
    assert Decimal(turnover) == Decimal("64000.10") * Decimal("0.010") + Decimal("64000.20") * Decimal(
        "0.005"
    )
    assert int(start) % 60_000 == 0
    # Two minutes later: the candle closed, an empty one followed, the running one comes first.
    await admin("POST", "/sim/clock/advance", {"ms": 120_000})
    klines = await rest.ok(
        "GET", "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "1"}
    )
    rows = klines["list"]
    assert len(rows) == 3 and [int(r[0]) for r in rows] == [
        int(start) + 120_000,
        int(start) + 60_000,
        int(start),
    ]
    assert rows[1][1:] == ["64000.20", "64000.20", "64000.20", "64000.20", "0.000", "0"]
    limited = await rest.ok(
        "GET",
        "/v5/market/kline",
        {"category": "linear", "symbol": "BTCUSDT", "interval": "1", "limit": 1, "end": int(start) + 60_000},
    )
    assert [r[0] for r in limited["list"]] == [str(int(start) + 60_000)]
    hourly = await rest.ok("GET", "/v5/market/kline", {"symbol": "BTCUSDT", "interval": "60"})
    hour_start = str(int(start) - int(start) % 3_600_000)
    assert [r[5] for r in hourly["list"] if r[0] == hour_start] == ["0.015"]
    _, _, body = await rest.get("/v5/market/kline", {"symbol": "BTCUSDT", "interval": "2"}, signed=False)
    assert body["retCode"] == 10001 and "interval" in body["retMsg"]

    tickers = await rest.ok("GET", "/v5/market/tickers", {"category": "linear", "symbol": "BTCUSDT"})
    (ticker,) = tickers["list"]
    assert ticker["lastPrice"] == "64000.20" and ticker["volume24h"] == "0.015"
    assert ticker["bid1Price"] == "63999.90" and (ticker["ask1Price"], ticker["ask1Size"]) == (
        "64000.20",
        "0.015",
    )
    assert ticker["markPrice"] == "64000.00" and ticker["fundingRate"] == "0.0001"
    assert int(ticker["nextFundingTime"]) % (8 * 3_600_000) == 0
    assert all(isinstance(v, str) for v in ticker.values())
    everything = await rest.ok("GET", "/v5/market/tickers", {"category": "linear"})
    assert [t["symbol"] for t in everything["list"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
