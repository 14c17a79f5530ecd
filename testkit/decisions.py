"""Stand-ins for execution when the decisions are tested or benchmarked on their own.

`RecordingSubmitter` implements `IntentSubmitter` by recording every intent (and, when asked, running the
pre-trade checks first, as execution does); `LedgerAccount` is an `AccountView` over positions and orders
held in memory, which a test sets as the scenario needs. Execution's own account replaces both in the
daemon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from schemas.enums import OrderStatus
from schemas.trading import Order, Position, TradeIntent
from trading_daemon.execution.contracts import AccountView, CheckVerdict, PreTradeCheck, SubmitResult


@dataclass
class LedgerAccount:
    """An `AccountView` whose state the test writes."""

    equity_usdt: Decimal | None = Decimal(10_000)
    available_usdt: Decimal | None = None  # None: the equity
    positions: list[Position] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    realized_today: Decimal = Decimal(0)
    is_reconciled: bool = True

    def reconciled(self) -> bool:
        return self.is_reconciled

    def open_positions(self) -> Sequence[Position]:
        return [p for p in self.positions if p.quantity > 0]

    def open_orders(self) -> Sequence[Order]:
        return [o for o in self.orders if not o.status.is_terminal]

    def equity(self) -> Decimal | None:
        return self.equity_usdt

    def available_balance(self) -> Decimal | None:
        return self.available_usdt if self.available_usdt is not None else self.equity_usdt

    def realized_pnl_since(self, ts_ms: int) -> Decimal:
        return self.realized_today


@dataclass
class RecordingSubmitter:
    """Records intents; with `checks`, refuses what a check refuses (as execution would), else accepts.

    With `account` set, an accepted entry becomes an open order of that account, so the next checks see it.
    """

    checks: Sequence[PreTradeCheck] = ()
    account: AccountView | None = None
    ledger: LedgerAccount | None = None
    intents: list[TradeIntent] = field(default_factory=list)
    verdicts: list[CheckVerdict] = field(default_factory=list)

    async def submit(self, intent: TradeIntent) -> SubmitResult:
        for check in self.checks:
            assert self.account is not None, "RecordingSubmitter: checks need an account"
            verdict = await check.check(intent, self.account)
            self.verdicts.append(verdict)
            if not verdict.approved:
                return SubmitResult(intent.intent_id, False, reason=verdict.reason)
            intent = verdict.intent
        self.intents.append(intent)
        coid = f"rec-{len(self.intents)}"
        if self.ledger is not None and not intent.reduce_only:
            price = intent.price or Decimal(str((intent.context or {}).get("reference_price", "1")))
            quantity = (
                intent.quantity if intent.quantity is not None else (intent.notional or Decimal(0)) / price
            )
            self.ledger.orders.append(
                Order(
                    client_order_id=coid,
                    symbol=intent.symbol,
                    side=intent.side,
                    order_type=intent.order_type,
                    quantity=quantity,
                    price=intent.price,
                    status=OrderStatus.PLACED,
                )
            )
        return SubmitResult(intent.intent_id, True, client_order_id=coid, status=OrderStatus.PLACED)
