"""The position state machine: four states, one table, and the fill arithmetic of a one-way position.

    Opening ──▶ Open ──▶ Closing ──▶ Closed
       │          │ ▲  ◀────┘ (exit cancelled)
       │          │ └─ (size changes)
       └──────────┴──────────────────▶ Closed

A position is born `Opening` when its entry order is written, becomes `Open` with its first fill, `Closing`
when an exit (reduce-only) order is written, and `Closed` when its size reaches zero. Fills are applied by
`execId` exactly once (a duplicated execution event changes nothing). A fill on the other side larger than
the position closes it and leaves the rest over (`FillOutcome.remainder`), which the caller opens as a new
position: in one-way mode a reversal is two positions, one closed and one opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.enums import PositionStatus, Side
from trading_daemon.execution.order_fsm import InvalidTransition

P = PositionStatus
ZERO = Decimal(0)

# The unusual edges:
#  * Opening → Closed: the entry order ended without any fill (cancelled, rejected, failed).
#  * Open → Closed: closed without our exit order (the exchange's take-profit or stop-loss, a reduce-only
#    order placed by hand, reconciliation finding the exchange flat).
#  * Closing → Open: the exit order ended (cancelled, re-priced) while some size remains.
#  * Open → Open and Closing → Closing: the size changed (more entry fills, partial exit fills).
POSITION_TRANSITIONS: dict[PositionStatus, frozenset[PositionStatus]] = {
    P.OPENING: frozenset({P.OPEN, P.CLOSED}),
    P.OPEN: frozenset({P.OPEN, P.CLOSING, P.CLOSED}),
    P.CLOSING: frozenset({P.CLOSING, P.OPEN, P.CLOSED}),
    P.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class PositionTransition:
    from_status: PositionStatus
    to_status: PositionStatus
    ts: int
    reason: str
    size: Decimal


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What one fill did to the position."""

    applied: bool  # False: this execId was applied before
    transition: PositionTransition | None
    closed_quantity: Decimal = ZERO  # how much of the position the fill closed
    realized_pnl: Decimal = ZERO  # gross PnL of the closed part, at the average entry price
    remainder: Decimal = ZERO  # what was left over after closing the position (opens a new one)


@dataclass
class PositionStateMachine:
    """One position's state, size and average entry, fed by fills."""

    position_id: int | str
    side: Side
    status: PositionStatus = PositionStatus.OPENING
    size: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    applied_exec_ids: set[str] = field(default_factory=set)
    history: list[PositionTransition] = field(default_factory=list)

    @property
    def is_closed(self) -> bool:
        return self.status is PositionStatus.CLOSED

    def can_transition_to(self, status: PositionStatus) -> bool:
        return status in POSITION_TRANSITIONS[self.status]

    def transition_to(self, status: PositionStatus, *, ts: int, reason: str) -> PositionTransition:
        """A status change decided by the daemon (exit written, exit ended, entry ended unfilled)."""
        if not self.can_transition_to(status):
            raise InvalidTransition("position", self.position_id, self.status, status)
        if status is P.CLOSED and self.size != 0:
            raise InvalidTransition(
                "position", self.position_id, self.status, status, f"size {self.size} is not zero"
            )
        if status is P.OPEN and self.size == 0:
            raise InvalidTransition("position", self.position_id, self.status, status, "size is zero")
        return self._record(status, ts, reason)

    def apply_fill(
        self, exec_id: str, side: Side, quantity: Decimal, price: Decimal, *, ts: int
    ) -> FillOutcome:
        """Apply one trade fill (not funding) once; raises `InvalidTransition` on a closed position."""
        if exec_id in self.applied_exec_ids:
            return FillOutcome(False, None)
        if self.is_closed:
            raise InvalidTransition("position", self.position_id, self.status, self.status, "it is closed")
        if quantity <= 0:
            raise ValueError(f"fill {exec_id}: quantity must be positive, got {quantity}")
        self.applied_exec_ids.add(exec_id)
        if side is self.side:
            total = self.size + quantity
            self.entry_price = (self.entry_price * self.size + price * quantity) / total
            self.size = total
            to = P.OPEN if self.status is P.OPENING else self.status
            return FillOutcome(True, self._record(to, ts, f"fill {exec_id}"))
        closed = min(quantity, self.size)
        pnl = (price - self.entry_price) * closed * self.side.sign
        self.size -= closed
        self.realized_pnl += pnl
        # Flat closes it; otherwise the status stays (an Opening position with size became Open).
        to = P.CLOSED if self.size == 0 else (P.OPEN if self.status is P.OPENING else self.status)
        return FillOutcome(True, self._record(to, ts, f"fill {exec_id}"), closed, pnl, quantity - closed)

    def _record(self, status: PositionStatus, ts: int, reason: str) -> PositionTransition:
        if status not in POSITION_TRANSITIONS[self.status]:
            raise InvalidTransition("position", self.position_id, self.status, status, reason)
        step = PositionTransition(self.status, status, ts, reason, self.size)
        self.history.append(step)
        self.status = status
        return step

    def get_transition_history(self) -> list[dict[str, Any]]:
        return [
            {"from": str(t.from_status), "to": str(t.to_status), "timestamp": t.ts, "size": str(t.size)}
            for t in self.history
        ]
