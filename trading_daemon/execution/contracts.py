"""The seams between the decisions (strategies, detectors, the ML gate, risk) and execution.

The decisions hand execution a `schemas.trading.TradeIntent` through an :class:`IntentSubmitter`; before an
intent becomes an order, execution asks every :class:`PreTradeCheck` (the risk manager is one; the
instrument's rules are another), giving each a read-only :class:`AccountView` of what is open and what the
account is worth. Both sides are written against these protocols only, so each is built and tested without
the other: execution with scripted intents, the decisions with a recording submitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from schemas.enums import OrderStatus
from schemas.trading import Order, Position, TradeIntent


@dataclass(frozen=True, slots=True)
class CheckVerdict:
    """A pre-trade check's answer. An approval may carry a resized intent (e.g. a quantity cut to a limit);
    a refusal says why. `details` are the values the check looked at, for the audit trail."""

    approved: bool
    intent: TradeIntent
    check: str  # which check answered ("risk", "instrument", …)
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What became of an intent: `accepted` once an order exists for it (whatever its later fate),
    otherwise the refusal (a check, the kill switch, an unreconciled account) with its reason."""

    intent_id: str
    accepted: bool
    client_order_id: str | None = None
    status: OrderStatus | None = None
    reason: str | None = None


class AccountView(Protocol):
    """Execution's read-only view of the account, as of its last reconciliation and private-stream event."""

    def reconciled(self) -> bool:
        """Whether the last reconciliation succeeded and nothing since has made the state uncertain."""
        ...

    def open_positions(self) -> Sequence[Position]: ...

    def open_orders(self) -> Sequence[Order]: ...

    def equity(self) -> Decimal | None:
        """Wallet equity in USDT (None until the wallet has been read)."""
        ...

    def available_balance(self) -> Decimal | None: ...

    def realized_pnl_since(self, ts_ms: int) -> Decimal:
        """Realised PnL after fees and funding of positions closed at or after `ts_ms`."""
        ...


class PreTradeCheck(Protocol):
    """One check an intent must pass before it becomes an order."""

    name: str

    async def check(self, intent: TradeIntent, account: AccountView) -> CheckVerdict: ...


class IntentSubmitter(Protocol):
    """What the decisions call: execution implements it (tests may record instead)."""

    async def submit(self, intent: TradeIntent) -> SubmitResult: ...
