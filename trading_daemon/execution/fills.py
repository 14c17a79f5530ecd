"""Fills and positions: executions become fills exactly once (by `execId`), fills move positions.

A funding settlement (`execType` Funding) is a payment, never a fill: it is stored with its execId (so it is
counted once) and charged to the symbol's live position as a fee, but it changes no order and no position
size. Every other execution (Trade, and the venue's AdlTrade/BustTrade) is a fill: stored once, then applied
to the symbol's live position through its state machine — one live position per symbol in one-way mode.

The gross PnL of a closing fill is the venue's own (`execPnl`, kept as `Fill.closed_pnl`) when it sent one,
else the state machine's at the average entry price; positions store realised PnL net of fees and funding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool

from infra.db.errors import VersionConflict
from infra.db.repositories import FillRepository, OrderRepository, PositionRepository
from infra.db.repositories._base import AsyncConn
from schemas.enums import AuditAction, ExecType, PositionStatus, Side
from schemas.trading import Fill, Order, Position
from trading_daemon.exchange.records import BybitPositionReport
from trading_daemon.execution.account import AccountState
from trading_daemon.execution.audit import Auditor
from trading_daemon.execution.position_fsm import PositionStateMachine
from trading_daemon.execution.registry import FSMRegistry

log = structlog.get_logger(__name__)
ZERO = Decimal(0)


@dataclass
class FillStats:
    fills: int = 0
    duplicates: int = 0
    funding: int = 0
    positions_opened: int = 0
    positions_closed: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


def position_view(p: Position) -> dict[str, Any]:
    """What an audit row shows of a position."""
    return {
        "status": str(p.status),
        "side": str(p.side),
        "quantity": str(p.quantity),
        "entry_price": str(p.entry_price),
        "realized_pnl": str(p.realized_pnl),
        "fees_paid": str(p.fees_paid),
        "stop_loss": None if p.stop_loss is None else str(p.stop_loss),
        "take_profit": None if p.take_profit is None else str(p.take_profit),
    }


class FillsAndPositions:
    """Applies executions to the fills table and the positions; the caller holds the ledger's lock."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        registry: FSMRegistry,
        account: AccountState,
        auditor: Auditor,
    ) -> None:
        self.pool = pool
        self.fills = FillRepository(pool)
        self.positions = PositionRepository(pool)
        self.orders = OrderRepository(pool)
        self.registry = registry
        self.account = account
        self.auditor = auditor
        self.stats = FillStats()
        self._last_fill: dict[str, float] = {}  # symbol → monotonic time of the last fill applied

    def ms_since_fill(self, symbol: str) -> float:
        """Milliseconds since a stream fill of `symbol` was last applied (infinite when none was)."""
        last = self._last_fill.get(symbol)
        return float("inf") if last is None else (time.monotonic() - last) * 1000

    async def apply(self, fill: Fill, order: Order | None, *, source: str) -> bool:
        """Store and apply one execution; False when its execId was stored before (nothing changes)."""
        if order is not None:
            # An order without an orderLinkId (the exchange's TP/SL, one placed by hand) is keyed by its
            # exchange id: its fills carry that key too, so they are found by the order's client_order_id.
            fill = msgspec.structs.replace(
                fill, order_id=order.id, client_order_id=order.client_order_id,
                trace_id=fill.trace_id or order.trace_id,
            )  # fmt: skip
        async with self.pool.connection() as conn, conn.transaction():
            if not await self.fills.add(fill, conn=conn):
                self.stats.duplicates += 1
                return False
            if fill.exec_type is ExecType.FUNDING:
                await self._funding(fill, conn)
            else:
                await self._trade(fill, order, source, conn)
        self.stats.by_source[source] = self.stats.by_source.get(source, 0) + 1
        return True

    # --- funding ------------------------------------------------------------------------------------

    async def _funding(self, fill: Fill, conn: AsyncConn) -> None:
        self.stats.funding += 1
        live = self.account.positions.get(fill.symbol)
        new_value: dict[str, Any] = {"amount": str(fill.fee), "position_size": str(fill.quantity)}
        if live is not None:
            updated = await self._update(
                live,
                conn,
                fees_paid=live.fees_paid + fill.fee,
                realized_pnl=live.realized_pnl - fill.fee,
            )
            new_value["position"] = position_view(updated)
        await self.auditor.record(
            AuditAction.FILL,
            "FundingPayment",
            fill.exec_id,
            reason="funding settlement: a payment, not a fill (no order, no size change)",
            new=new_value,
            context={"mark_price": str(fill.price), "exec_type": str(fill.exec_type)},
            symbol=fill.symbol,
            trace_id=live.trace_id if live is not None else None,
            conn=conn,
        )

    # --- trades -------------------------------------------------------------------------------------

    async def _trade(self, fill: Fill, order: Order | None, source: str, conn: AsyncConn) -> None:
        self.stats.fills += 1
        if source == "stream":  # what reconciliation imports precedes its own fresh reads
            self._last_fill[fill.symbol] = time.monotonic()
        context: dict[str, Any] = {"source": source}
        if order is not None and order.signal_data is not None:
            context["signal"] = order.signal_data
        await self.auditor.record(
            AuditAction.FILL,
            "Fill",
            fill.exec_id,
            reason=f"{fill.side} {fill.quantity} {fill.symbol} at {fill.price}"
            + ("" if order is not None else " (order placed outside the daemon)"),
            new={
                "order": fill.client_order_id or fill.exchange_order_id,
                "side": str(fill.side),
                "price": str(fill.price),
                "quantity": str(fill.quantity),
                "fee": str(fill.fee),
                "is_maker": fill.is_maker,
                "exec_type": str(fill.exec_type),
            },
            context=context,
            symbol=fill.symbol,
            trace_id=fill.trace_id,
            conn=conn,
        )
        live = self.account.positions.get(fill.symbol)
        if live is None:
            await self._open(fill, fill.quantity, order, conn)
            return
        if live.status is PositionStatus.OPENING and live.quantity == 0 and fill.side is not live.side:
            # The entry has not filled and the other side filled first (another intent, or an order placed
            # by hand): there is nothing to close. The empty position ends without PnL and the fill opens
            # its own, so its fee is charged once.
            await self.set_status(
                fill.symbol, PositionStatus.CLOSED, conn=conn, closed_ms=fill.ts,
                reason=f"superseded by fill {fill.exec_id}: the other side filled before the entry",
                exit_reason="superseded: the other side filled before the entry",
            )  # fmt: skip
            await self._open(fill, fill.quantity, order, conn)
            return
        fsm = self.registry.position_for(live)
        outcome = fsm.apply_fill(fill.exec_id, fill.side, fill.quantity, fill.price, ts=fill.ts)
        if not outcome.applied:
            return
        gross = outcome.realized_pnl
        if outcome.closed_quantity and fill.closed_pnl is not None:
            gross = fill.closed_pnl  # the venue's figure: it holds even when our entry average drifted
        changes: dict[str, Any] = {
            "quantity": fsm.size,
            "entry_price": fsm.entry_price if fsm.size else live.entry_price,
            "fees_paid": live.fees_paid + fill.fee,
            "realized_pnl": live.realized_pnl + gross - fill.fee,
        }
        assert outcome.transition is not None
        to = outcome.transition.to_status
        if to is not PositionStatus.CLOSED:
            changes.update(_protection_of(order, live))
        if to is PositionStatus.CLOSED:
            changes.update(exit_price=fill.price, closed_ms=fill.ts)
            changes["exit_reason"] = (order.reason if order is not None else None) or "closed on the exchange"
        elif to is PositionStatus.OPEN and live.opened_ms is None:
            changes["opened_ms"] = fill.ts
        updated = await self._update(live, conn, status=to, reason=f"fill {fill.exec_id}", **changes)
        action = {
            PositionStatus.CLOSED: AuditAction.POSITION_CLOSE,
            PositionStatus.OPEN: AuditAction.POSITION_OPEN
            if live.status is PositionStatus.OPENING
            else AuditAction.POSITION_UPDATE,
        }.get(to, AuditAction.POSITION_UPDATE)
        await self.auditor.record(
            action,
            "Position",
            str(updated.id),
            reason=str(changes.get("exit_reason") or f"fill {fill.exec_id}"),
            old=position_view(live),
            new=position_view(updated),
            context=_signal_context(order),
            symbol=fill.symbol,
            trace_id=fill.trace_id,
            conn=conn,
        )
        if live.status is PositionStatus.OPENING and to is not PositionStatus.OPENING:
            self.stats.positions_opened += 1
        if to is PositionStatus.CLOSED:
            self.stats.positions_closed += 1
            self.account.closed.append((fill.ts, updated.realized_pnl))
            self.account.positions.pop(fill.symbol, None)
            self.registry.unregister_position_fsm(updated.id or 0)
            if outcome.remainder > 0:
                # A reversal: the rest of the fill opens the opposite position.
                await self._open(fill, outcome.remainder, order, conn)

    async def _open(self, fill: Fill, quantity: Decimal, order: Order | None, conn: AsyncConn) -> Position:
        protection = _protection_of(order, None)
        position = Position(
            symbol=fill.symbol,
            side=fill.side,
            quantity=quantity,
            entry_price=fill.price,
            status=PositionStatus.OPEN,
            entry_reason=(order.reason if order is not None else None)
            or "fill of an order placed outside the daemon",
            signal_data=order.signal_data if order is not None else None,
            trace_id=fill.trace_id,
            opened_ms=fill.ts,
            take_profit=protection.get("take_profit"),
            stop_loss=protection.get("stop_loss"),
        )
        created = await self.positions.create(position, conn=conn)
        created = await self._update(created, conn, fees_paid=fill.fee, realized_pnl=-fill.fee)
        self._register(created, fill.exec_id)
        self.stats.positions_opened += 1
        await self.auditor.record(
            AuditAction.POSITION_OPEN,
            "Position",
            str(created.id),
            reason=position.entry_reason or "",
            new=position_view(created),
            context=_signal_context(order),
            symbol=fill.symbol,
            trace_id=fill.trace_id,
            conn=conn,
        )
        return created

    def _register(self, position: Position, exec_id: str | None = None) -> PositionStateMachine:
        self.account.positions[position.symbol] = position
        fsm = self.registry.position_for(position)
        if exec_id is not None:
            fsm.applied_exec_ids.add(exec_id)
        return fsm

    async def _update(
        self, position: Position, conn: AsyncConn, *, status: PositionStatus | None = None, reason: str | None = None,
        **changes: Any,
    ) -> Position:  # fmt: skip
        """Write `changes` at the cached version; on a conflict (another writer), re-read once and retry."""
        assert position.id is not None
        for attempt in (1, 2):
            try:
                updated = await self.positions.update(
                    position.id,
                    expected_version=position.version,
                    status=status if status is not position.status else None,
                    reason=reason,
                    trace_id=position.trace_id,
                    conn=conn,
                    **changes,
                )
            except VersionConflict:
                fresh = await self.positions.get(position.id, conn=conn)
                if attempt == 2 or fresh is None:
                    raise
                log.warning("position version conflict, retrying at the stored version", position=position.id)
                position = fresh
                continue
            if updated.status is not PositionStatus.CLOSED:
                self.account.positions[updated.symbol] = updated
            return updated
        raise AssertionError("unreachable")

    # --- position status decided by the daemon -------------------------------------------------------

    async def set_status(
        self, symbol: str, status: PositionStatus, *, reason: str, conn: AsyncConn, context: dict[str, Any] | None = None,
        **changes: Any,
    ) -> Position | None:  # fmt: skip
        """Move the symbol's live position to `status` (exit written, exit ended, entry ended unfilled)."""
        live = self.account.positions.get(symbol)
        if live is None or live.status is status:
            return live
        fsm = self.registry.position_for(live)
        fsm.transition_to(status, ts=0, reason=reason)
        updated = await self._update(live, conn, status=status, reason=reason, **changes)
        action = (
            AuditAction.POSITION_CLOSE if status is PositionStatus.CLOSED else AuditAction.POSITION_UPDATE
        )
        await self.auditor.record(
            action, "Position", str(updated.id), reason=reason, old=position_view(live), new=position_view(updated),
            context=context, symbol=symbol, trace_id=live.trace_id, conn=conn,
        )  # fmt: skip
        if status is PositionStatus.CLOSED:
            self.account.positions.pop(symbol, None)
            self.registry.unregister_position_fsm(updated.id or 0)
        return updated

    async def open_for_entry(self, symbol: str, side: Side, *, reason: str | None, signal: Any, trace_id: str | None,
                             conn: AsyncConn, take_profit: Decimal | None = None,
                             stop_loss: Decimal | None = None) -> Position:  # fmt: skip
        """The live position an entry order belongs to: the symbol's, or a new one `Opening` with the entry's
        intended take-profit/stop-loss (an existing one takes them over when the entry fills: `_trade`)."""
        live = self.account.positions.get(symbol)
        if live is not None:
            return live
        created = await self.positions.create(
            Position(
                symbol=symbol, side=side, quantity=ZERO, entry_price=ZERO, status=PositionStatus.OPENING,
                entry_reason=reason, signal_data=signal, trace_id=trace_id, take_profit=take_profit,
                stop_loss=stop_loss,
            ),
            conn=conn,
        )  # fmt: skip
        self._register(created)
        return created

    async def reconcile(
        self, symbol: str, exchange: BybitPositionReport | None, *, working_entry: bool, now: int
    ) -> dict[str, Any] | None:
        """Make the symbol's live position agree with the exchange's (`None`: flat there, as a query that
        *succeeded* says). Returns the correction made, or None when they agree."""
        live = self.account.positions.get(symbol)
        ex_side = exchange.side if exchange is not None and exchange.size > 0 else None
        ex_size = exchange.size if ex_side is not None and exchange is not None else ZERO
        if live is None and ex_side is None:
            return None
        opening = live is not None and live.status is PositionStatus.OPENING and live.quantity == 0
        if opening and ex_side is None and working_entry:
            return None  # an entry still working: Opening is right
        if live is not None and ex_side is live.side and ex_size == live.quantity:
            return None
        old = position_view(live) if live is not None else None
        async with self.pool.connection() as conn, conn.transaction():
            if live is not None and (ex_side is None or ex_side is not live.side):
                await self._update(
                    live, conn, status=PositionStatus.CLOSED, reason="reconciliation", quantity=ZERO,
                    closed_ms=now, exit_reason="reconciliation: " + ("flat" if ex_side is None else "reversed")
                    + " on the exchange",
                )  # fmt: skip
                self.account.closed.append((now, live.realized_pnl))
                self.account.positions.pop(symbol, None)
                self.registry.unregister_position_fsm(live.id or 0)
                live = None
            if ex_side is not None and exchange is not None:
                entry = exchange.entry_price or ZERO
                if live is None:
                    created = await self.positions.create(
                        Position(
                            symbol=symbol, side=ex_side, quantity=ex_size, entry_price=entry,
                            status=PositionStatus.OPEN, entry_reason="found on the exchange by reconciliation",
                            opened_ms=now, take_profit=exchange.take_profit, stop_loss=exchange.stop_loss,
                        ),
                        conn=conn,
                    )  # fmt: skip
                    self._register(created)
                    new = position_view(created)
                else:
                    status = PositionStatus.OPEN if live.status is PositionStatus.OPENING else None
                    updated = await self._update(
                        live,
                        conn,
                        status=status,
                        reason="reconciliation",
                        quantity=ex_size,
                        entry_price=entry,
                    )
                    fsm = self.registry.position_for(updated)
                    fsm.size, fsm.entry_price = ex_size, entry
                    if status is not None:
                        fsm.status = status
                    new = position_view(updated)
            else:
                new = {"status": str(PositionStatus.CLOSED), "quantity": "0"}
            correction = {
                "symbol": symbol,
                "database": old,
                "exchange": None if exchange is None else {"side": str(ex_side), "size": str(ex_size),
                                                           "entry_price": str(exchange.entry_price)},
                "now": new,
            }  # fmt: skip
            await self.auditor.record(
                AuditAction.RECONCILIATION, "Position", symbol, old=old, new=new, actor="reconciliation",
                reason="position corrected to the exchange's", context={"exchange": correction["exchange"]},
                symbol=symbol, conn=conn,
            )  # fmt: skip
        return correction


def _protection_of(order: Order | None, live: Position | None) -> dict[str, Decimal]:
    """The take-profit/stop-loss a fill of `order` gives its position: the exchange sets an entry's attached
    TP/SL on the position when it fills (Full mode), replacing the position's; other fills change nothing."""
    if order is None or order.reduce_only:
        return {}
    wanted = {"take_profit": order.take_profit, "stop_loss": order.stop_loss}
    return {k: v for k, v in wanted.items() if v is not None and (live is None or getattr(live, k) != v)}


def _signal_context(order: Order | None) -> dict[str, Any] | None:
    if order is None or order.signal_data is None:
        return None
    return {"signal": order.signal_data, "order": order.client_order_id}
