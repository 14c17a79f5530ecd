"""Trading: signals, balance, positions, risk, execution statistics, the orders and the operator's controls
(close an order, close a position, the kill switch), each control audited with the user who took it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from infra.db.repositories.fills import FillRepository
from infra.db.repositories.orders import LIVE_STATUSES, SORTABLE, OrderRepository
from infra.db.repositories.positions import PositionRepository
from infra.db.repositories.signals import SignalRepository
from schemas.enums import OrderStatus, Side
from schemas.trading import Order
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.deps import Daemon, Trader, Viewer
from trading_daemon.api.models import (
    Balance,
    CloseResult,
    KillSwitchBody,
    KillSwitchResult,
    OrderDetail,
    OrderEventOut,
    OrdersPage,
    OrderStats,
    PositionOut,
    ReasonBody,
    SignalOut,
)
from trading_daemon.api.views import fill_out, mark, order_out, pct, pnl, position_out, signal_out

router = APIRouter(prefix="/api/trading", tags=["trading"])
DAY_MS = 86_400_000
CLOSE_CONFIRM_S = 5.0  # how long a close waits for the exchange to confirm the cancel
Symbol = Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,20}USDT$", description="e.g. BTCUSDT")]


@router.get(
    "/signals", response_model=list[SignalOut], summary="Recent signals of the strategies and decisions"
)
async def signals(
    ctx: Daemon,
    _: Viewer,
    symbol: Symbol = None,
    source: Annotated[
        str | None, Query(pattern=r"^[\w.:-]{1,40}$", description="strategy, `consensus` or `decision`")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SignalOut]:
    rows = await SignalRepository(ctx.pool).recent(symbol=symbol, source=source, limit=limit)
    return [signal_out(s) for s in rows]


@router.get(
    "/balance", response_model=Balance, summary="The account's balance as last read from the exchange"
)
async def balance(ctx: Daemon, _: Viewer) -> Balance:
    execution = ctx.require_execution()
    account = execution.account
    wallet = account.wallet
    if wallet is None:  # not read yet: read it now rather than answer with nothing
        wallet = await execution.rest.get_wallet_balance()
        account.wallet = wallet
    upl = sum(
        (p for p in (pnl(x.side, x.quantity, x.entry_price, mark(ctx, x.symbol)) for x in account.open_positions())
         if p is not None),
        Decimal(0),
    )  # fmt: skip
    return Balance(
        equity=wallet.total_equity,
        available=wallet.total_available_balance,
        wallet_balance=wallet.total_wallet_balance,
        unrealized_pnl=upl,
        realized_pnl_today=account.realized_pnl_since(ctx.exchange_now_ms() // DAY_MS * DAY_MS),
        updated_ms=ctx.exchange_now_ms(),
    )


@router.get(
    "/positions", response_model=list[PositionOut], summary="Open positions, marked to the book's mid"
)
async def positions(ctx: Daemon, _: Viewer) -> list[PositionOut]:
    account = ctx.require_execution().account
    return [position_out(ctx, p) for p in account.open_positions()]


@router.get("/risk-status", summary="Risk limits, exposure, daily PnL and the health halts")
async def risk_status(ctx: Daemon, _: Viewer) -> dict[str, Any]:
    decisions = ctx.require_decisions()
    state: dict[str, Any] = decisions.risk.state(decisions.account)
    return state


@router.get("/execution-stats", summary="Execution's counters, holds and last reconciliation")
async def execution_stats(ctx: Daemon, _: Viewer) -> dict[str, Any]:
    return ctx.require_execution().summary()


@router.get("/orders", response_model=OrdersPage, summary="Orders with filters, sorting and paging")
async def orders(
    ctx: Daemon,
    _: Viewer,
    symbol: Symbol = None,
    side: Side | None = None,
    status: Annotated[list[OrderStatus] | None, Query(description="one or more statuses")] = None,
    active: Annotated[bool, Query(description="only orders that may still work on the exchange")] = False,
    strategy: Annotated[str | None, Query(pattern=r"^[\w.:-]{1,40}$")] = None,
    sort: Annotated[Literal[tuple(SORTABLE)], Query()] = "created",  # type: ignore[valid-type]
    direction: Literal["asc", "desc"] = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> OrdersPage:
    statuses = list(status or [])
    if active:  # the live statuses, or those of the asked ones that are live
        statuses = [s for s in (statuses or LIVE_STATUSES) if s in LIVE_STATUSES]
        if not statuses:  # only terminal statuses asked for: no active order can match
            empty = OrderStats(total=0, active=0, filled=0, cancelled=0, rejected=0, failed=0)
            return OrdersPage(items=[], total=0, page=page, page_size=page_size, stats=empty)
    result = await OrderRepository(ctx.pool).page(
        symbol=symbol, side=side, statuses=statuses or None, source=strategy, sort=sort,
        descending=direction == "desc", limit=page_size, offset=(page - 1) * page_size,
    )  # fmt: skip
    counts = result.by_status
    live_count = sum(counts.get(str(s), 0) for s in LIVE_STATUSES)
    return OrdersPage(
        items=[order_out(o) for o in result.orders],
        total=result.total,
        page=page,
        page_size=page_size,
        stats=OrderStats(
            total=result.total,
            active=live_count,
            filled=counts.get(str(OrderStatus.FILLED), 0),
            cancelled=counts.get(str(OrderStatus.CANCELLED), 0),
            rejected=counts.get(str(OrderStatus.REJECTED), 0),
            failed=counts.get(str(OrderStatus.FAILED), 0),
        ),
    )


async def _order(ctx: DaemonContext, client_order_id: str) -> Order:
    """The order from execution's memory while it is live, else as stored (the ledger falls back itself)."""
    if ctx.execution is not None:
        order = await ctx.execution.ledger.get(client_order_id)
    else:
        order = await OrderRepository(ctx.pool).get_by_client_order_id(client_order_id)
    if order is None:
        raise HTTPException(404, f"no order {client_order_id!r}")
    return order


