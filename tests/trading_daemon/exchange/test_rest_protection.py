"""The client's protection and reconciliation methods against the paper exchange: conditional orders,
the position's TP/SL (trading-stop and attached), order filters, executions of every type, positions
that are flat or failing, and the private stream parsed into records."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.enums import ExecType, OrderType, Side
from trading_daemon.exchange.errors import BybitParamError, BybitProtocolError, BybitServerError
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.records import (
    BybitExecType,
    BybitOrderFilter,
    BybitOrderStatus,
    BybitStopOrderType,
    BybitTpslMode,
    BybitTriggerBy,
    BybitTriggerDirection,
)
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.rest_base import parse_rows

from .conftest import Admin, Collector

SYM = "BTCUSDT"
DAY_MS = 86_400_000


async def _go_long(rest: BybitRestClient, qty: str = "0.010") -> None:
    await rest.place_order(symbol=SYM, side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal(qty))


async def test_conditional_order_round_trip(rest: BybitRestClient, admin: Admin) -> None:
    await admin("POST", "/sim/mark", {"symbol": SYM, "price": "64000"})
    ack = await rest.place_order(
        symbol=SYM, side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal("0.010"),
        trigger_price=Decimal("64500.00"), trigger_direction=BybitTriggerDirection.RISE,
        trigger_by=BybitTriggerBy.MARK_PRICE, order_link_id="cond-1", take_profit=Decimal("66000.00"),
    )  # fmt: skip
    (stop,) = await rest.get_open_orders(SYM, order_filter=BybitOrderFilter.STOP_ORDER)
    assert stop.order_id == ack.order_id and stop.is_untriggered and stop.is_conditional
    assert (stop.stop_order_type, stop.trigger_price, stop.trigger_direction, stop.trigger_by) == (
        BybitStopOrderType.STOP, Decimal("64500"), BybitTriggerDirection.RISE, BybitTriggerBy.MARK_PRICE,
    )  # fmt: skip
    assert stop.take_profit == Decimal("66000") and stop.tpsl_mode is BybitTpslMode.FULL
    assert await rest.get_open_orders(SYM, order_filter=BybitOrderFilter.ORDER) == []
    await rest.amend_order(SYM, order_link_id="cond-1", trigger_price=Decimal("64400.00"))
    await admin("POST", "/sim/mark", {"symbol": SYM, "price": "64400"})
    fired = await rest.find_order(SYM, order_link_id="cond-1")
    assert fired is not None and fired.status is BybitOrderStatus.FILLED
    position = await rest.get_position(SYM)
    assert position.size == Decimal("0.010") and position.take_profit == Decimal("66000")
    with pytest.raises(ValueError, match="trigger_direction"):
        await rest.place_order(
            symbol=SYM,
            side=Side.BUY,
            order_type=OrderType.MARKET,
            qty=Decimal("0.01"),
            trigger_price=Decimal("1"),
        )


async def test_trading_stop_is_set_moved_and_removed(rest: BybitRestClient) -> None:
    with pytest.raises(BybitParamError, match="zero position"):
        await rest.set_trading_stop(SYM, stop_loss=Decimal("60000"))
    await _go_long(rest)
    assert await rest.set_trading_stop(
        SYM, stop_loss=Decimal("63000.00"), sl_trigger_by=BybitTriggerBy.MARK_PRICE
    )
    assert not await rest.set_trading_stop(
        SYM, stop_loss=Decimal("63000.00"), sl_trigger_by=BybitTriggerBy.MARK_PRICE
    )
    assert await rest.set_trading_stop(SYM, take_profit=Decimal("65000.00"))
    position = await rest.get_position(SYM)
    assert (position.take_profit, position.stop_loss) == (Decimal("65000"), Decimal("63000"))
    kinds = {
        o.stop_order_type for o in await rest.get_open_orders(SYM, order_filter=BybitOrderFilter.TPSL_ORDER)
    }
    assert kinds == {BybitStopOrderType.TAKE_PROFIT, BybitStopOrderType.STOP_LOSS}
    partial = await rest.set_trading_stop(
        SYM, tpsl_mode=BybitTpslMode.PARTIAL, take_profit=Decimal("64800.00"), tp_size=Decimal("0.004"),
        tp_order_type=OrderType.LIMIT, tp_limit_price=Decimal("64790.00"),
    )  # fmt: skip
    assert partial
    assert await rest.cancel_all_orders(SYM, order_filter=BybitOrderFilter.ORDER) == []  # protection stays
    assert await rest.set_trading_stop(SYM, take_profit=Decimal(0))
    position = await rest.get_position(SYM)
    assert position.take_profit is None and position.stop_loss == Decimal("63000")
    cancelled = await rest.cancel_all_orders(SYM, order_filter=BybitOrderFilter.STOP_ORDER)
    assert len(cancelled) == 2  # the stop loss and the partial take profit
    assert (await rest.get_position(SYM)).stop_loss is None


async def test_executions_of_every_type(rest: BybitRestClient, http: BybitHttpClient, admin: Admin) -> None:
    await _go_long(rest)
    await rest.set_trading_stop(SYM, stop_loss=Decimal("63000.00"), sl_trigger_by=BybitTriggerBy.MARK_PRICE)
    await admin("POST", "/sim/clock/advance", {"ms": 8 * 3_600_000})  # a funding settlement
    await rest.sync_time()
    await admin("POST", "/sim/mark", {"symbol": SYM, "price": "62990"})  # the stop loss fires
    since = http.now_ms() - 20 * DAY_MS  # read 7 days at a time
    reports = await rest.get_execution_reports(start_ms=since)
    assert [r.ts for r in reports] == sorted(r.ts for r in reports)  # oldest first
    # The funding and the stop loss may share an exchange millisecond: pick them by what they are.
    (funding,) = [r for r in reports if r.exec_type is BybitExecType.FUNDING]
    opening, closing = sorted((r for r in reports if r.is_trade), key=lambda r: r.stop_order_type is not None)
    assert opening.is_trade and opening.stop_order_type is None and opening.order_type is OrderType.MARKET
    assert funding.order_id == "" and funding.order_type is None and not funding.is_trade
    assert (
        closing.stop_order_type is BybitStopOrderType.STOP_LOSS and closing.create_type == "CreateByStopLoss"
    )
    assert closing.closed_size == Decimal("0.010")
    fills = await rest.get_executions(start_ms=since, max_items=None)
    assert sorted(f.exec_type for f in fills) == sorted([ExecType.TRADE, ExecType.FUNDING, ExecType.TRADE])
    assert [f.exec_id for f in fills] == [r.exec_id for r in reports]
    assert closing.to_fill() in fills and len(reports) == 3
    page = await rest.get_execution_page(SYM, exec_type=BybitExecType.FUNDING, limit=1)
    assert [e.exec_id for e in page.executions] == [funding.exec_id] and page.next_cursor == ""
    assert (await rest.get_position(SYM)).is_flat


async def test_history_by_link_id_and_filters(rest: BybitRestClient, admin: Admin) -> None:
    await admin("POST", "/sim/mark", {"symbol": SYM, "price": "64000"})
    await rest.place_order(
        symbol=SYM, side=Side.SELL, order_type=OrderType.MARKET, qty=Decimal("0.010"), order_link_id="h-stop",
        trigger_price=Decimal("63000.00"), trigger_direction=BybitTriggerDirection.FALL,
    )  # fmt: skip
    await rest.cancel_order(SYM, order_link_id="h-stop")
    (gone,) = await rest.get_order_history(SYM, order_link_id="h-stop")
    assert gone.status is BybitOrderStatus.DEACTIVATED and gone.cancel_type == "CancelByUser"
    assert await rest.get_order_history(SYM, order_filter=BybitOrderFilter.ORDER) == []
    deactivated = await rest.get_order_history(SYM, order_status="Deactivated")
    assert [o.order_link_id for o in deactivated] == ["h-stop"]


async def test_a_failed_position_query_raises(rest: BybitRestClient, admin: Admin) -> None:
    assert (await rest.get_position(SYM)).is_flat  # flat is an answer
    await admin(
        "POST", "/sim/faults", {"error_rate": 1.0, "error_kinds": ["retcode"], "paths": ["/v5/position"]}
    )
    with pytest.raises(BybitServerError):
        await rest.get_position(SYM)
    with pytest.raises(BybitServerError):
        await rest.get_positions()


def test_an_unreadable_row_is_a_protocol_error() -> None:
    from trading_daemon.exchange.constants import BybitEndpoints
    from trading_daemon.exchange.messages import BybitPosition
    from trading_daemon.exchange.parsing import parse_position

    with pytest.raises(BybitProtocolError, match="could not be read"):
        parse_rows(parse_position, [BybitPosition(symbol=SYM, size="lots")], BybitEndpoints.POSITIONS)


async def test_private_stream_reports(
    private_ws, rest: BybitRestClient, http: BybitHttpClient, admin: Admin
) -> None:
    orders, executions, positions, wallets = Collector(), Collector(), Collector(), Collector()
    client = private_ws(clock=http.now_ms)
    await client.start()
    await client.subscribe_private_reports(
        on_orders=orders, on_executions=executions, on_positions=positions, on_wallet=wallets
    )
    await _go_long(rest)
    await rest.set_trading_stop(SYM, stop_loss=Decimal("63000.00"), sl_trigger_by=BybitTriggerBy.MARK_PRICE)
    (waiting,) = await orders.wait(lambda batch: batch[0].stop_order_type is BybitStopOrderType.STOP_LOSS)
    assert waiting.is_untriggered and waiting.trigger_price == Decimal("63000") and waiting.reduce_only
    await positions.wait(lambda batch: batch[0].stop_loss == Decimal("63000"))
    await admin("POST", "/sim/mark", {"symbol": SYM, "price": "62990"})
    fired = await orders.wait(lambda batch: batch[0].order_id == waiting.order_id and len(batch) == 2)
    assert [o.status for o in fired] == [BybitOrderStatus.TRIGGERED, BybitOrderStatus.FILLED]
    (fill,) = await executions.wait(lambda batch: batch[0].stop_order_type is BybitStopOrderType.STOP_LOSS)
    assert fill.exec_type is BybitExecType.TRADE and fill.side is Side.SELL
    flat = await positions.wait(lambda batch: batch[0].is_flat)
    assert flat[0].stop_loss is None
    assert (await wallets.wait(lambda batch: True))[0].account_type == "UNIFIED"
