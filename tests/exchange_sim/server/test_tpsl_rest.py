"""Conditional orders and TP/SL over the wire: REST create/amend/cancel, trading-stop, order filters, and
the private stream's order/execution/position messages as the orders wait, fire and go."""

from __future__ import annotations

from decimal import Decimal

LINEAR = {"category": "linear", "symbol": "BTCUSDT"}
OTHER = "XkTestApiKey0002"


async def _orders(ws, order_id: str, until_status: str) -> list[dict]:
    """The ``order`` items of ``order_id`` up to the one with ``until_status``."""
    seen: list[dict] = []
    while not seen or seen[-1]["orderStatus"] != until_status:
        message = await ws.recv_until(lambda m: m.get("topic") == "order")
        seen += [o for o in message["data"] if o["orderId"] == order_id]
    return seen


async def test_conditional_order_lifecycle(rest, private_ws, market, order_request, until) -> None:
    ws = await private_ws()
    created = await rest.ok(
        "POST",
        "/v5/order/create",
        {
            **LINEAR,
            "side": "Sell",
            "orderType": "Market",
            "qty": "0.010",
            "triggerPrice": "63999.80",
            "triggerDirection": 2,
            "triggerBy": "LastPrice",
            "orderLinkId": "stop-flow",
        },
    )
    (waiting,) = await _orders(ws, created["orderId"], "Untriggered")
    assert (waiting["stopOrderType"], waiting["triggerPrice"], waiting["triggerDirection"]) == (
        "Stop",
        "63999.80",
        2,
    )
    assert waiting["createType"] == "CreateByStopOrder" and waiting["triggerBy"] == "LastPrice"
    stops = await rest.ok("GET", "/v5/order/realtime", {**LINEAR, "orderFilter": "StopOrder"})
    assert [o["orderLinkId"] for o in stops["list"]] == ["stop-flow"]
    assert (await rest.ok("GET", "/v5/order/realtime", {**LINEAR, "orderFilter": "Order"}))["list"] == []
    # Another account sells through the bids: the last price falls to 63999.60 and the stop fires.
    market.queue(OTHER, order_request("BTCUSDT", "Sell", "Market", Decimal("0.100")))
    statuses = [o["orderStatus"] for o in await _orders(ws, created["orderId"], "Filled")]
    assert statuses == ["Triggered", "Filled"]
    fills = await rest.ok("GET", "/v5/execution/list", {**LINEAR, "orderLinkId": "stop-flow"})
    assert fills["list"] and {(f["stopOrderType"], f["createType"]) for f in fills["list"]} == {
        ("Stop", "CreateByStopOrder")
    }
    history = await rest.ok("GET", "/v5/order/history", {**LINEAR, "orderFilter": "StopOrder"})
    assert [o["orderStatus"] for o in history["list"]] == ["Filled"]


async def test_conditional_refusals_and_deactivation(rest, private_ws, admin) -> None:
    await admin("POST", "/sim/mark", {"symbol": "BTCUSDT", "price": "64000"})
    _, _, body = await rest.post(
        "/v5/order/create",
        {**LINEAR, "side": "Buy", "orderType": "Market", "qty": "0.010", "triggerPrice": "63000.00",
         "triggerDirection": 1, "triggerBy": "MarkPrice"},
    )  # fmt: skip
    assert (body["retCode"], body["retMsg"]) == (
        110092,
        "expect Rising, but trigger_price[63000.00] <= current[64000]??MarkPrice",
    )
    created = await rest.ok(
        "POST",
        "/v5/order/create",
        {**LINEAR, "side": "Buy", "orderType": "Limit", "price": "64500.00", "qty": "0.010",
         "triggerPrice": "64400.00", "triggerDirection": 1, "orderLinkId": "stop-limit"},
    )  # fmt: skip
    await rest.ok(
        "POST", "/v5/order/amend", {**LINEAR, "orderLinkId": "stop-limit", "triggerPrice": "64450.00"}
    )
    (order,) = (await rest.ok("GET", "/v5/order/realtime", {**LINEAR, "orderLinkId": "stop-limit"}))["list"]
    assert order["triggerPrice"] == "64450.00" and order["orderStatus"] == "Untriggered"
    ws = await private_ws()
    await rest.ok("POST", "/v5/order/cancel", {**LINEAR, "orderId": created["orderId"]})
    (gone,) = await _orders(ws, created["orderId"], "Deactivated")
    assert gone["cancelType"] == "CancelByUser"


