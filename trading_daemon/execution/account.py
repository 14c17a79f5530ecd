"""The account as execution knows it: the `AccountView` the pre-trade checks read.

`reconciled()` is true only while nothing makes the state uncertain. Each reason for doubt is a named
*hold* (`"start"` until the first reconciliation succeeds, `"private_stream"` while the private stream is
down, `"reconciliation"` after a failed pass, `"account_lock"` while the single-trader lock is not held);
execution refuses new entries while any hold is set (exits stay allowed). Nothing here ever concludes the
account is flat because a query failed: positions and the wallet only change when the exchange or a fill
says so.

`protection` holds the positions' exchange-side take-profit and stop-loss orders (Full mode: no orderLinkId,
quantity 0 — the whole position when fired) by symbol and exchange order id. They are the position's
`take_profit`/`stop_loss`, not orders of the daemon's, until one fires with a real size (see
`is_position_protection`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from schemas.enums import PositionStatus
from schemas.trading import Order, Position
from trading_daemon.exchange.records import (
    BybitOrderReport,
    BybitOrderStatus,
    BybitPositionReport,
    BybitStopOrderType,
    BybitWalletBalance,
)

_FULL_PROTECTION = frozenset(
    {BybitStopOrderType.TAKE_PROFIT, BybitStopOrderType.STOP_LOSS, BybitStopOrderType.TRAILING_STOP}
)


def is_position_protection(report: BybitOrderReport) -> bool:
    """A Full-mode TP/SL (or trailing stop) of a position that has not fired with a size: quantity 0 until
    it fires (Untriggered, Triggered, Deactivated). Once placed with a real size it is an order."""
    return report.stop_order_type in _FULL_PROTECTION and not report.quantity


class AccountState:
    """Implements `contracts.AccountView` over the ledger's live orders and positions."""

    def __init__(self) -> None:
        self.holds: dict[str, str] = {"start": "not reconciled since start"}
        self.orders: dict[str, Order] = {}  # live orders by orderLinkId
        self.positions: dict[str, Position] = {}  # live positions by symbol
        self.exchange_positions: dict[str, BybitPositionReport] = {}
        self.wallet: BybitWalletBalance | None = None
        self.closed: list[tuple[int, Decimal]] = []  # (closed_ms, net realised PnL) of closed positions
        # symbol → exchange order id → the waiting Full TP/SL order (`is_position_protection`)
        self.protection: dict[str, dict[str, BybitOrderReport]] = {}

    # --- AccountView --------------------------------------------------------------------------------

    def reconciled(self) -> bool:
        return not self.holds

    def open_positions(self) -> Sequence[Position]:
        return [p for p in self.positions.values() if p.status is not PositionStatus.CLOSED]

    def open_orders(self) -> Sequence[Order]:
        return list(self.orders.values())

    def equity(self) -> Decimal | None:
        return None if self.wallet is None else self.wallet.total_equity

    def available_balance(self) -> Decimal | None:
        return None if self.wallet is None else self.wallet.total_available_balance

    def realized_pnl_since(self, ts_ms: int) -> Decimal:
        return sum((pnl for closed_ms, pnl in self.closed if closed_ms >= ts_ms), Decimal(0))

    # --- the positions' exchange-side protection ----------------------------------------------------

    def note_protection(self, report: BybitOrderReport) -> None:
        """Hold a waiting Full TP/SL order; forget it once it is deactivated, fired or gone."""
        held = self.protection.setdefault(report.symbol, {})
        seen = held.get(report.order_id)
        if seen is not None and report.updated_ms < seen.updated_ms:
            return  # a late report of an older state
        if report.status is BybitOrderStatus.UNTRIGGERED:
            held[report.order_id] = report
        else:
            held.pop(report.order_id, None)
        if not held:
            self.protection.pop(report.symbol, None)

    def replace_protection(self, reports: Sequence[BybitOrderReport]) -> None:
        """Take over the waiting Full TP/SL orders listed by the exchange (reconciliation's read)."""
        self.protection = {}
        for report in reports:
            if report.status is BybitOrderStatus.UNTRIGGERED:
                self.protection.setdefault(report.symbol, {})[report.order_id] = report

    # --- holds --------------------------------------------------------------------------------------

    def hold(self, name: str, why: str) -> None:
        """Make the state uncertain for `why` until `release(name)`."""
        self.holds[name] = why

    def release(self, name: str) -> None:
        self.holds.pop(name, None)

    def why_not_reconciled(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.holds.items())
