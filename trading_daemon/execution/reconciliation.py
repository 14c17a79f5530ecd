"""Recovery and reconciliation: make the database agree with the exchange, and say what differed.

Runs at start, after every private-stream reconnect, every RECONCILE_INTERVAL_S and on demand. One pass:

1. **Read everything first** — open orders, positions, the wallet, executions since the newest stored fill
   (minus an overlap). A failed query fails the pass before anything is changed: a failed read is an error,
   never an empty answer, so the daemon can never conclude it is flat because a request failed.
2. **Orders** — each open order on the exchange is applied (missed reports move it forward; an order the
   database does not know is imported); each order the database holds live but the exchange does not list
   as open is looked up by orderLinkId (realtime, then history) and takes the state found. A Pending order
   the exchange has no record of is settled by the ambiguous-outcome rule (wait out the recv window, look
   again, then Failed or resent); a Placed one the exchange does not know is corrected to Cancelled.
   A state the table cannot reach (the database edited by hand) is forced to the exchange's and audited as
   a correction.
3. **Fills** missed while away are imported by execId (funding as payments), moving positions.
4. **Hanging orders** — live longer than HANGING_ORDER_TIMEOUT_MINUTES in Pending/Placed — are reported
   and, with ENABLE_HANGING_ORDER_CHECK, cancelled.
5. **Positions** are made to agree with the exchange's (size, side), each correction audited.
6. **Protection** — a position's Full TP/SL orders (quantity 0, no orderLinkId) are not orders: they are
   held in `account.protection`. The take-profit/stop-loss the daemon intended (the position's row) is
   compared with the exchange's position; one missing (removed by hand, cancelled by a cancel-all without
   a filter) or moved is set again with `/v5/position/trading-stop` and audited (`protection_corrections`).
7. The wallet is taken over; the pass is stored in `reconciliation_runs` and summarised in the audit log.

A pass is retried MAX_RECONCILIATION_RETRIES times, RECONCILIATION_RETRY_DELAY apart. Until one succeeds
the account is not reconciled and execution refuses new entries. With ENABLE_AUTO_RECOVERY off, a pass only
reads and reports.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from infra.db.repositories import FillRepository, ReconciliationRun, ReconciliationRunRepository
from infra.settings import ExecutionConfig
from schemas.enums import AuditAction, OrderStatus, PositionStatus
from schemas.trading import Fill, Order, Position
from trading_daemon.errors import Kind, classify
from trading_daemon.exchange.records import (
    BybitOrderReport,
    BybitOrderStatus,
    BybitPositionReport,
    BybitStopOrderType,
    BybitWalletBalance,
)
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.execution.account import is_position_protection
from trading_daemon.execution.ledger import HOLD as LEDGER_HOLD
from trading_daemon.execution.ledger import Ledger, report_view
from trading_daemon.execution.manager import ExecutionManager
from trading_daemon.observability.trace import trace_operation

log = structlog.get_logger(__name__)

FILL_OVERLAP_MS = 5 * 60_000  # executions are re-read this far back (the history may lag real time)
MAX_HISTORY_MS = 7 * 86_400_000 - 60_000  # Bybit's execution/list window


class ReconciliationFailed(Exception):
    """A pass could not complete (an exchange query or a write failed); nothing was concluded from it."""


@dataclass
class ReconciliationReport:
    """What one pass found and did (stored as the run's summary)."""

    trigger: str
    started_ms: int
    finished_ms: int = 0
    success: bool = False
    attempts: int = 0
    open_orders_on_exchange: int = 0
    orders_checked: int = 0
    order_corrections: list[dict[str, Any]] = field(default_factory=list)
    imported_orders: int = 0
    fills_imported: int = 0
    funding_imported: int = 0
    unknown_outcomes: dict[str, int] = field(default_factory=dict)
    hanging_orders: list[dict[str, Any]] = field(default_factory=list)
    position_corrections: list[dict[str, Any]] = field(default_factory=list)
    positions_deferred: int = 0  # a fill had just been applied: left to the next pass
    protection_on_exchange: int = 0  # the positions' waiting Full TP/SL orders (not orders of the daemon's)
    protection_corrections: list[dict[str, Any]] = field(default_factory=list)
    fsm_restored: dict[str, int] = field(default_factory=dict)
    positions_on_exchange: int = 0
    wallet_equity: str | None = None
    wallet_available: str | None = None
    error: str | None = None

    @property
    def discrepancies(self) -> int:
        return (
            len(self.order_corrections)
            + self.imported_orders
            + self.fills_imported
            + len(self.position_corrections)
            + len(self.protection_corrections)
            + sum(self.unknown_outcomes.values())
        )

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["discrepancies"] = self.discrepancies
        return out


@dataclass(frozen=True)
class _Snapshot:
    open_orders: list[BybitOrderReport]  # orders: the positions' Full TP/SL are in `protection`
    positions: list[BybitPositionReport]
    wallet: BybitWalletBalance
    executions: list[Fill]
    protection: list[BybitOrderReport]


class Reconciler:
    """Compares the database with the exchange and corrects it (see the module docstring)."""

    def __init__(
        self,
        rest: BybitRestClient,
        ledger: Ledger,
        manager: ExecutionManager,
        config: ExecutionConfig,
        *,
        account_key: str,
    ) -> None:
        self.rest = rest
        self.ledger = ledger
        self.manager = manager
        self.config = config
        self.account_key = account_key
        self.fills = FillRepository(ledger.pool)
        self.runs = ReconciliationRunRepository(ledger.pool)
        self.last: ReconciliationReport | None = None
        self._failures_at_start = 0
        self.position_quiet_ms = 2000  # a position with a stream fill this recent is corrected next pass
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        """Whether a pass (or a poll) holds the reconciler now."""
        return self._lock.locked()

    async def reconcile(self, trigger: str) -> ReconciliationReport:
        """One pass with its retries; never raises for an exchange or database failure (the report says)."""
        async with self._lock, trace_operation("reconciliation", trigger=trigger) as op:
            report = ReconciliationReport(trigger=trigger, started_ms=self.rest.http.now_ms())
            for attempt in range(1, self.config.max_reconciliation_retries + 1):
                report.attempts = attempt
                try:
                    await self._pass(report)
                except Exception as exc:
                    decision = classify(exc)
                    report.error = f"{type(exc).__name__}: {exc}"
                    log.warning("reconciliation attempt failed", attempt=attempt, error=report.error,
                                kind=decision.kind.value)  # fmt: skip
                    if attempt < self.config.max_reconciliation_retries:
                        await asyncio.sleep(self.config.reconciliation_retry_delay_s)
                    continue
                report.success, report.error = True, None
                break
            report.finished_ms = self.rest.http.now_ms()
            account = self.ledger.account
            if report.success and not self.config.auto_recovery and report.discrepancies:
                account.release("start")
                account.hold("reconciliation", f"{report.discrepancies} discrepancies left uncorrected "
                             "(ENABLE_AUTO_RECOVERY=false)")  # fmt: skip
            elif report.success:
                account.release("start")
                account.release("reconciliation")
                if self.ledger.failures == self._failures_at_start:  # no change failed since the pass began
                    account.release(LEDGER_HOLD)
            else:
                account.hold("reconciliation", f"last reconciliation failed: {report.error}")
            await self._record(report, op.trace_id)
            self.last = report
            level = "info" if report.success else "error"
            getattr(log, level)(
                "reconciliation finished", trigger=trigger, success=report.success, attempts=report.attempts,
                discrepancies=report.discrepancies, corrections=len(report.order_corrections),
                fills_imported=report.fills_imported, hanging=len(report.hanging_orders),
                positions_corrected=len(report.position_corrections), error=report.error,
            )  # fmt: skip
            return report

    async def _record(self, report: ReconciliationReport, trace_id: str | None) -> None:
        summary = report.summary()
        with contextlib.suppress(Exception):  # the database may be what failed; the log has the report
            await self.runs.add(
                ReconciliationRun(
                    account=self.account_key, trigger=report.trigger, started_ms=report.started_ms,
                    finished_ms=max(report.finished_ms, report.started_ms), success=report.success,
                    attempts=max(report.attempts, 1), summary=summary, error=report.error, trace_id=trace_id,
                )
            )  # fmt: skip
            await self.ledger.auditor.record(
                AuditAction.RECONCILIATION, "Recovery", "recovery", actor="reconciliation",
                reason=f"reconciliation ({report.trigger}): {report.discrepancies} discrepancies"
                + ("" if report.success else f"; failed: {report.error}"),
                new=summary, success=report.success, error=report.error,
            )  # fmt: skip

    async def poll(self) -> int:
        """The REST fallback while the private stream is down: open orders, live orders that left the list,
        and executions, through the ledger. No settling, no corrections, no positions: the full pass after
        the reconnect does those. Returns how many reports and fills changed something."""
        async with self._lock:
            now = self.rest.http.now_ms()
            latest = await self.fills.latest_ts()
            since = max(now - MAX_HISTORY_MS, (latest if latest is not None else now) - FILL_OVERLAP_MS)
            open_orders = await self.rest.get_open_orders(max_items=None)
            executions = await self.rest.get_executions(start_ms=since, end_ms=now + 60_000, max_items=None)
            changed = 0
            listed = set()
            for found in open_orders:
                listed.add(found.order_link_id or found.order_id)
                changed += await self.ledger.apply_report(found, source="poll") is not None
            for order in list(self.ledger.account.orders.values()):
                if order.client_order_id in listed or order.client_order_id in self.manager.inflight:
                    continue
                looked_up = await self._look_up(order)
                if looked_up is not None:
                    changed += await self.ledger.apply_report(looked_up, source="poll") is not None
            known = await self.fills.known_exec_ids([f.exec_id for f in executions])
            for fill in executions:
                if fill.exec_id not in known:
                    changed += await self.ledger.apply_fill(fill, source="poll")
            return changed

    # --- one pass -----------------------------------------------------------------------------------

    async def _pass(self, report: ReconciliationReport) -> None:
        self._failures_at_start = self.ledger.failures
        report.order_corrections.clear()
        report.hanging_orders.clear()
        report.position_corrections.clear()
        report.protection_corrections.clear()
        report.positions_deferred = 0
        snapshot = await self._read()  # everything first: a failed read changes nothing
        # Memory may be ahead of the database after a change that failed: the database is the record.
        await self.ledger.resync()
        report.open_orders_on_exchange = len(snapshot.open_orders)
        report.positions_on_exchange = sum(1 for p in snapshot.positions if p.size > 0)
        report.protection_on_exchange = len(snapshot.protection)
        account = self.ledger.account
        account.replace_protection(snapshot.protection)
        account.wallet = snapshot.wallet
        account.exchange_positions = {p.symbol: p for p in snapshot.positions}
        report.wallet_equity = str(snapshot.wallet.total_equity)
        report.wallet_available = str(snapshot.wallet.total_available_balance)
        fix = self.config.auto_recovery
        await self._orders(snapshot, report, fix=fix)
        if fix:
            await self._fills(snapshot, report)
        await self._hanging(report)
        if fix:
            await self._positions(snapshot, report)
        await self._protection(snapshot, report, fix=fix)

    async def _read(self) -> _Snapshot:
        now = self.rest.http.now_ms()
        latest = await self.fills.latest_ts()
        since = max(now - MAX_HISTORY_MS, (latest if latest is not None else 0) - FILL_OVERLAP_MS)
        open_orders = await self.rest.get_open_orders(max_items=None)
        positions = await self.rest.get_positions()
        wallet = await self.rest.get_wallet_balance()
        executions = await self.rest.get_executions(start_ms=since, end_ms=now + 60_000, max_items=None)
        orders = [o for o in open_orders if not is_position_protection(o)]
        protection = [o for o in open_orders if is_position_protection(o)]
        return _Snapshot(orders, positions, wallet, executions, protection)

    async def _orders(self, snapshot: _Snapshot, report: ReconciliationReport, *, fix: bool) -> None:
        exchange_open = {r.order_link_id or r.order_id: r for r in snapshot.open_orders}
        for coid, found in exchange_open.items():
            if coid not in self.manager.inflight:  # the submit path is answering it right now
                await self._compare(coid, found, report, fix=fix)
        pending: list[Order] = []
        for order in list(self.ledger.account.orders.values()):
            coid = order.client_order_id
            if coid in exchange_open or coid in self.manager.inflight:
                continue  # compared above, or being settled by the submit path right now
            report.orders_checked += 1
            looked_up = await self._look_up(order)
            if looked_up is not None:
                await self._compare(coid, looked_up, report, fix=fix)
            elif order.status is OrderStatus.PENDING:
                pending.append(order)
            elif fix:
                await self._correct(order, _gone(order, self.rest.http.now_ms()), "not_found", report,
                                    "the exchange has no record of an acknowledged order (cancelled elsewhere?)")  # fmt: skip
        if pending and fix:
            # Each waits out its own recv window; together, not one after the other.
            outcomes = await asyncio.gather(*(self.manager.settle_stored(o) for o in pending))
            for outcome in outcomes:
                report.unknown_outcomes[outcome] = report.unknown_outcomes.get(outcome, 0) + 1

    async def _look_up(self, order: Order) -> BybitOrderReport | None:
        """The order at the exchange, open or closed, by its exchange id when known, else by orderLinkId."""
        if order.exchange_order_id:
            return await self.rest.find_order(order.symbol, order_id=order.exchange_order_id)
        return await self.rest.find_order(order.symbol, order_link_id=order.client_order_id)

    async def _compare(
        self, coid: str, found: BybitOrderReport, report: ReconciliationReport, *, fix: bool
    ) -> None:
        before = await self.ledger.get(coid)
        if before is None:
            report.imported_orders += 1
            if fix:
                await self.ledger.apply_report(found, source="reconciliation")
            return
        if before.status is found.order_status and before.filled_quantity == found.filled_quantity:
            return
        if not fix:
            report.order_corrections.append(_mismatch(before, found, "status_mismatch", applied=False))
            return
        await self.ledger.apply_report(found, source="reconciliation")
        after = await self.ledger.get(coid)
        if (
            after is not None
            and after.status is found.order_status
            and after.filled_quantity == found.filled_quantity
        ):
            report.order_corrections.append(_mismatch(before, found, "status_mismatch", applied=True))
            await self._audit_mismatch(before, found, "status_mismatch", "missed exchange reports applied")
            return
        # The table has no edge to the exchange's state (a status edited by hand): look once more, then force.
        fresh = (
            await self.rest.find_order(before.symbol, order_link_id=coid) if found.order_link_id else found
        )
        if (
            fresh is not None
            and after is not None
            and not (after.status is fresh.order_status and after.filled_quantity == fresh.filled_quantity)
        ):
            await self._correct(
                after, fresh, "status_mismatch", report, "database state unreachable by the table"
            )

    async def _correct(
        self, order: Order, found: BybitOrderReport, issue: str, report: ReconciliationReport, why: str
    ) -> None:
        transition = await self.ledger.correct(found, issue=issue, reason=f"reconciliation: {why}")
        if transition is not None:
            report.order_corrections.append(_mismatch(order, found, issue, applied=True, forced=True))

    async def _audit_mismatch(self, order: Order, found: BybitOrderReport, issue: str, what: str) -> None:
        await self.ledger.auditor.record(
            AuditAction.RECONCILIATION, "Order", order.client_order_id, actor="reconciliation",
            reason=f"status mismatch: database {order.status}, exchange {found.status}; {what}",
            old={"status": str(order.status), "filled_quantity": str(order.filled_quantity)},
            new={"status": str(found.order_status), "filled_quantity": str(found.filled_quantity)},
            context={"issue": issue, "exchange": report_view(found)}, symbol=order.symbol, trace_id=order.trace_id,
        )  # fmt: skip

    async def _fills(self, snapshot: _Snapshot, report: ReconciliationReport) -> None:
        known = await self.fills.known_exec_ids([f.exec_id for f in snapshot.executions])
        for fill in snapshot.executions:
            if fill.exec_id in known:
                continue
            coid = fill.client_order_id or fill.exchange_order_id
            if coid and await self.ledger.get(coid) is None and fill.exchange_order_id:
                # A fill of an order the database never saw: import the order first.
                found = await self.rest.find_order(fill.symbol, order_id=fill.exchange_order_id)
                if found is not None:
                    report.imported_orders += 1
                    await self.ledger.apply_report(found, source="reconciliation")
            if await self.ledger.apply_fill(fill, source="reconciliation"):
                if fill.exec_type.value == "Funding":
                    report.funding_imported += 1
                else:
                    report.fills_imported += 1

    async def _hanging(self, report: ReconciliationReport) -> None:
        now = self.rest.http.now_ms()
        limit_ms = self.config.hanging_order_timeout_s * 1000
        for order in list(self.ledger.account.orders.values()):
            if (
                order.status not in (OrderStatus.PENDING, OrderStatus.PLACED)
                or order.client_order_id in self.manager.inflight
                or (order.signal_data or {}).get("stop_order_type")  # waits for its trigger by design
            ):
                continue
            age_ms = now - (order.updated_ms or order.created_ms)
            if age_ms <= limit_ms:
                continue
            item = {
                "client_order_id": order.client_order_id, "symbol": order.symbol, "local_status": str(order.status),
                "issue": {"type": "timeout", "minutes_in_status": round(age_ms / 60_000, 1),
                          "threshold_minutes": self.config.hanging_order_timeout_s / 60},
            }  # fmt: skip
            report.hanging_orders.append(item)
            if self.config.detailed_hanging_order_logging:
                log.error("HANGING ORDER DETECTED", **item)
            await self.ledger.auditor.record(
                AuditAction.RECONCILIATION, "Order", order.client_order_id, actor="reconciliation",
                reason=f"Hanging order detected: {order.status} for {age_ms / 60_000:.1f} min",
                context=item, symbol=order.symbol, trace_id=order.trace_id,
            )  # fmt: skip
            if self.config.hanging_order_check and order.status is OrderStatus.PLACED:
                try:
                    await self.manager.cancel(
                        order.client_order_id, reason="hanging order", actor="reconciliation"
                    )
                except Exception as exc:
                    log.warning(
                        "cancelling a hanging order failed", order=order.client_order_id, error=str(exc)
                    )
        if report.hanging_orders and not self.config.detailed_hanging_order_logging:
            log.error("hanging orders detected", count=len(report.hanging_orders))

    async def _positions(self, snapshot: _Snapshot, report: ReconciliationReport) -> None:
        exchange = {p.symbol: p for p in snapshot.positions if p.size > 0 and p.side is not None}
        account = self.ledger.account
        now = self.rest.http.now_ms()
        for symbol in sorted(set(exchange) | set(account.positions)):
            live = account.positions.get(symbol)
            seen = exchange.get(symbol)
            if live is not None and seen is not None and (live.side, live.quantity) == (seen.side, seen.size):
                continue  # they agree: no second read

            async def fresh(symbol: str = symbol) -> BybitPositionReport | None:
                found = [
                    p for p in await self.rest.get_positions(symbol) if p.size > 0 and p.side is not None
                ]
                return found[0] if found else None

            correction = await self.ledger.reconcile_position(
                symbol, fresh, now=now, quiet_ms=self.position_quiet_ms
            )
            if correction == "deferred":
                report.positions_deferred += 1
            elif isinstance(correction, dict):
                report.position_corrections.append(correction)

    # --- the positions' exchange-side take-profit and stop-loss -------------------------------------

    async def _protection(self, snapshot: _Snapshot, report: ReconciliationReport, *, fix: bool) -> None:
        """Each position's intended take-profit/stop-loss (its row) against the exchange's position; a
        missing or moved one is set again. What the snapshot suggests is confirmed by a fresh read under the
        ledger's lock (no fill is applied meanwhile), as for positions."""
        exchange = {p.symbol: p for p in snapshot.positions if p.size > 0 and p.side is not None}
        # A TP/SL firing right now has left the position's fields on the exchange: not a gap.
        firing = {
            (o.symbol, o.stop_order_type) for o in snapshot.open_orders
            if o.stop_order_type is not None and o.status is not BybitOrderStatus.UNTRIGGERED
        }  # fmt: skip
        account = self.ledger.account
        for symbol in sorted(account.positions):
            if not _protection_gaps(account.positions.get(symbol), exchange.get(symbol), firing):
                continue
            async with self.ledger.lock:
                found = [
                    p for p in await self.rest.get_positions(symbol) if p.size > 0 and p.side is not None
                ]
                live = account.positions.get(symbol)
                for kind, intended, seen in _protection_gaps(live, found[0] if found else None, firing):
                    assert live is not None
                    item = await self._restore(live, kind, intended, seen, fix=fix)
                    report.protection_corrections.append(item)

    async def _restore(
        self, live: Position, kind: str, intended: Decimal, seen: Decimal | None, *, fix: bool
    ) -> dict[str, Any]:
        issue = f"{kind}_missing" if seen is None else f"{kind}_moved"
        item: dict[str, Any] = {
            "symbol": live.symbol, "position_id": live.id, "issue": issue, "intended": str(intended),
            "exchange": None if seen is None else str(seen), "applied": False,
        }  # fmt: skip
        error: str | None = None
        if fix:
            try:
                if kind == "take_profit":
                    await self.rest.set_trading_stop(live.symbol, take_profit=intended)
                else:
                    await self.rest.set_trading_stop(live.symbol, stop_loss=intended)
                item["applied"] = True
            except Exception as exc:
                if classify(exc).kind is not Kind.REJECT:
                    raise  # the pass fails and is retried
                # Refused (the position closed meanwhile, the price already beyond it): the next pass looks again.
                error = item["error"] = f"{type(exc).__name__}: {exc}"
                log.warning("restoring a position's protection was refused", **item)
        what = "restored" if item["applied"] else ("not restored: " + (error or "ENABLE_AUTO_RECOVERY=false"))
        await self.ledger.auditor.record(
            AuditAction.RECONCILIATION, "Position", str(live.id), actor="reconciliation",
            reason=f"{kind} {intended} {'missing' if seen is None else f'moved to {seen}'} on the exchange; {what}",
            old={kind: None if seen is None else str(seen)}, new={kind: str(intended)}, context={"issue": issue},
            symbol=live.symbol, success=error is None, error=error, trace_id=live.trace_id,
        )  # fmt: skip
        return item


def _protection_gaps(
    live: Position | None,
    seen: BybitPositionReport | None,
    firing: AbstractSet[tuple[str, BybitStopOrderType | None]],
) -> list[tuple[str, Decimal, Decimal | None]]:
    """(field, intended, on the exchange) of each take-profit/stop-loss the exchange's position lacks. Only a
    position both sides agree on (side, size) is compared: the position step corrects the others first."""
    if live is None or seen is None or live.status not in (PositionStatus.OPEN, PositionStatus.CLOSING):
        return []
    if (seen.side, seen.size) != (live.side, live.quantity):
        return []
    gaps = []
    for kind, stop_type in (
        ("take_profit", BybitStopOrderType.TAKE_PROFIT),
        ("stop_loss", BybitStopOrderType.STOP_LOSS),
    ):
        intended, found = getattr(live, kind), getattr(seen, kind)
        if intended is None or found == intended or (live.symbol, stop_type) in firing:
            continue
        gaps.append((kind, intended, found))
    return gaps


def _mismatch(
    order: Order, found: BybitOrderReport, issue: str, *, applied: bool, forced: bool = False
) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "local_status": str(order.status),
        "exchange_status": str(found.status),
        "local_filled": str(order.filled_quantity),
        "exchange_filled": str(found.filled_quantity),
        "issue": issue,
        "applied": applied,
        "forced": forced,
    }


def _gone(order: Order, now: int) -> BybitOrderReport:
    """The exchange's state of an acknowledged order it has no record of: treated as cancelled."""
    return BybitOrderReport(
        order_id=order.exchange_order_id or "", order_link_id=order.client_order_id, symbol=order.symbol,
        side=order.side, order_type=order.order_type, time_in_force=order.time_in_force,
        status=BybitOrderStatus.CANCELLED, price=order.price, quantity=order.quantity,
        filled_quantity=order.filled_quantity, leaves_quantity=order.quantity - order.filled_quantity,
        avg_fill_price=order.avg_fill_price, cum_fee=order.filled_quantity * 0, reduce_only=order.reduce_only,
        reject_reason="", cancel_type="NotFoundOnExchange", created_ms=order.created_ms, updated_ms=now,
    )  # fmt: skip
