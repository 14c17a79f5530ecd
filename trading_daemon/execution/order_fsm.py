"""The order state machine: the seven `OrderStatus` states, their transitions in one table, and how exchange
reports that arrive late, twice or out of order are told apart from impossible ones.

    Pending ──▶ Placed ──▶ Partially_Filled ──▶ Filled
       │          │              │  ▲   └──────▶ Cancelled
       │          │              └──┘ (more fills)
       │          ├──▶ Filled / Cancelled / Rejected
       └──▶ Partially_Filled / Filled / Cancelled / Rejected / Failed

Two kinds of input reach it. A *command* (`transition_to`) is the daemon's own decision — the submit was
refused (Rejected), the exchange confirmed it never got the order (Failed) — and an edge outside the table
raises `InvalidTransition`. A *report* (`apply`) is what the exchange says, by the private stream or REST;
reports travel on different connections and may repeat (Bybit documents two `Filled` messages for a cancel
that races a fill), so each is ranked by its progress — filled quantity first, then how far along the
lifecycle its status is — and one that does not move the order forward is a duplicate or stale and changes
nothing. A report that moves it forward along an edge the table lacks is impossible and raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from schemas.enums import OrderStatus
from trading_daemon.errors import RejectedError

S = OrderStatus

# The one table of legal edges. The unusual ones:
#  * Pending → Partially_Filled/Filled/Cancelled/Rejected: the stream's report of a fast order can outrun
#    the create reply (or the reply was lost: the ambiguous outcome), so the order jumps past Placed;
#    IOC/market orders that fill nothing and PostOnly orders that would cross end Cancelled at once.
#  * Pending → Failed: the order could not be sent, or the exchange confirmed by orderLinkId, after the
#    request's recv window, that it does not have it. Nothing else reaches Failed.
#  * Partially_Filled → Partially_Filled: a further partial fill (the filled quantity must grow).
#  * Placed → Rejected: the venue may reject after accepting (Bybit `Rejected` status).
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.PLACED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.FAILED}),
    S.PLACED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
}

# How far along the lifecycle a status is; with the filled quantity it orders the reports of one order.
_STAGE = {
    S.PENDING: 0,
    S.PLACED: 1,
    S.PARTIALLY_FILLED: 1,
    S.FILLED: 2,
    S.CANCELLED: 2,
    S.REJECTED: 2,
    S.FAILED: 2,
}


class InvalidTransition(RejectedError):
    """An edge the state machine's table does not have (a bug, or a venue contradicting itself)."""

    def __init__(self, entity: str, key: object, from_status: str, to_status: str, why: str = "") -> None:
        self.entity, self.key, self.from_status, self.to_status = entity, key, from_status, to_status
        tail = f": {why}" if why else ""
        super().__init__(f"{entity} {key!r}: no transition {from_status} -> {to_status}{tail}")


class Verdict(StrEnum):
    """What an exchange report means for the order."""

    APPLY = "apply"  # moves the order forward along a legal edge
    DUPLICATE = "duplicate"  # the state the order is already in
    STALE = "stale"  # older than what the order already shows (arrived late): ignored
    CONFLICT = "conflict"  # contradicts a terminal state the order already reached: ignored, logged


@dataclass(frozen=True, slots=True)
class OrderReport:
    """One statement of the exchange about an order (stream, REST, or the create reply's ack)."""

    status: OrderStatus
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    exchange_order_id: str | None = None
    ts: int = 0
    source: str = "stream"  # stream, rest, ack, reconciliation
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of an order's history."""

    from_status: OrderStatus
    to_status: OrderStatus
    ts: int
    reason: str
    filled_quantity: Decimal
    correction: bool = False  # forced by reconciliation against the table (audited as a correction)


