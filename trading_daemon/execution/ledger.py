"""The ledger: the one place that changes orders, fills and positions.

Every change goes the same way, one at a time under one lock: ask the state machine whether the event moves
the order forward (`order_fsm.OrderStateMachine.classify`), write the transition and its audit row in one
transaction at the order's version (optimistic locking: a `VersionConflict` re-reads and retries once), and
only then apply it to the in-memory state machine and the account view. So the database, the registry and
the account agree after every event, and a crash between two events loses nothing that was acknowledged.

The private stream, the REST poller, reconciliation and the submit path all feed it the same reports.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool

from infra.db.errors import VersionConflict
from infra.db.repositories import OrderRepository, PositionRepository
from infra.db.repositories._base import AsyncConn
from schemas.enums import AuditAction, OrderStatus, PositionStatus, TimeInForce
from schemas.times import now_ms
from schemas.trading import Fill, Order
from trading_daemon.errors import Kind, classify
from trading_daemon.exchange.records import BybitOrderReport, BybitPositionReport
from trading_daemon.execution.account import AccountState, is_position_protection
from trading_daemon.execution.audit import Auditor
from trading_daemon.execution.fills import FillsAndPositions
from trading_daemon.execution.order_fsm import (
    InvalidTransition,
    OrderReport,
    OrderStateMachine,
    Transition,
    Verdict,
)
from trading_daemon.execution.registry import FSMRegistry

log = structlog.get_logger(__name__)

HOLD = "ledger"  # the account hold while memory may be ahead of the database

OrderEndHook = Callable[[Order, BybitOrderReport | None], Coroutine[Any, Any, None]]


@dataclass
class LedgerStats:
    transitions: int = 0
    duplicates: int = 0
    stale: int = 0
    conflicts: int = 0
    imported_orders: int = 0
    corrections: int = 0


def order_view(order: Order) -> dict[str, Any]:
    """What an audit row shows of an order."""
    return {
        "status": str(order.status),
        "symbol": order.symbol,
        "side": str(order.side),
        "order_type": str(order.order_type),
        "time_in_force": str(order.time_in_force),
        "quantity": str(order.quantity),
        "price": None if order.price is None else str(order.price),
        "filled_quantity": str(order.filled_quantity),
        "avg_fill_price": None if order.avg_fill_price is None else str(order.avg_fill_price),
        "reduce_only": order.reduce_only,
        "exchange_order_id": order.exchange_order_id,
        "take_profit": None if order.take_profit is None else str(order.take_profit),
        "stop_loss": None if order.stop_loss is None else str(order.stop_loss),
    }


def report_view(report: BybitOrderReport) -> dict[str, Any]:
    """The exchange's side of a discrepancy, for the audit row."""
    return {
        "order_id": report.order_id,
        "order_link_id": report.order_link_id,
        "status": str(report.status),
        "quantity": str(report.quantity),
        "filled_quantity": str(report.filled_quantity),
        "price": None if report.price is None else str(report.price),
        "cancel_type": report.cancel_type,
        "reject_reason": report.reject_reason,
        "updated_ms": report.updated_ms,
    }


