"""The exchange's own take-profit and stop-loss orders, seen by a running execution.

When an entry with TP/SL fills, the exchange (Bybit with tpslMode Full, and the paper exchange) creates the
position's TakeProfit and StopLoss orders itself: no orderLinkId, quantity "0" (the whole position when
they fire). They are the position's protection — its `take_profit`/`stop_loss`, verified by
reconciliation — not orders of the daemon's, until one fires and has a real size: then it is imported as an
order linked to its position, and its fills close the position. Partial TP/SL orders have a size from the
start and are orders; neither kind is an "unknown order" to reconciliation.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog

from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import AuditRepository, FillRepository, OrderRepository, PositionRepository
from schemas.enums import AuditAction, OrderStatus, OrderType, PositionStatus, Side
from schemas.trading import Order, Position
from tests.trading_daemon.exchange.conftest import OTHER_KEY, OTHER_SECRET
from tests.trading_daemon.execution.conftest import make_rest, market_intent, wait_until
from trading_daemon.exchange.records import BybitStopOrderType, BybitTpslMode
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.execution.runtime import ExecutionRuntime

PROTECTION_TYPES = {BybitStopOrderType.TAKE_PROFIT, BybitStopOrderType.STOP_LOSS}


def _ask(venue: SimServer) -> Decimal:
    book = venue.venue.engine.books["BTCUSDT"]
    return book.instrument.ticks_to_price(book.best_ask() or 0)


async def _live_position(pool: Any) -> Position:
    live = [
        p
        for p in await PositionRepository(pool).find(symbol="BTCUSDT")
        if p.status is not PositionStatus.CLOSED
    ]
    assert len(live) == 1, live
    return live[0]


async def _enter(rt: ExecutionRuntime, venue: SimServer, intent_id: str, **protection: Decimal) -> Order:
    """A filled market buy of 0.01 BTCUSDT carrying `protection` (take_profit/stop_loss)."""
    result = await rt.manager.submit(market_intent(intent_id, **protection))
    assert result.accepted, result
    orders = OrderRepository(rt.pool)

    async def filled() -> bool:
        order = await orders.get_by_client_order_id(result.client_order_id or "")
        return order is not None and order.status is OrderStatus.FILLED

    await wait_until(filled, what="entry filled")
    order = await orders.get_by_client_order_id(result.client_order_id or "")
    assert order is not None
    return order


async def _protection_on_exchange(rest: BybitRestClient) -> list[Any]:
    return [o for o in await rest.get_open_orders("BTCUSDT") if o.stop_order_type is not None]


async def _sell_through(venue: SimServer, qty: str = "0.1") -> None:
    """Another account sells at market: the last price falls through the bids."""
    other = make_rest(venue, api_key=OTHER_KEY, api_secret=OTHER_SECRET)
    try:
        await other.place_order(
            symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.MARKET, qty=Decimal(qty)
        )
    finally:
        await other.close()


def _stream_failures(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("log_level") in ("error", "critical")]


async def test_untriggered_full_tpsl_is_the_positions_protection_on_the_stream_and_in_reconciliation(
    runtime: ExecutionRuntime, venue: SimServer, pool: Any
) -> None:
    ask = _ask(venue)
    take_profit, stop_loss = ask + 500, ask - 200
    with structlog.testing.capture_logs() as logs:
        await _enter(runtime, venue, "full-tpsl", take_profit=take_profit, stop_loss=stop_loss)

        async def protected() -> bool:  # the stream brought the exchange's TakeProfit/StopLoss orders
            return {
                o.stop_order_type for o in await _protection_on_exchange(runtime.rest)
            } == PROTECTION_TYPES

        await wait_until(protected, what="the exchange's TP/SL orders")
        await runtime.ledger.drain_hooks()
        report = await runtime.reconcile_now()

    assert _stream_failures(logs) == []
    assert report.success and report.discrepancies == 0, report.summary()
    assert report.protection_corrections == [] and runtime.account.reconciled(), runtime.account.holds
    # The TP/SL orders are no orders of the daemon's: only the entry is in the database.
    stored = await OrderRepository(pool).find(symbol="BTCUSDT")
    assert [o.intent_id for o in stored] == ["full-tpsl"], stored
    position = await _live_position(pool)
    assert (position.take_profit, position.stop_loss, position.quantity) == (
        take_profit,
        stop_loss,
        Decimal("0.01"),
    )
    # What execution knows of them: the exchange's orders by id, under the position's symbol.
    held = runtime.account.protection.get("BTCUSDT", {})
    assert {r.stop_order_type for r in held.values()} == PROTECTION_TYPES


async def test_a_position_without_its_intended_stop_on_the_exchange_is_repaired(
    runtime: ExecutionRuntime, venue: SimServer, pool: Any
) -> None:
    ask = _ask(venue)
    stop_loss = ask - 200
    await _enter(runtime, venue, "lost-stop", stop_loss=stop_loss)
    # Someone removes the stop on the exchange (by hand, or a cancel-all without a filter).
    assert await runtime.rest.set_trading_stop("BTCUSDT", stop_loss=Decimal(0))
    (seen,) = [p for p in await runtime.rest.get_positions("BTCUSDT") if p.size > 0]
    assert seen.stop_loss is None

    report = await runtime.reconcile_now()
    assert report.success, report.error
    assert [c["issue"] for c in report.protection_corrections] == ["stop_loss_missing"], report.summary()
    (repaired,) = [p for p in await runtime.rest.get_positions("BTCUSDT") if p.size > 0]
    assert repaired.stop_loss == stop_loss
    rows = await AuditRepository(pool).find(action=AuditAction.RECONCILIATION, limit=50)
    assert any("stop_loss" in (r.reason or "") and "restored" in (r.reason or "") for r in rows), [
        r.reason for r in rows
    ]
    again = await runtime.reconcile_now()
    assert again.success and again.discrepancies == 0, again.summary()


async def test_a_stop_that_fires_is_imported_as_an_order_of_its_position_and_closes_it(
    runtime: ExecutionRuntime, venue: SimServer, pool: Any
) -> None:
    ask = _ask(venue)
    with structlog.testing.capture_logs() as logs:
        entry = await _enter(runtime, venue, "stopped", take_profit=ask + 500, stop_loss=ask - Decimal("0.5"))

        async def protected() -> bool:
            return "BTCUSDT" in runtime.account.protection and len(runtime.account.protection["BTCUSDT"]) == 2

        await wait_until(protected, what="the protection seen on the stream")
        position = await _live_position(pool)
        await _sell_through(venue)
        positions = PositionRepository(pool)

        async def closed() -> bool:
            found = await positions.get(position.id or 0)
            return found is not None and found.status is PositionStatus.CLOSED

        await wait_until(closed, what="the stop closed the position in the database")
        await runtime.ledger.drain_hooks()
        report = await runtime.reconcile_now()

    assert _stream_failures(logs) == []
    orders = await OrderRepository(pool).find(symbol="BTCUSDT")
    imported = [o for o in orders if o.intent_id is None]
    assert len(imported) == 1, orders  # the stop; the take-profit was deactivated, never an order
    stop = imported[0]
    assert stop.status is OrderStatus.FILLED and stop.reduce_only and stop.side is Side.SELL
    assert stop.quantity == stop.filled_quantity == entry.filled_quantity
    assert stop.position_id == position.id == entry.position_id
    assert (stop.signal_data or {}).get("stop_order_type") == "StopLoss"
    fills = await FillRepository(pool).by_order(stop.client_order_id)
    assert fills and all(f.order_id == stop.id for f in fills)
    closed_position = await positions.get(position.id or 0)
    assert closed_position is not None and closed_position.quantity == 0
    assert closed_position.exit_reason == "StopLoss triggered on the exchange (found by stream)"
    assert closed_position.closed_ms is not None
    assert report.success and report.discrepancies == 0, report.summary()
    assert runtime.account.protection.get("BTCUSDT", {}) == {}


async def test_partial_tpsl_orders_are_orders_of_their_size_and_no_unknown_orders(
    runtime: ExecutionRuntime, venue: SimServer, pool: Any
) -> None:
    result = await runtime.manager.submit(market_intent("partial", qty="0.02"))
    assert result.accepted
    orders = OrderRepository(pool)

    async def filled() -> bool:
        order = await orders.get_by_client_order_id(result.client_order_id or "")
        return order is not None and order.status is OrderStatus.FILLED

    await wait_until(filled, what="entry filled")
    ask = _ask(venue)
    # Half the position protected by a Partial pair (an operator's, or another tool's).
    assert await runtime.rest.set_trading_stop(
        "BTCUSDT", tpsl_mode=BybitTpslMode.PARTIAL, take_profit=ask + 500, stop_loss=ask - Decimal("0.5"),
        tp_size=Decimal("0.01"), sl_size=Decimal("0.01"),
    )  # fmt: skip

    async def imported() -> bool:
        return len([o for o in await orders.find(symbol="BTCUSDT") if o.intent_id is None]) == 2

    await wait_until(imported, what="the Partial pair imported from the stream")
    pair = [o for o in await orders.find(symbol="BTCUSDT") if o.intent_id is None]
    assert all(
        o.status is OrderStatus.PLACED and o.quantity == Decimal("0.01") and o.reduce_only for o in pair
    )
    report = await runtime.reconcile_now()
    assert report.success and report.discrepancies == 0, report.summary()

    with structlog.testing.capture_logs() as logs:
        await _sell_through(venue)

        async def fired() -> bool:
            states = {(o.signal_data or {}).get("stop_order_type"): o.status for o in await orders.find(symbol="BTCUSDT")
                      if o.intent_id is None}  # fmt: skip
            return states == {
                "PartialStopLoss": OrderStatus.FILLED,
                "PartialTakeProfit": OrderStatus.CANCELLED,
            }

        await wait_until(fired, what="the Partial stop filled, its twin deactivated")
        await runtime.ledger.drain_hooks()
        again = await runtime.reconcile_now()
    assert _stream_failures(logs) == []
    position = await _live_position(pool)
    assert position.status is PositionStatus.OPEN and position.quantity == Decimal("0.01")
    assert again.success and again.discrepancies == 0, again.summary()


async def test_the_kill_switch_leaves_the_positions_protection_in_place(
    runtime: ExecutionRuntime, venue: SimServer, db: Database, pool: Any
) -> None:
    ask = _ask(venue)
    await _enter(runtime, venue, "kept", stop_loss=ask - 200)
    await runtime.kill_switch.engage(reason="test", actor="test")
    (seen,) = [p for p in await runtime.rest.get_positions("BTCUSDT") if p.size > 0]
    assert seen.stop_loss == ask - 200
    await runtime.kill_switch.release(reason="test", actor="test")
