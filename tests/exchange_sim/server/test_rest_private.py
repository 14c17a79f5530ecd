"""Private REST endpoints: order lifecycle, queries, positions, leverage, wallet, account, errors."""

from __future__ import annotations

from decimal import Decimal


def _limit(link: str, price: str = "63990.00", qty: str = "0.010", side: str = "Buy", **extra) -> dict:
    return {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": side,
        "orderType": "Limit",
        "qty": qty,
        "price": price,
        "timeInForce": "GTC",
        "positionIdx": 0,
        "orderLinkId": link,
        **extra,
    }


async def test_create_amend_cancel_and_queries(rest) -> None:
    created = await rest.ok("POST", "/v5/order/create", _limit("life-1"))
    assert set(created) == {"orderId", "orderLinkId"} and created["orderLinkId"] == "life-1"
    assert len(created["orderId"]) == 36

    live = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    (order,) = live["list"]
    assert order["orderStatus"] == "New" and order["price"] == "63990.00" and order["qty"] == "0.010"
    assert order["leavesQty"] == "0.010" and order["cumExecQty"] == "0.000" and order["avgPrice"] == "0"
    assert order["cancelType"] == "UNKNOWN" and order["rejectReason"] == "EC_NoError"
    assert order["cumFeeDetail"] == {} and order["positionIdx"] == 0 and order["reduceOnly"] is False
    assert live["nextPageCursor"] == ""

    amended = await rest.ok(
        "POST",
        "/v5/order/amend",
        {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "life-1", "price": "63980.00"},
    )
    assert amended == created
    by_link = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "life-1"})
    assert by_link["list"][0]["price"] == "63980.00"

    cancelled = await rest.ok(
        "POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": created["orderId"]}
    )
    assert cancelled == created
    assert (await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"}))[
        "list"
    ] == []
    closed = await rest.ok(
        "GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT", "openOnly": 1}
    )
    assert (
        closed["list"][0]["orderStatus"] == "Cancelled" and closed["list"][0]["cancelType"] == "CancelByUser"
    )
    assert closed["list"][0]["leavesQty"] == "0.000" and closed["list"][0]["leavesValue"] == "0"
    history = await rest.ok("GET", "/v5/order/history", {"category": "linear", "orderLinkId": "life-1"})
    assert [o["orderStatus"] for o in history["list"]] == ["Cancelled"]

    # Cancelling again, or amending: the order is terminal → 110001.
    _, _, body = await rest.post(
        "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "life-1"}
    )
    assert body["retCode"] == 110001 and body["result"] == {}
    _, _, body = await rest.post(
        "/v5/order/amend",
        {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "life-1", "qty": "0.020"},
    )
    assert body["retCode"] == 110001
    _, _, body = await rest.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT"})
    assert body["retCode"] == 10001 and "OrderId or orderLinkId is required" in body["retMsg"]
    # orderLinkId is single-use forever, even after the order ended.
    _, _, body = await rest.post("/v5/order/create", _limit("life-1"))
    assert body["retCode"] == 110072 and body["retMsg"] == "OrderLinkedID is duplicate"
    unknown = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "never-used"})
    assert unknown["list"] == []