class Ledger:
    """Orders, fills and positions in the database, the FSM registry and the account view, kept in step."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        auditor: Auditor,
        registry: FSMRegistry | None = None,
        account: AccountState | None = None,
    ) -> None:
        self.pool = pool
        self.orders = OrderRepository(pool)
        self.positions = PositionRepository(pool)
        self.registry = registry or FSMRegistry()
        self.account = account or AccountState()
        self.auditor = auditor
        self.book = FillsAndPositions(pool, registry=self.registry, account=self.account, auditor=auditor)
        self.lock = asyncio.Lock()
        self.stats = LedgerStats()
        self.on_order_end: list[OrderEndHook] = []
        self.failures = 0  # changes that raised (the database went away mid-way)
        self._synced_failures = 0
        # Fills whose change failed for a reason that passes (the database went away), in arrival order:
        # the reload replays them before anything else, so that later fills land on the position in order.
        self._unwritten: list[tuple[Fill, str]] = []
        self._since_ms: int | None = None
        self.restore_history = True
        self.on_failure: Callable[[], None] | None = None
        self._hook_tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def _mutating(
        self, fill: Fill | None = None, source: str = "", *, reload: bool = True
    ) -> AsyncIterator[None]:
        """The lock, and what a failed change leaves behind: memory (state machines, the account view) may
        be ahead of a transaction that rolled back. So the next change first reloads the ledger from the
        database (the record) and replays the fills that could not be written, and entries stay held until
        a reconciliation has compared the reloaded ledger with the exchange (`resync`).

        Applying a later fill on top of memory that was ahead would write a position that already counts
        the lost fill; importing that fill afterwards would count it twice (docs/execution.md)."""
        async with self.lock:
            try:
                if reload:
                    await self._reload_if_behind()
                yield
            except Exception as exc:
                self.failures += 1
                if fill is not None and classify(exc).kind is Kind.RETRY and not self._is_unwritten(fill):
                    self._unwritten.append((fill, source))
                self.account.hold(HOLD, f"a change could not be written ({type(exc).__name__}: {exc})")
                if self.on_failure is not None:
                    self.on_failure()  # the tracker reconciles until the hold can be lifted
                raise

    def _is_unwritten(self, fill: Fill) -> bool:
        return any(f.exec_id == fill.exec_id for f, _ in self._unwritten)

    @property
    def behind(self) -> bool:
        """Whether a change failed since the ledger was last reloaded from the database."""
        return self.failures != self._synced_failures

    async def resync(self) -> bool:
        """Reload live orders and positions and their state machines from the database (the record) if a
        change failed since the last reload, and replay the fills that could not be written. Returns
        whether anything had to be reloaded."""
        async with self._mutating(reload=False):
            return await self._reload_if_behind()

    async def _reload_if_behind(self) -> bool:
        """Under the lock: the reload `_mutating` and `resync` do."""
        if not self.behind:
            return False
        seen = self.failures
        if self.restore_history:
            await self.registry.restore(self.orders, self.positions)
        else:
            self.registry.clear_all()
        await self._load()
        replayed = 0
        for fill, source in list(self._unwritten):
            # A fill stored meanwhile (reconciliation imported it) is a duplicate here and changes nothing.
            replayed += await self._apply_fill(fill, source=f"{source}, replayed")
        self._unwritten.clear()
        self._synced_failures = seen
        log.info("ledger reloaded from the database after a failed change", failures=seen, replayed=replayed)
        return True

    def _hook_done(self, task: asyncio.Task[None]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("order end hook failed", error=repr(task.exception()))

    async def drain_hooks(self) -> None:
        """Wait for the order-end hooks started so far (tests, shutdown)."""
        while self._hook_tasks:
            await asyncio.gather(*list(self._hook_tasks), return_exceptions=True)

    async def load(self, *, since_ms: int | None = None) -> dict[str, int]:
        """Read live orders and positions (and the positions closed since `since_ms`) into memory."""
        self._since_ms = since_ms
        async with self.lock:
            return await self._load()

    async def _load(self) -> dict[str, int]:
        since_ms = self._since_ms
        self.account.orders = {o.client_order_id: o for o in await self.orders.list_live()}
        self.account.positions = {p.symbol: p for p in await self.positions.list_live()}
        for order in self.account.orders.values():
            self.registry.order_for(order)
        for position in self.account.positions.values():
            self.registry.position_for(position)
        if since_ms is not None:
            closed = await self.positions.find(status=PositionStatus.CLOSED, limit=10_000)
            self.account.closed = [
                (p.closed_ms, p.realized_pnl) for p in closed if p.closed_ms and p.closed_ms >= since_ms
            ]
        return {"orders": len(self.account.orders), "positions": len(self.account.positions)}

    async def get(self, client_order_id: str) -> Order | None:
        """The order by orderLinkId, from memory when it is live."""
        live = self.account.orders.get(client_order_id)
        return live if live is not None else await self.orders.get_by_client_order_id(client_order_id)

    # --- orders the daemon writes -------------------------------------------------------------------

    async def create_order(self, order: Order, *, reason: str, context: dict[str, Any] | None) -> Order:
        """Write a new Pending order (before anything is sent), its position's side of it, and the audit row."""
        async with self._mutating(), self.pool.connection() as conn, conn.transaction():
            position = None
            if order.reduce_only:
                position = await self.book.set_status(
                    order.symbol, PositionStatus.CLOSING, reason=f"exit order {order.client_order_id} written",
                    conn=conn, context=context,
                ) if self._can_close(order.symbol) else self.account.positions.get(order.symbol)  # fmt: skip
            else:
                position = await self.book.open_for_entry(
                    order.symbol, order.side, reason=order.reason, signal=order.signal_data,
                    trace_id=order.trace_id, take_profit=order.take_profit, stop_loss=order.stop_loss, conn=conn,
                )  # fmt: skip
            if position is not None:
                order = _with(order, position_id=position.id)
            created = await self.orders.create(order, conn=conn)
            await self.auditor.record(
                AuditAction.ORDER_CREATE, "Order", created.client_order_id, reason=reason,
                new=order_view(created), context=context, symbol=created.symbol, trace_id=created.trace_id,
                conn=conn,
            )  # fmt: skip
        self.account.orders[created.client_order_id] = created
        self.registry.register_order_fsm(
            created.client_order_id,
            OrderStateMachine(created.client_order_id, created.status, created.quantity),
        )
        return created

    def _can_close(self, symbol: str) -> bool:
        live = self.account.positions.get(symbol)
        return live is not None and live.status is PositionStatus.OPEN

    async def mark_sent(self, client_order_id: str, sent_ms: int) -> None:
        await self.orders.mark_sent(client_order_id, sent_ms)
        live = self.account.orders.get(client_order_id)
        if live is not None:
            self.account.orders[client_order_id] = _with(live, sent_ms=sent_ms)

    async def command(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        reason: str,
        error: str | None = None,
        details: dict[str, Any] | None = None,
        audit_action: AuditAction = AuditAction.ORDER_STATUS,
        success: bool = True,
    ) -> Order | None:
        """A transition the daemon decides (Rejected, Failed); raises `InvalidTransition` off the table.

        Returns None (and changes nothing) when the order already moved on: a report overtook the command.
        """
        async with self._mutating():
            order = await self.get(client_order_id)
            if order is None:
                raise InvalidTransition("order", client_order_id, "unknown", status, "no such order")
            fsm = self.registry.order_for(order)
            if not fsm.can_transition_to(status):
                if order.status.is_terminal or order.status is not OrderStatus.PENDING:
                    log.info("order moved on before the command", order=client_order_id, status=str(order.status),
                             command=str(status))  # fmt: skip
                    return None
                raise InvalidTransition("order", client_order_id, order.status, status)
            return await self._write(
                order, fsm, status, reason=reason, filled=order.filled_quantity, error=error,
                details=details, audit_action=audit_action, success=success,
                apply=lambda: fsm.transition_to(status, ts=now_ms(), reason=reason),
            )  # fmt: skip

    # --- what the exchange says ---------------------------------------------------------------------

    async def apply_report(self, report: BybitOrderReport, *, source: str) -> Transition | None:
        """Apply one exchange report of an order; imports orders the database does not know."""
        async with self._mutating():
            return await self._apply_report(report, source=source)

    async def _apply_report(self, report: BybitOrderReport, *, source: str) -> Transition | None:
        if is_position_protection(report):
            # The position's own TP/SL, quantity 0 until it fires: protection, not an order (yet).
            self.account.note_protection(report)
            return None
        coid = report.order_link_id or report.order_id
        order = await self.get(coid)
        if order is None:
            await self._import(report, source)
            return None
        fsm = self.registry.order_for(order)
        state = OrderReport(
            status=report.order_status,
            filled_quantity=report.filled_quantity,
            avg_fill_price=report.avg_fill_price,
            exchange_order_id=report.order_id,
            ts=report.updated_ms,
            source=source,
        )
        try:
            verdict = fsm.classify(state)
        except InvalidTransition as exc:
            self.stats.conflicts += 1
            log.error("exchange report off the order table", order=coid, error=str(exc), source=source)
            return None
        if verdict is Verdict.DUPLICATE:
            self.stats.duplicates += 1
            await self._amended(order, report)
            return None
        if verdict is Verdict.STALE:
            self.stats.stale += 1
            return None
        if verdict is Verdict.CONFLICT:
            self.stats.conflicts += 1
            log.warning(
                "exchange report contradicts the order's end", order=coid, ours=str(order.status),
                exchange=str(report.status), source=source,
            )  # fmt: skip
            return None
        details = {"source": source, "exchange_status": str(report.status)}
        if report.cancel_type:
            details["cancel_type"] = report.cancel_type
        if report.reject_reason and report.reject_reason != "EC_NoError":
            details["reject_reason"] = report.reject_reason
        order = await self._amended(order, report)
        return await self._write_report(order, fsm, state, report, details)

    async def _write_report(
        self, order: Order, fsm: OrderStateMachine, state: OrderReport, report: BybitOrderReport,
        details: dict[str, Any], *, correction: bool = False, reason: str | None = None,
    ) -> Transition | None:  # fmt: skip
        transitions: list[Transition] = []

        def apply() -> Transition:
            if correction:
                step = fsm.correct(
                    state.status, ts=state.ts, reason=reason or "", filled_quantity=state.filled_quantity
                )
            else:
                applied = fsm.apply(state)
                assert applied is not None
                step = applied
            transitions.append(step)
            return step

        await self._write(
            order, fsm, state.status, reason=reason or f"exchange {state.source}: {report.status}",
            filled=state.filled_quantity, avg=state.avg_fill_price, exchange_order_id=report.order_id,
            details=details, apply=apply, report=report,
            audit_action=AuditAction.RECONCILIATION if correction else AuditAction.ORDER_STATUS,
        )  # fmt: skip
        return transitions[0] if transitions else None

    async def _write(
        self,
        order: Order,
        fsm: OrderStateMachine,
        status: OrderStatus,
        *,
        reason: str,
        filled: Decimal,
        apply: Callable[[], Transition],
        avg: Decimal | None = None,
        exchange_order_id: str | None = None,
        error: str | None = None,
        details: dict[str, Any] | None = None,
        audit_action: AuditAction = AuditAction.ORDER_STATUS,
        success: bool = True,
        report: BybitOrderReport | None = None,
    ) -> Order:
        """Persist a transition with its audit row, then apply it in memory and run the end hooks."""
        updated: Order | None = None
        for attempt in (1, 2):
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    updated = await self.orders.update_status(
                        order.client_order_id, status, expected_version=order.version, reason=reason,
                        trace_id=order.trace_id, exchange_order_id=exchange_order_id, filled_quantity=filled,
                        avg_fill_price=avg, error_message=error, details=details, conn=conn,
                    )  # fmt: skip
                    await self.auditor.record(
                        audit_action, "Order", order.client_order_id, reason=reason, old=order_view(order),
                        new=order_view(updated), context=_order_context(order, details), symbol=order.symbol,
                        success=success, error=error, trace_id=order.trace_id, conn=conn,
                    )  # fmt: skip
                    if status.is_terminal:
                        await self._order_ended(updated, conn)
                break
            except VersionConflict:
                fresh = await self.orders.get_by_client_order_id(order.client_order_id)
                if attempt == 2 or fresh is None:
                    raise
                log.warning(
                    "order version conflict: re-read", order=order.client_order_id, version=fresh.version
                )
                order = fresh
        assert updated is not None
        apply()
        self.stats.transitions += 1
        if status.is_terminal:
            self.account.orders.pop(order.client_order_id, None)
            # Off the lock: a hook may place the next order (a PostOnly re-price), which takes it again.
            for hook in self.on_order_end:
                task = asyncio.get_running_loop().create_task(hook(updated, report))
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_done)
        else:
            self.account.orders[order.client_order_id] = updated
        return updated

    async def _order_ended(self, order: Order, conn: AsyncConn) -> None:
        """The position's side of an order's end: an entry that filled nothing, an exit that did not close."""
        position = self.account.positions.get(order.symbol)
        if position is None:
            return
        # The exchange's conditional and Partial TP/SL orders wait for a trigger: they are no exit in progress.
        others = [
            o for o in self.account.orders.values()
            if o.symbol == order.symbol and o.client_order_id != order.client_order_id
            and not (o.signal_data or {}).get("stop_order_type")
        ]  # fmt: skip
        if position.status is PositionStatus.OPENING and position.quantity == 0:
            if not any(not o.reduce_only for o in others):
                await self.book.set_status(
                    order.symbol, PositionStatus.CLOSED, conn=conn, closed_ms=now_ms(),
                    reason=f"entry order {order.client_order_id} ended {order.status} without a fill",
                    exit_reason="entry not filled",
                )  # fmt: skip
        elif (
            position.status is PositionStatus.CLOSING
            and position.quantity > 0
            and order.reduce_only
            and not any(o.reduce_only for o in others)
        ):
            await self.book.set_status(
                order.symbol, PositionStatus.OPEN, conn=conn,
                reason=f"exit order {order.client_order_id} ended {order.status}; {position.quantity} left",
            )  # fmt: skip

    async def _amended(self, order: Order, report: BybitOrderReport) -> Order:
        """Take over a new quantity or price the exchange reports for a working order (an amend)."""
        if order.status.is_terminal or report.order_status.is_terminal:
            return order
        price = report.price if report.price is not None and report.price != order.price else None
        qty = report.quantity if report.quantity != order.quantity else None
        if price is None and qty is None:
            return order
        async with self.pool.connection() as conn, conn.transaction():
            amended = await self.orders.amend(
                order.client_order_id, expected_version=order.version, quantity=qty, price=price,
                reason="amended on the exchange", trace_id=order.trace_id, conn=conn,
            )  # fmt: skip
            await self.auditor.record(
                AuditAction.ORDER_AMEND, "Order", order.client_order_id, reason="amend confirmed by the exchange",
                old=order_view(order), new=order_view(amended), symbol=order.symbol, trace_id=order.trace_id,
                conn=conn,
            )  # fmt: skip
        fsm = self.registry.order_for(amended)
        fsm.quantity = amended.quantity
        self.account.orders[order.client_order_id] = amended
        return amended

    async def _import(self, report: BybitOrderReport, source: str) -> None:
        """An order the database does not know (placed by hand, by another tool, or the exchange's own TP/SL
        of a position once it has a size): record it as it is. A reduce-only one belongs to the symbol's
        live position; a conditional or TP/SL one says which kind it is (`signal_data.stop_order_type`)."""
        coid = report.order_link_id or report.order_id
        live = self.account.positions.get(report.symbol)
        position_id = live.id if live is not None and report.reduce_only else None
        signal: dict[str, Any] | None = None
        if report.stop_order_type is not None:
            signal = {"stop_order_type": str(report.stop_order_type)}
            if report.trigger_price is not None:
                signal["trigger_price"] = str(report.trigger_price)
        order = Order(
            client_order_id=coid,
            exchange_order_id=report.order_id,
            symbol=report.symbol,
            side=report.side,
            order_type=report.order_type,
            quantity=report.quantity,
            price=report.price,
            time_in_force=report.time_in_force or TimeInForce.GTC,
            reduce_only=report.reduce_only,
            status=report.order_status,
            filled_quantity=report.filled_quantity,
            avg_fill_price=report.avg_fill_price,
            reason=_imported_reason(report, source),
            position_id=position_id,
            signal_data=signal,
        )
        async with self.pool.connection() as conn, conn.transaction():
            created = await self.orders.create(order, conn=conn)
            await self.auditor.record(
                AuditAction.RECONCILIATION, "Order", coid, reason=f"order unknown to the database imported ({source})",
                new=order_view(created), context={"exchange": report_view(report)}, symbol=report.symbol,
                actor="reconciliation", conn=conn,
            )  # fmt: skip
        self.stats.imported_orders += 1
        if not created.status.is_terminal:
            self.account.orders[coid] = created
            self.registry.order_for(created)

    async def correct(self, report: BybitOrderReport, *, issue: str, reason: str) -> Transition | None:
        """Reconciliation: force the order to the exchange's state when the table has no edge for it."""
        async with self._mutating():
            coid = report.order_link_id or report.order_id
            order = await self.get(coid)
            if order is None:
                await self._import(report, "reconciliation")
                return None
            fsm = self.registry.order_for(order)
            state = OrderReport(
                status=report.order_status, filled_quantity=report.filled_quantity,
                avg_fill_price=report.avg_fill_price, exchange_order_id=report.order_id,
                ts=report.updated_ms, source="reconciliation",
            )  # fmt: skip
            if order.status is state.status and order.filled_quantity == state.filled_quantity:
                return None
            self.stats.corrections += 1
            details = {"correction": True, "issue": issue, "exchange": report_view(report)}
            return await self._write_report(
                order, fsm, state, report, details, correction=True, reason=reason
            )

    async def reconcile_position(
        self,
        symbol: str,
        fresh: Callable[[], Coroutine[Any, Any, BybitPositionReport | None]],
        *,
        now: int,
        quiet_ms: int = 2000,
    ) -> dict[str, Any] | str | None:
        """Reconciliation: make the symbol's position the exchange's (`fresh()` reads it; None: flat there).

        Positions move by fills, a correction sets absolute values: the two must not cross. So the
        exchange's position is read again under the lock (no fill can be applied meanwhile), and a symbol
        with a fill applied in the last `quiet_ms` is left to the next pass ("deferred"): a fill still on its
        way would otherwise be counted on top of a size that already includes it."""
        async with self._mutating():
            if self.book.ms_since_fill(symbol) < quiet_ms:
                return "deferred"
            exchange = await fresh()
            working_entry = any(
                o.symbol == symbol and not o.reduce_only for o in self.account.orders.values()
            )
            return await self.book.reconcile(symbol, exchange, working_entry=working_entry, now=now)

    # --- fills ------------------------------------------------------------------------------------

    async def apply_fill(self, fill: Fill, *, source: str) -> bool:
        """Store and apply one execution; False when its execId was already stored."""
        async with self._mutating(fill, source):
            return await self._apply_fill(fill, source=source)

    async def _apply_fill(self, fill: Fill, *, source: str) -> bool:
        coid = fill.client_order_id or fill.exchange_order_id
        order = await self.get(coid) if coid else None
        return await self.book.apply(fill, order, source=source)


def _with(order: Order, **changes: Any) -> Order:
    return msgspec.structs.replace(order, **changes)


def _order_context(order: Order, details: dict[str, Any] | None) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if order.signal_data is not None:
        context["signal"] = order.signal_data
    if order.intent_id is not None:
        context["intent_id"] = order.intent_id
    if details:
        context["details"] = details
    return context


def _imported_reason(report: BybitOrderReport, source: str) -> str:
    """Why an order the daemon did not write exists: the position's TP/SL (or a conditional order) fired
    on the exchange, or it was placed by hand."""
    if report.stop_order_type is not None:
        return f"{report.stop_order_type} triggered on the exchange (found by {source})"
    return f"placed outside the daemon (found by {source})"