@dataclass
class OrderStateMachine:
    """The state of one order (by its orderLinkId) and every transition it made."""

    client_order_id: str
    status: OrderStatus = OrderStatus.PENDING
    quantity: Decimal | None = None
    filled_quantity: Decimal = Decimal(0)
    history: list[Transition] = field(default_factory=list)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def can_transition_to(self, status: OrderStatus) -> bool:
        """Whether the table has the edge from the current status to `status`."""
        return status in ORDER_TRANSITIONS[self.status]

    def transition_to(
        self, status: OrderStatus, *, ts: int, reason: str, filled_quantity: Decimal | None = None
    ) -> Transition:
        """Apply the daemon's own decision; raises `InvalidTransition` for an edge outside the table."""
        filled = self.filled_quantity if filled_quantity is None else filled_quantity
        self._check(status, filled)
        return self._record(status, ts, reason, filled)

    def classify(self, report: OrderReport) -> Verdict:
        """Whether `report` moves the order forward, repeats, is stale or contradicts (see the module doc).

        Raises `InvalidTransition` when it would move the order forward along an edge the table lacks.
        """
        if report.status is self.status and report.filled_quantity == self.filled_quantity:
            return Verdict.DUPLICATE
        if self.status.is_terminal:
            # A late report of an earlier step (or of this end with less filled) is stale; another end, or
            # more filled than the end showed, contradicts it: the end stands, the caller logs the conflict.
            earlier = not report.status.is_terminal or report.status is self.status
            if earlier and report.filled_quantity <= self.filled_quantity:
                return Verdict.STALE
            return Verdict.CONFLICT
        ours = (self.filled_quantity, _STAGE[self.status])
        theirs = (report.filled_quantity, _STAGE[report.status])
        if theirs <= ours:
            return Verdict.STALE
        self._check(report.status, report.filled_quantity)
        return Verdict.APPLY

    def apply(self, report: OrderReport) -> Transition | None:
        """Apply an exchange report: the transition made, or None when it changes nothing."""
        if self.classify(report) is not Verdict.APPLY:
            return None
        return self._record(report.status, report.ts, f"exchange {report.source}", report.filled_quantity)

    def correct(self, status: OrderStatus, *, ts: int, reason: str, filled_quantity: Decimal) -> Transition:
        """Force the state the exchange reports, even along an edge the table lacks.

        For reconciliation only, when the database disagrees with the exchange (a status edited while the
        daemon was stopped, an order cancelled by hand): the exchange is the truth. The transition is
        marked as a correction so that it is audited as one.
        """
        return self._record(
            status, ts, reason, filled_quantity, correction=not self.can_transition_to(status)
        )

    def _check(self, status: OrderStatus, filled: Decimal) -> None:
        if not self.can_transition_to(status):
            raise InvalidTransition("order", self.client_order_id, self.status, status)
        if filled < self.filled_quantity:
            raise InvalidTransition(
                "order", self.client_order_id, self.status, status,
                f"filled quantity would fall from {self.filled_quantity} to {filled}",
            )  # fmt: skip
        if status is S.PARTIALLY_FILLED and filled <= self.filled_quantity:
            raise InvalidTransition(
                "order", self.client_order_id, self.status, status, "a partial fill must add quantity"
            )
        if self.quantity is not None and filled > self.quantity:
            raise InvalidTransition(
                "order", self.client_order_id, self.status, status,
                f"filled {filled} exceeds the order quantity {self.quantity}",
            )  # fmt: skip

    def _record(
        self, status: OrderStatus, ts: int, reason: str, filled: Decimal, *, correction: bool = False
    ) -> Transition:
        step = Transition(self.status, status, ts, reason, filled, correction)
        self.history.append(step)
        self.status, self.filled_quantity = status, filled
        return step

    def get_transition_history(self) -> list[dict[str, Any]]:
        """The history as the original spec's example 2 prints it: from, to, timestamp, reason."""
        return [
            {"from": str(t.from_status), "to": str(t.to_status), "timestamp": t.ts, "reason": t.reason}
            for t in self.history
        ]
