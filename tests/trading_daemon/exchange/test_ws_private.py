"""Private stream: auth (§6.2), and one order's messages on order/execution/position/wallet."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from schemas.enums import OrderType, Side
from trading_daemon.exchange.errors import BybitAuthError
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.messages import BybitWsExecutions, BybitWsOrders
from trading_daemon.exchange.parsing import parse_fill, parse_order, parse_position, parse_wallet
from trading_daemon.exchange.records import BybitOrderStatus
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPrivateWebSocket

from .conftest import Collector

Factory = Callable[..., BybitPrivateWebSocket]


async def test_bad_secret_is_refused(private_ws: Factory) -> None:
    client = private_ws(api_secret="WrongSecret")
    with pytest.raises(BybitAuthError, match="auth refused"):
        await client.start()
    assert not client.connected


async def test_order_lifecycle_messages(
    private_ws: Factory, rest: BybitRestClient, http: BybitHttpClient
) -> None:
    orders, executions, positions, wallets = Collector(), Collector(), Collector(), Collector()
    client = private_ws(clock=http.now_ms)
    await client.start()
    await client.subscribe_private(
        on_order=orders, on_execution=executions, on_position=positions, on_wallet=wallets
    )
    assert set(client.topics) == {"order", "execution", "position", "wallet"}

    ack = await rest.place_order(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.010"),
        price=Decimal("63000.00"),
        order_link_id="ws-life-1",
    )
    new: BybitWsOrders = await orders.wait(lambda m: m.data[0].orderLinkId == "ws-life-1")
    report = parse_order(new.data[0])
    assert report.order_id == ack.order_id and report.status is BybitOrderStatus.NEW
    assert report.price == Decimal("63000") and new.data[0].category == "linear"

    await rest.cancel_order("BTCUSDT", order_link_id="ws-life-1")
    cancelled: BybitWsOrders = await orders.wait(lambda m: m.data[0].orderStatus == "Cancelled")
    assert parse_order(cancelled.data[0]).cancel_type == "CancelByUser"

    await rest.place_order(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=Decimal("0.010"),
        order_link_id="ws-mkt-1",
    )
    execution: BybitWsExecutions = await executions.wait(lambda m: m.data[0].orderLinkId == "ws-mkt-1")
    fill = parse_fill(execution.data[0])
    assert fill.client_order_id == "ws-mkt-1" and fill.quantity == Decimal("0.010")
    assert fill.price == Decimal("64000.10") and fill.fee > 0
    filled: BybitWsOrders = await orders.wait(lambda m: m.data[0].orderStatus == "Filled")
    assert parse_order(filled.data[0]).filled_quantity == Decimal("0.010")

    position_msg = await positions.wait(lambda m: bool(m.data) and parse_position(m.data[0]).size > 0)
    position = parse_position(position_msg.data[0])
    assert position.side is Side.BUY and position.size == Decimal("0.010")
    assert position.entry_price == Decimal("64000.10")

    wallet_msg = await wallets.wait(lambda m: bool(m.data))
    wallet = parse_wallet(wallet_msg.data[0])
    assert wallet.coins["USDT"].wallet_balance < 100_000  # the taker fee was charged