async def test_trading_stop_sets_fires_and_clears(rest, private_ws, admin, until) -> None:
    zero = (await rest.post("/v5/position/trading-stop", {**LINEAR, "stopLoss": "60000", "positionIdx": 0}))[
        2
    ]
    assert (zero["retCode"], zero["retMsg"]) == (10001, "can not set tp/sl/ts for zero position")
    await rest.ok(
        "POST", "/v5/order/create", {**LINEAR, "side": "Buy", "orderType": "Market", "qty": "0.010"}
    )
    ws = await private_ws()
    request = {
        **LINEAR,
        "tpslMode": "Full",
        "positionIdx": 0,
        "stopLoss": "63990.00",
        "slTriggerBy": "MarkPrice",
    }
    assert await rest.ok("POST", "/v5/position/trading-stop", request) == {}
    order_msg = await ws.recv_until(lambda m: m.get("topic") == "order")
    (sl,) = order_msg["data"]
    assert (sl["stopOrderType"], sl["orderStatus"], sl["qty"], sl["side"]) == (
        "StopLoss",
        "Untriggered",
        "0.000",
        "Sell",
    )
    assert sl["reduceOnly"] is True and sl["closeOnTrigger"] is True and sl["triggerBy"] == "MarkPrice"
    position_msg = await ws.recv_until(lambda m: m.get("topic") == "position")
    assert position_msg["data"][0]["stopLoss"] == "63990.00"
    (listed,) = (await rest.ok("GET", "/v5/position/list", LINEAR))["list"]
    assert listed["stopLoss"] == "63990.00" and listed["takeProfit"] == "0.00"
    again = (await rest.post("/v5/position/trading-stop", request))[2]
    assert again["retCode"] == 34040
    tpsl = await rest.ok("GET", "/v5/order/realtime", {**LINEAR, "orderFilter": "tpslOrder"})
    assert [o["stopOrderType"] for o in tpsl["list"]] == ["StopLoss"]
    await ws.drain(quiet=0.2)
    await admin("POST", "/sim/mark", {"symbol": "BTCUSDT", "price": "63980"})
    messages = await ws.drain(quiet=0.5)
    # §6.8: execution → order (Triggered, Filled) → position (flat, its stop loss gone) → wallet.
    assert [m["topic"] for m in messages] == ["execution", "order", "position", "wallet"]
    execution, order, position, _ = messages
    assert {e["stopOrderType"] for e in execution["data"]} == {"StopLoss"}
    assert {e["createType"] for e in execution["data"]} == {"CreateByStopLoss"}
    assert [(o["orderId"], o["orderStatus"]) for o in order["data"]] == [
        (sl["orderId"], "Triggered"),
        (sl["orderId"], "Filled"),
    ]
    assert (position["data"][0]["size"], position["data"][0]["stopLoss"]) == ("0.000", "0.00")


async def test_attached_tpsl_and_cancel_all_filters(rest) -> None:
    await rest.ok(
        "POST",
        "/v5/order/create",
        {**LINEAR, "side": "Buy", "orderType": "Market", "qty": "0.010", "takeProfit": "65000.00",
         "stopLoss": "63000.00", "tpTriggerBy": "MarkPrice"},
    )  # fmt: skip
    (pos,) = (await rest.ok("GET", "/v5/position/list", LINEAR))["list"]
    assert (pos["takeProfit"], pos["stopLoss"]) == ("65000.00", "63000.00")
    await rest.ok(
        "POST",
        "/v5/position/trading-stop",
        {**LINEAR, "tpslMode": "Partial", "takeProfit": "64500.00", "tpSize": "0.005", "tpOrderType": "Limit",
         "tpLimitPrice": "64490.00"},
    )  # fmt: skip
    kept = await rest.ok("POST", "/v5/order/cancel-all", {**LINEAR, "orderFilter": "Order"})
    assert kept["list"] == []
    cancelled = await rest.ok("POST", "/v5/order/cancel-all", LINEAR)
    assert len(cancelled["list"]) == 3  # TakeProfit, StopLoss and the PartialTakeProfit
    (pos,) = (await rest.ok("GET", "/v5/position/list", LINEAR))["list"]
    assert (pos["takeProfit"], pos["stopLoss"]) == ("0.00", "0.00")
    history = await rest.ok("GET", "/v5/order/history", {**LINEAR, "orderStatus": "Deactivated"})
    assert {o["stopOrderType"] for o in history["list"]} == {"TakeProfit", "StopLoss", "PartialTakeProfit"}
    bad = (await rest.post("/v5/order/cancel-all", {**LINEAR, "stopOrderType": "Stop"}))[2]
    assert bad["retCode"] == 10001 and "orderFilter" in bad["retMsg"]