async def test_market_fill_position_executions_wallet(rest) -> None:
    await rest.ok(
        "POST",
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Market",
            "qty": "0.015",
            "orderLinkId": "mkt-1",
        },
    )
    order = (await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "mkt-1"}))[
        "list"
    ][0]
    assert (
        order["orderStatus"] == "Filled" and order["timeInForce"] == "IOC" and order["cumExecQty"] == "0.015"
    )
    average = (Decimal("640.001") + Decimal("320.001")) / Decimal("0.015")
    assert Decimal(order["avgPrice"]) == average.quantize(Decimal("0.000001"))  # priceScale + 4 decimals
    assert order["leavesQty"] == "0.000"
    fills = await rest.ok("GET", "/v5/execution/list", {"category": "linear", "symbol": "BTCUSDT"})
    assert [f["execQty"] for f in fills["list"]] == ["0.005", "0.010"]  # newest first
    fill = fills["list"][1]
    assert fill["execPrice"] == "64000.10" and fill["isMaker"] is False and fill["feeRate"] == "0.00055"
    assert Decimal(fill["execFee"]) == Decimal("640.001") * Decimal("0.00055")
    assert fill["execType"] == "Trade" and fill["orderLinkId"] == "mkt-1" and isinstance(fill["seq"], int)
    by_order = await rest.ok(
        "GET", "/v5/execution/list", {"category": "linear", "orderLinkId": "mkt-1", "limit": 1}
    )
    assert len(by_order["list"]) == 1 and by_order["nextPageCursor"]

    (pos,) = (await rest.ok("GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}))["list"]
    assert (
        pos["side"] == "Buy"
        and pos["size"] == "0.015"
        and pos["positionIdx"] == 0
        and pos["leverage"] == "10"
    )
    assert Decimal(pos["positionValue"]) == Decimal("960.002") and pos["markPrice"] == "64000.00"
    flat = (await rest.ok("GET", "/v5/position/list", {"category": "linear", "symbol": "ETHUSDT"}))["list"][0]
    assert flat["side"] == "" and flat["size"] == "0.00"
    nonzero = await rest.ok("GET", "/v5/position/list", {"category": "linear", "settleCoin": "USDT"})
    assert [p["symbol"] for p in nonzero["list"]] == ["BTCUSDT"]

    wallet = (await rest.ok("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"}))["list"][0]
    fees = Decimal("960.002") * Decimal("0.00055")
    assert Decimal(wallet["totalWalletBalance"]) == Decimal(100_000) - fees
    assert wallet["accountType"] == "UNIFIED" and wallet["coin"][0]["coin"] == "USDT"
    assert Decimal(wallet["coin"][0]["totalPositionIM"]) > 0

    # Close with a reduce-only market order; a second one has nothing left to reduce → 110017.
    close = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Sell",
        "orderType": "Market",
        "qty": "0.015",
        "reduceOnly": True,
    }
    await rest.ok("POST", "/v5/order/create", close)
    (pos,) = (await rest.ok("GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}))["list"]
    assert pos["size"] == "0.000" and pos["side"] == ""
    _, _, body = await rest.post("/v5/order/create", close)
    assert body["retCode"] == 110017


async def test_create_validation_codes(rest, admin) -> None:
    cases = [
        ({"symbol": "NOPEUSDT"}, 10001, "symbol"),
        ({"side": "buy"}, 10001, "side"),
        ({"orderType": "Stop"}, 10001, "orderType"),
        ({"qty": "abc"}, 10001, "qty"),
        ({"qty": "0.0001"}, 10001, "minimum limit"),
        ({"qty": "0.0105"}, 10001, "qtyStep"),
        ({"price": "63990.05"}, 10001, "tickSize"),
        ({"positionIdx": 1}, 10001, "position idx not match position mode"),
        ({"orderLinkId": "x" * 37}, 10001, "orderLinkId"),
        ({"timeInForce": "GTD"}, 10001, "timeInForce"),
        ({"triggerPrice": "65000"}, 10001, "triggerPrice"),
        ({"qty": "0.001", "price": "1000.00"}, 110094, "notional"),
        ({"price": "70000.00"}, 110003, "permissible range"),
        ({"qty": "900.000", "price": "63000.00"}, 110007, "ab not enough"),
        ({"reduceOnly": True}, 110017, "Reduce-only"),
    ]
    for i, (change, code, text) in enumerate(cases):
        await admin("POST", "/sim/ratelimit/reset")  # more creates than the 10/s limit allows
        _, _, body = await rest.post("/v5/order/create", {**_limit(f"bad-{i}"), **change})
        assert body["retCode"] == code, (change, body)
        assert text in body["retMsg"], (change, body)
        assert body["result"] == {}
    _, _, body = await rest.post(
        "/v5/order/create", {k: v for k, v in _limit("x").items() if k != "category"}
    )
    assert body["retCode"] == 10001 and "category" in body["retMsg"]


async def test_post_only_and_cancel_all(rest) -> None:
    await rest.ok("POST", "/v5/order/create", _limit("po-1", price="64000.10", timeInForce="PostOnly"))
    po = (await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "po-1"}))["list"][
        0
    ]
    assert po["orderStatus"] == "Cancelled" and po["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    for i in range(3):
        await rest.ok("POST", "/v5/order/create", _limit(f"ca-{i}", price=f"6398{i}.00"))
    result = await rest.ok("POST", "/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
    assert result["success"] == "1" and sorted(o["orderLinkId"] for o in result["list"]) == [
        "ca-0",
        "ca-1",
        "ca-2",
    ]
    again = await rest.ok("POST", "/v5/order/cancel-all", {"category": "linear", "settleCoin": "USDT"})
    assert again["list"] == []
    _, _, body = await rest.post("/v5/order/cancel-all", {"category": "linear"})
    assert body["retCode"] == 10001 and "symbol, baseCoin or settleCoin" in body["retMsg"]


async def test_set_leverage(rest) -> None:
    body = {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "5", "sellLeverage": "5"}
    assert await rest.ok("POST", "/v5/position/set-leverage", body) == {}
    _, _, reply = await rest.post("/v5/position/set-leverage", body)
    assert reply["retCode"] == 110043 and reply["retMsg"] == "Set leverage not modified"
    _, _, reply = await rest.post("/v5/position/set-leverage", {**body, "sellLeverage": "6"})
    assert reply["retCode"] == 10001 and "sellLeverage" in reply["retMsg"]
    _, _, reply = await rest.post(
        "/v5/position/set-leverage", {**body, "buyLeverage": "500", "sellLeverage": "500"}
    )
    assert reply["retCode"] == 10001 and "buyLeverage" in reply["retMsg"]
    (pos,) = (await rest.ok("GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}))["list"]
    assert pos["leverage"] == "5"


async def test_account_endpoints(rest) -> None:
    fees = await rest.ok("GET", "/v5/account/fee-rate", {"category": "linear", "symbol": "BTCUSDT"})
    assert fees["list"] == [{"symbol": "BTCUSDT", "takerFeeRate": "0.00055", "makerFeeRate": "0.0002"}]
    key = await rest.ok("GET", "/v5/user/query-api", {})
    assert key["apiKey"] == "XkTestApiKey0001" and key["readOnly"] == 0 and key["uta"] == 1
    info = await rest.ok("GET", "/v5/account/info", {})
    assert info["marginMode"] == "REGULAR_MARGIN" and info["unifiedMarginStatus"] in (3, 4, 5, 6)
    _, _, body = await rest.get("/v5/account/wallet-balance", {"accountType": "CONTRACT"})
    assert body["retCode"] == 10001 and "accountType" in body["retMsg"]
    coins = await rest.ok("GET", "/v5/asset/coin/query-info", {})
    assert [c["coin"] for c in coins["rows"]] == ["USDT"]
    only_btc = await rest.ok("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "BTC"})
    assert only_btc["list"][0]["coin"] == []


async def test_history_pagination_and_window(rest) -> None:
    for i in range(3):
        await rest.ok("POST", "/v5/order/create", _limit(f"h-{i}", price=f"6397{i}.00"))
        await rest.ok(
            "POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": f"h-{i}"}
        )
    first = await rest.ok("GET", "/v5/order/history", {"category": "linear", "limit": 2})
    assert len(first["list"]) == 2 and first["nextPageCursor"]
    second = await rest.ok(
        "GET", "/v5/order/history", {"category": "linear", "limit": 2, "cursor": first["nextPageCursor"]}
    )
    assert len(second["list"]) == 1 and second["nextPageCursor"] == ""
    links = [o["orderLinkId"] for o in first["list"] + second["list"]]
    assert sorted(links) == ["h-0", "h-1", "h-2"]
    _, _, body = await rest.get(
        "/v5/order/history", {"category": "linear", "startTime": 0, "endTime": 10 * 86_400_000}
    )
    assert body["retCode"] == 10001 and "7 days" in body["retMsg"]
    _, _, body = await rest.get("/v5/order/history", {"category": "linear", "cursor": "garbage"})
    assert body["retCode"] == 10001 and "cursor" in body["retMsg"]
