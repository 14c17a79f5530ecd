"""The FSM registry restores the state machines of live orders and positions, with their history, from the
database (ENABLE_FSM_AUTO_RESTORE), and answers the original spec's queries."""

from __future__ import annotations

from decimal import Decimal

from exchange_sim.server.app import SimServer
from infra.db.repositories import OrderRepository, PositionRepository
from schemas.enums import OrderStatus, OrderType, PositionStatus, Side, TimeInForce
from schemas.trading import TradeIntent
from tests.trading_daemon.execution.conftest import market_intent, wait_until
from trading_daemon.execution.registry import FSMRegistry
from trading_daemon.execution.runtime import ExecutionRuntime


async def test_restore_rebuilds_live_orders_and_positions_with_history(
    runtime: ExecutionRuntime, venue: SimServer, pool
) -> None:
    await runtime.manager.submit(market_intent("r-entry"))

    async def open_position() -> bool:
        live = await PositionRepository(pool).get_live("BTCUSDT")
        return live is not None and live.status is PositionStatus.OPEN

    await wait_until(open_position, what="position open")
    book = venue.venue.engine.books["BTCUSDT"]
    bid = book.instrument.ticks_to_price(book.best_bid() or 0)
    resting = await runtime.manager.submit(
        TradeIntent(intent_id="r-rest", symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, ts=0,
                    price=bid - 300, quantity=Decimal("0.01"), time_in_force=TimeInForce.GTC, source="test")
    )  # fmt: skip
    assert resting.status is OrderStatus.PLACED
    registry = FSMRegistry()
    counts = await registry.restore(OrderRepository(pool), PositionRepository(pool))
    assert counts == {"orders": 1, "positions": 1}
    fsm = registry.get_order_fsm(resting.client_order_id or "")
    assert fsm is not None and fsm.status is OrderStatus.PLACED
    assert [(h["from"], h["to"]) for h in fsm.get_transition_history()] == [("Pending", "Placed")]
    assert registry.get_order_ids_by_status(["Pending", "Placed"]) == [resting.client_order_id]
    [position_id] = registry.get_active_position_ids()
    position = registry.get_position_fsm(position_id)
    assert (
        position is not None and position.status is PositionStatus.OPEN and position.size == Decimal("0.01")
    )
    stats = registry.get_stats()
    assert stats["total_order_fsms"] == 1 and stats["order_fsms_by_status"] == {"Placed": 1}
    fsm.transition_to(OrderStatus.CANCELLED, ts=1, reason="test")
    assert (
        registry.clear_terminal_fsms() == 1 and registry.get_order_fsm(resting.client_order_id or "") is None
    )