@router.get(
    "/orders/{client_order_id}", response_model=OrderDetail, summary="One order with fills and live PnL"
)
async def order_detail(ctx: Daemon, _: Viewer, client_order_id: str) -> OrderDetail:
    order = await _order(ctx, client_order_id)
    fills = await FillRepository(ctx.pool).by_order(client_order_id)
    events = await OrderRepository(ctx.pool).events(client_order_id)
    position = None
    if order.position_id is not None:
        position = await PositionRepository(ctx.pool).get(order.position_id)
    price = mark(ctx, order.symbol)
    live_pnl = pnl(order.side, order.filled_quantity, order.avg_fill_price, price)
    return OrderDetail(
        order=order_out(order),
        fills=[fill_out(f) for f in fills],
        events=[OrderEventOut.model_validate(e, from_attributes=True) for e in events],
        position=position_out(ctx, position) if position is not None else None,
        mark_price=price,
        live_pnl=live_pnl,
        live_pnl_pct=pct(live_pnl, order.avg_fill_price, order.filled_quantity),
    )


@router.post(
    "/orders/{client_order_id}/close",
    response_model=CloseResult,
    summary="Close an order: cancel it while it works, else close the position it opened",
    responses={404: {"description": "Unknown order"}, 409: {"description": "Nothing left to close"}},
)
async def close_order(
    ctx: Daemon, user: Trader, client_order_id: str, body: ReasonBody | None = None
) -> CloseResult:
    execution = ctx.require_execution()
    order = await _order(ctx, client_order_id)
    reason = f"{body.reason if body is not None else 'closed from the API'} (by {user.username})"
    actor = f"user:{user.username}"
    if not order.status.is_terminal:
        await execution.manager.cancel(client_order_id, reason=reason, actor=actor)
        final = await _settled(ctx, client_order_id)
        confirmed = final.status.is_terminal
        return CloseResult(
            client_order_id=client_order_id, accepted=True, status=str(final.status),
            message=f"the exchange confirmed: {final.status}" if confirmed
            else f"cancel sent; the exchange has not confirmed within {CLOSE_CONFIRM_S:g} s (still {final.status})",
        )  # fmt: skip
    live = execution.account.positions.get(order.symbol)
    if order.filled_quantity > 0 and live is not None and live.id == order.position_id and live.quantity > 0:
        return await _close_position(ctx, order.symbol, reason, actor)
    raise HTTPException(
        409, f"order {client_order_id} is {order.status} and its position is not open: nothing to close"
    )


async def _settled(ctx: DaemonContext, client_order_id: str) -> Order:
    """The order once the exchange has confirmed a terminal state, or as it stands after the wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_CONFIRM_S
    order = await _order(ctx, client_order_id)
    while not order.status.is_terminal and loop.time() < deadline:
        await asyncio.sleep(0.05)
        order = await _order(ctx, client_order_id)
    return order


async def _close_position(ctx: DaemonContext, symbol: str, reason: str, actor: str) -> CloseResult:
    result = await ctx.require_execution().manager.close_position(symbol, reason=reason, source=actor)
    if not result.accepted:
        raise HTTPException(409, result.reason or f"{symbol}: the close was refused")
    final = await _settled(ctx, result.client_order_id) if result.client_order_id else None
    status = str(final.status) if final is not None else str(result.status)
    return CloseResult(
        client_order_id=result.client_order_id, accepted=True, status=status,
        message=f"reduce-only market order {result.client_order_id}: {status}",
    )  # fmt: skip


@router.post(
    "/positions/{symbol}/close",
    response_model=CloseResult,
    summary="Close a position at market (reduce-only)",
    responses={409: {"description": "No position on the exchange"}},
)
async def close_position(
    ctx: Daemon, user: Trader, symbol: str, body: ReasonBody | None = None
) -> CloseResult:
    ctx.require_symbol(symbol)
    reason = f"{body.reason if body is not None else 'closed from the API'} (by {user.username})"
    return await _close_position(ctx, symbol, reason, f"user:{user.username}")


@router.post("/kill-switch", response_model=KillSwitchResult, summary="Halt entries and cancel every order")
async def engage_kill_switch(ctx: Daemon, user: Trader, body: KillSwitchBody) -> KillSwitchResult:
    switch = ctx.require_execution().kill_switch
    report = await switch.engage(
        reason=f"{body.reason} (by {user.username})", actor=f"user:{user.username}", flatten=body.flatten
    )
    return KillSwitchResult(
        engaged=True, reason=report.reason, cancelled=report.cancelled, flattened=report.flattened,
        errors=report.errors,
    )  # fmt: skip


@router.delete("/kill-switch", response_model=KillSwitchResult, summary="Release the kill switch")
async def release_kill_switch(ctx: Daemon, user: Trader, reason: Annotated[str, Query(min_length=1, max_length=200)]
                              ) -> KillSwitchResult:  # fmt: skip
    switch = ctx.require_execution().kill_switch
    if not switch.engaged:
        raise HTTPException(409, "the kill switch is not engaged")
    await switch.release(reason=f"{reason} (by {user.username})", actor=f"user:{user.username}")
    return KillSwitchResult(engaged=False, reason=None)
