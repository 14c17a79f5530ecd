"""Private WebSocket: auth, ops, and the §6.8 message flow of one order from create to fill."""

from __future__ import annotations

import time
from decimal import Decimal

from exchange_sim.server.signing import ws_auth_signature

KEY = "XkTestApiKey0001"
SECRET = "TestSecretNotReal0123456789abcdefABCDEF"


async def _expect(ws, topics: list[str]) -> list[dict]:
    messages = [await ws.recv() for _ in topics]
    assert [m["topic"] for m in messages] == topics, messages
    for m in messages:
        assert isinstance(m["id"], str) and isinstance(m["creationTime"], int) and isinstance(m["data"], list)
    return messages


async def test_auth_and_ops(private_ws) -> None:
    ws = await private_ws(authenticate=False)
    await ws.send({"op": "subscribe", "args": ["order"]})
    reply = await ws.recv()
    assert reply["success"] is False and reply["ret_msg"] == "Request not authorized"
    expires = int(time.time() * 1000) + 1000
    await ws.send({"req_id": "a1", "op": "auth", "args": [KEY, expires, "0" * 64]})
    reply = await ws.recv()
    assert reply == {
        "success": False,
        "ret_msg": "Params Error",
        "op": "auth",
        "conn_id": reply["conn_id"],
        "req_id": "a1",
    }
    past = int(time.time() * 1000) - 10
    await ws.send({"op": "auth", "args": [KEY, past, ws_auth_signature(SECRET, past)]})
    assert (await ws.recv())["success"] is False
    # The socket stays open after a failed auth; a correct one (expires as a string, like ccxt) succeeds.
    expires_text = str(int(time.time() * 1000) + 10_000)
    await ws.send(
        {"req_id": "a2", "op": "auth", "args": [KEY, expires_text, ws_auth_signature(SECRET, expires_text)]}
    )
    reply = await ws.recv()
    assert reply["success"] is True and reply["op"] == "auth" and reply["req_id"] == "a2"
    await ws.send({"req_id": "p1", "op": "ping"})
    pong = await ws.recv()
    assert pong["op"] == "pong" and pong["req_id"] == "p1" and pong["args"][0].isdigit()
    await ws.send({"req_id": "s1", "op": "subscribe", "args": ["order.linear", "execution", "bogus"]})
    reply = await ws.recv()
    assert reply["success"] is False and "bogus" in reply["ret_msg"] and reply["req_id"] == "s1"
    await ws.send({"op": "subscribe", "args": ["order", "order.linear"]})
    assert (await ws.recv())["success"] is False
    await ws.send({"op": "subscribe", "args": ["wallet"]})
    reply = await ws.recv()
    assert reply["success"] is True and "req_id" not in reply
    await ws.send({"op": "unsubscribe", "args": ["wallet"]})
    assert (await ws.recv())["success"] is True
    await ws.send({"op": "nonsense"})
    assert (await ws.recv())["ret_msg"] == "error:invalid op"


