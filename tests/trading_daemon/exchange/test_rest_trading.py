"""Private endpoints against the paper exchange: orders, fills, positions, leverage, balance."""

from __future__ import annotations

from decimal import Decimal

from schemas.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from schemas.trading import Fill
from trading_daemon.exchange.records import BybitOrderStatus
from trading_daemon.exchange.rest import BybitRestClient

QTY = Decimal("0.010")


async def place_resting_buy(rest: BybitRestClient, link_id: str, price: str = "63000.00") -> str:
    ack = await rest.place_order(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=QTY,
        price=Decimal(price),
        time_in_force=TimeInForce.GTC,
        order_link_id=link_id,
    )
    assert ack.order_link_id == link_id and ack.order_id
    return ack.order_id


async def test_place_query_amend_cancel(rest: BybitRestClient) -> None:
    order_id = await place_resting_buy(rest, "life-1")
    (order,) = await rest.get_open_orders("BTCUSDT")
    assert order.order_id == order_id and order.order_link_id == "life-1"
    assert order.status is BybitOrderStatus.NEW and order.order_status is OrderStatus.PLACED
    assert order.price == Decimal("63000") and order.quantity == QTY
    assert order.filled_quantity == 0 and order.avg_fill_price is None
    assert order.time_in_force is TimeInForce.GTC and order.side is Side.BUY

    ack = await rest.amend_order("BTCUSDT", order_link_id="life-1", price=Decimal("63100.00"))
    assert ack.order_id == order_id
    (amended,) = await rest.get_open_orders("BTCUSDT", order_id=order_id)
    assert amended.price == Decimal("63100")

    await rest.cancel_order("BTCUSDT", order_id=order_id)
    assert await rest.get_open_orders("BTCUSDT") == []
    found = await rest.find_order("BTCUSDT", order_link_id="life-1")
    assert found is not None and found.status is BybitOrderStatus.CANCELLED
    assert found.order_status is OrderStatus.CANCELLED


async def test_cancel_all(rest: BybitRestClient) -> None:
    ids = {await place_resting_buy(rest, f"ca-{i}", f"6300{i}.00") for i in range(3)}
    acks = await rest.cancel_all_orders("BTCUSDT")
    assert {a.order_id for a in acks} == ids
    assert await rest.get_open_orders() == []
    assert await rest.cancel_all_orders("BTCUSDT") == []


async def test_market_order_fills_positions_history(rest: BybitRestClient) -> None:
    ack = await rest.place_order(
        symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.MARKET, qty=QTY, order_link_id="mkt-1"
    )
    fills: list[Fill] = await rest.get_executions("BTCUSDT", order_link_id="mkt-1")
    assert fills, "the market order should have filled against the seeded ladder"
    fill = fills[0]
    assert fill.exchange_order_id == ack.order_id and fill.client_order_id == "mkt-1"
    assert fill.side is Side.BUY and fill.exec_type is ExecType.TRADE and not fill.is_maker
    assert fill.price == Decimal("64000.10") and sum(f.quantity for f in fills) == QTY
    assert fill.fee == (fill.price * fill.quantity * Decimal("0.00055"))
    assert isinstance(fill.fee, Decimal)

    (history,) = await rest.get_order_history("BTCUSDT", order_link_id="mkt-1")
    assert history.status is BybitOrderStatus.FILLED and history.filled_quantity == QTY
    assert history.avg_fill_price == Decimal("64000.10") and history.price is None

    (position,) = await rest.get_positions("BTCUSDT")
    assert position.side is Side.BUY and position.size == QTY
    assert position.entry_price == Decimal("64000.10")
    assert [p.symbol for p in await rest.get_positions()] == ["BTCUSDT"]
    (flat,) = await rest.get_positions("ETHUSDT")
    assert flat.side is None and flat.size == 0

    await rest.place_order(
        symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.MARKET, qty=QTY, reduce_only=True
    )
    (closed,) = await rest.get_positions("BTCUSDT")
    assert closed.size == 0 and closed.side is None


async def test_leverage_and_fee_rates(rest: BybitRestClient) -> None:
    assert await rest.set_leverage("BTCUSDT", Decimal(5)) is True
    assert await rest.set_leverage("BTCUSDT", Decimal(5)) is False  # 110043 "not modified" is success
    (position,) = await rest.get_positions("BTCUSDT")
    assert position.leverage == 5
    (rates,) = await rest.get_fee_rates("BTCUSDT")
    assert rates.taker == Decimal("0.00055") and rates.maker == Decimal("0.0002")


async def test_wallet_balance(rest: BybitRestClient) -> None:
    wallet = await rest.get_wallet_balance()
    assert wallet.account_type == "UNIFIED"
    assert wallet.coins["USDT"].wallet_balance == Decimal(100_000)
    assert wallet.total_available_balance == Decimal(100_000)
    await place_resting_buy(rest, "wb-1")
    after = await rest.get_wallet_balance()
    assert after.coins["USDT"].order_im > 0
    assert after.total_available_balance < wallet.total_available_balance
