"""The FSM registry: the in-memory state machines of live orders and positions, restored from the database.

The database is the record (orders, order_events, positions, position_events); the registry is what the
daemon consults between two writes. After a restart `restore` rebuilds it from the live rows and their
event history (ENABLE_FSM_AUTO_RESTORE), before reconciliation compares it with the exchange. The daemon
is a single asyncio task graph, so no lock is needed: nothing here awaits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from infra.db.repositories import OrderRepository, PositionRepository
from schemas.enums import OrderStatus, PositionStatus
from schemas.trading import Order, Position
from trading_daemon.execution.order_fsm import OrderStateMachine, Transition
from trading_daemon.execution.position_fsm import PositionStateMachine, PositionTransition


class FSMRegistry:
    """Order FSMs by orderLinkId and position FSMs by position id (the original spec's `fsm_registry`)."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderStateMachine] = {}
        self._positions: dict[int | str, PositionStateMachine] = {}

    # --- orders -------------------------------------------------------------------------------------

    def register_order_fsm(self, client_order_id: str, fsm: OrderStateMachine) -> None:
        self._orders[client_order_id] = fsm

    def get_order_fsm(self, client_order_id: str) -> OrderStateMachine | None:
        return self._orders.get(client_order_id)

    def unregister_order_fsm(self, client_order_id: str) -> None:
        self._orders.pop(client_order_id, None)

    def get_order_ids_by_status(self, statuses: Iterable[OrderStatus | str]) -> list[str]:
        wanted = {OrderStatus(s) for s in statuses}
        return [coid for coid, fsm in self._orders.items() if fsm.status in wanted]

    def order_for(self, order: Order) -> OrderStateMachine:
        """The registered FSM of `order`, registering one at its stored state when there is none."""
        fsm = self._orders.get(order.client_order_id)
        if fsm is None:
            fsm = OrderStateMachine(
                order.client_order_id, order.status, order.quantity, order.filled_quantity
            )
            self._orders[order.client_order_id] = fsm
        return fsm

    # --- positions ----------------------------------------------------------------------------------

    def register_position_fsm(self, position_id: int | str, fsm: PositionStateMachine) -> None:
        self._positions[position_id] = fsm

    def get_position_fsm(self, position_id: int | str) -> PositionStateMachine | None:
        return self._positions.get(position_id)

    def unregister_position_fsm(self, position_id: int | str) -> None:
        self._positions.pop(position_id, None)

    def get_active_position_ids(self) -> list[int | str]:
        return [pid for pid, fsm in self._positions.items() if not fsm.is_closed]

    def position_for(self, position: Position) -> PositionStateMachine:
        """The registered FSM of `position`, registering one at its stored state when there is none."""
        assert position.id is not None
        fsm = self._positions.get(position.id)
        if fsm is None:
            fsm = PositionStateMachine(
                position.id,
                position.side,
                position.status,
                position.quantity,
                position.entry_price,
                position.realized_pnl,
            )
            self._positions[position.id] = fsm
        return fsm

    # --- utilities ----------------------------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        """Counts for monitoring (the original spec's `/api/monitoring/recovery/status`)."""
        return {
            "total_order_fsms": len(self._orders),
            "total_position_fsms": len(self._positions),
            "order_fsms_by_status": dict(Counter(str(f.status) for f in self._orders.values())),
            "position_fsms_by_status": dict(Counter(str(f.status) for f in self._positions.values())),
        }

    def clear_terminal_fsms(self) -> int:
        """Drop FSMs of finished orders and closed positions; returns how many were dropped."""
        orders = [k for k, f in self._orders.items() if f.is_terminal]
        positions = [k for k, f in self._positions.items() if f.is_closed]
        for k in orders:
            del self._orders[k]
        for p in positions:
            del self._positions[p]
        return len(orders) + len(positions)

    def clear_all(self) -> None:
        self._orders.clear()
        self._positions.clear()

    async def restore(self, orders: OrderRepository, positions: PositionRepository) -> dict[str, int]:
        """Rebuild the FSMs of live orders and positions from the database, with their transition history."""
        self.clear_all()
        live = await orders.list_live()
        for order in live:
            fsm = self.order_for(order)
            fsm.history = [
                Transition(
                    OrderStatus(e.from_status) if e.from_status else OrderStatus.PENDING,
                    OrderStatus(e.to_status),
                    e.ts,
                    e.reason or "",
                    order.filled_quantity,
                )
                for e in await orders.events(order.client_order_id)
                if e.from_status is not None
            ]
        open_positions = await _live_positions(positions)
        for position in open_positions:
            pfsm = self.position_for(position)
            assert position.id is not None
            pfsm.history = [
                PositionTransition(PositionStatus(f), PositionStatus(t), 0, "restored", position.quantity)
                for f, t in await positions.status_history(position.id)
                if f is not None
            ]
        return {"orders": len(live), "positions": len(open_positions)}


async def _live_positions(positions: PositionRepository) -> Sequence[Position]:
    return [p for p in await positions.find(limit=10_000) if p.status is not PositionStatus.CLOSED]