async def test_order_lifecycle_message_flow(rest, private_ws, market, order_request) -> None:
    ws = await private_ws()
    # Limit order that rests: order (New) → position (no change).
    created = await rest.ok(
        "POST",
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.010",
            "price": "64000.00",
            "orderLinkId": "flow-1",
        },
    )
    order_msg, position_msg = await _expect(ws, ["order", "position"])
    (order,) = order_msg["data"]
    assert (
        order["category"] == "linear"
        and order["orderStatus"] == "New"
        and order["orderId"] == created["orderId"]
    )
    assert position_msg["data"][0]["size"] == "0.000" and "entryPrice" in position_msg["data"][0]

    # Partial fill as maker: execution → order (PartiallyFilled) → position → wallet.
    market.queue("taker", order_request("BTCUSDT", "Sell", "Market", Decimal("0.004")))
    execution, order_msg, position_msg, wallet = await _expect(
        ws, ["execution", "order", "position", "wallet"]
    )
    (fill,) = execution["data"]
    assert fill["isMaker"] is True and fill["execQty"] == "0.004" and fill["execPrice"] == "64000.00"
    assert fill["execFee"] == "0.0512" and fill["feeRate"] == "0.0002" and fill["leavesQty"] == "0.006"
    (order,) = order_msg["data"]
    assert order["orderStatus"] == "PartiallyFilled" and order["cumExecQty"] == "0.004"
    assert order["leavesQty"] == "0.006" and order["cumFeeDetail"] == {"USDT": "0.0512"}
    assert int(fill["execTime"]) <= int(order["updatedTime"])
    position = position_msg["data"][0]
    assert position["side"] == "Buy" and position["size"] == "0.004" and position["seq"] == fill["seq"]
    assert Decimal(wallet["data"][0]["totalWalletBalance"]) == Decimal(100_000) - Decimal("0.0512")

    # Final fill: one Filled message, not PartiallyFilled then Filled.
    market.queue("taker", order_request("BTCUSDT", "Sell", "Market", Decimal("0.006")))
    _, order_msg, position_msg, _ = await _expect(ws, ["execution", "order", "position", "wallet"])
    assert [o["orderStatus"] for o in order_msg["data"]] == ["Filled"]
    assert order_msg["data"][0]["leavesQty"] == "0.000" and order_msg["data"][0]["leavesValue"] == "0"
    assert position_msg["data"][0]["size"] == "0.010" and position_msg["data"][0]["entryPrice"] == "64000"

    # Amend: order (same status, new price) → position.
    await rest.ok(
        "POST",
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.010",
            "price": "63900.00",
            "orderLinkId": "flow-2",
        },
    )
    await _expect(ws, ["order", "position"])
    await rest.ok(
        "POST",
        "/v5/order/amend",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "orderLinkId": "flow-2",
            "price": "63910.00",
            "qty": "0.020",
        },
    )
    order_msg, _ = await _expect(ws, ["order", "position"])
    amended = order_msg["data"][0]
    assert (amended["orderStatus"], amended["price"], amended["qty"]) == ("New", "63910.00", "0.020")

    # Cancel: order (Cancelled, CancelByUser) → position.
    await rest.ok(
        "POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "flow-2"}
    )
    order_msg, _ = await _expect(ws, ["order", "position"])
    assert (
        order_msg["data"][0]["orderStatus"] == "Cancelled"
        and order_msg["data"][0]["cancelType"] == "CancelByUser"
    )

    # PostOnly that would cross: order (Cancelled, EC_PostOnlyWillTakeLiquidity) → position.
    await rest.ok(
        "POST",
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.010",
            "price": "64000.10",
            "timeInForce": "PostOnly",
        },
    )
    order_msg, _ = await _expect(ws, ["order", "position"])
    assert order_msg["data"][0]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"

    # Market order filled on arrival over two levels (closing the long, then opening a short):
    # execution (two fills) → order (Filled) → position → wallet.
    await rest.ok(
        "POST",
        "/v5/order/create",
        {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Market", "qty": "0.015"},
    )
    execution, order_msg, position_msg, _ = await _expect(ws, ["execution", "order", "position", "wallet"])
    assert [f["execQty"] for f in execution["data"]] == ["0.010", "0.005"]
    assert all(f["isMaker"] is False and f["feeRate"] == "0.00055" for f in execution["data"])
    assert order_msg["data"][0]["orderStatus"] == "Filled"
    assert [f["closedSize"] for f in execution["data"]] == ["0.010", "0"]
    assert [f["execPrice"] for f in execution["data"]] == ["63999.90", "63999.80"]
    assert position_msg["data"][0]["side"] == "Sell" and position_msg["data"][0]["size"] == "0.005"


async def test_funding_settlement_flow(rest, private_ws, admin, sim) -> None:
    ws = await private_ws()
    await rest.ok(
        "POST",
        "/v5/order/create",
        {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.010"},
    )
    await _expect(ws, ["execution", "order", "position", "wallet"])
    wait = sim.venue.next_funding["BTCUSDT"] - sim.venue.clock.now()
    await admin("POST", "/sim/clock/advance", {"ms": wait + 1})
    execution, position, wallet = await _expect(ws, ["execution", "position", "wallet"])
    (funding,) = execution["data"]
    assert (
        funding["execType"] == "Funding"
        and funding["orderType"] == "UNKNOWN"
        and funding["symbol"] == "BTCUSDT"
    )
    assert Decimal(funding["execFee"]) == Decimal("0.010") * Decimal("64000") * Decimal("0.0001")
    assert funding["feeRate"] == "0.0001" and funding["execQty"] == "0.010"
    await rest.sync()  # the exchange clock jumped: sign with the server's time
    listed = await rest.ok("GET", "/v5/execution/list", {"category": "linear", "execType": "Funding"})
    assert [e["execId"] for e in listed["list"]] == [funding["execId"]]
    assert Decimal(position["data"][0]["curRealisedPnl"]) < 0
    fee = Decimal(funding["execFee"])
    before = Decimal(100_000) - Decimal("640.001") * Decimal("0.00055")
    assert Decimal(wallet["data"][0]["totalWalletBalance"]) == before - fee
    assert sim.venue.next_funding["BTCUSDT"] > sim.venue.clock.now()


async def test_other_account_sees_nothing(rest, private_ws) -> None:
    other = await private_ws(key="XkTestApiKey0002", secret="AnotherSecretNotReal0123456789abcdef")
    mine = await private_ws()
    await rest.ok(
        "POST",
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.010",
            "price": "63000.00",
        },
    )
    await _expect(mine, ["order", "position"])
    assert await other.drain(0.2) == []
