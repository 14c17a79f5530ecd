"""The execution manager against the paper exchange and Postgres: intent → order → fills → position → exit."""

from __future__ import annotations

from decimal import Decimal

from exchange_sim.server.app import SimServer
from infra.db.repositories import AuditRepository, FillRepository, OrderRepository, PositionRepository
from schemas.enums import AuditAction, OrderStatus, OrderType, PositionStatus, Side, TimeInForce
from schemas.trading import TradeIntent
from tests.trading_daemon.execution.conftest import market_intent, wait_until
from trading_daemon.execution.order_ids import order_link_id
from trading_daemon.execution.runtime import ExecutionRuntime


async def test_a_market_intent_becomes_one_filled_order_a_position_and_an_exit_closes_it(
    runtime: ExecutionRuntime, pool
) -> None:
    manager, ledger = runtime.manager, runtime.ledger
    result = await manager.submit(market_intent("buy-1"))
    assert result.accepted and result.client_order_id == order_link_id("buy-1", 1)
    orders = OrderRepository(pool)

    async def filled() -> bool:
        order = await orders.get_by_client_order_id(result.client_order_id or "")
        return order is not None and order.status is OrderStatus.FILLED

    await wait_until(filled, what="the order filled")
    position = await PositionRepository(pool).get_live("BTCUSDT")
    assert position is not None and position.status is PositionStatus.OPEN
    assert position.quantity == Decimal("0.01") and position.side is Side.BUY
    fills = await FillRepository(pool).by_order(result.client_order_id or "")
    assert sum(f.quantity for f in fills) == Decimal("0.01")

    again = await manager.submit(market_intent("buy-1"))  # the same intent: the same result, no second order
    assert again == result and manager.stats.repeats == 1
    assert len(await orders.get_by_intent("buy-1")) == 1

    exit_result = await manager.submit(market_intent("exit-1", Side.SELL, reduce_only=True))
    assert exit_result.accepted

    async def closed() -> bool:
        p = await PositionRepository(pool).get(position.id or 0)
        return p is not None and p.status is PositionStatus.CLOSED

    await wait_until(closed, what="the position closed")
    final = await PositionRepository(pool).get(position.id or 0)
    assert final is not None and final.exit_price is not None and final.fees_paid > 0
    assert final.realized_pnl == sum(
        (f.closed_pnl or 0) - f.fee for f in await FillRepository(pool).find(symbol="BTCUSDT")
    )
    history = await PositionRepository(pool).status_history(position.id or 0)
    assert history == [(None, "Opening"), ("Opening", "Open"), ("Open", "Closing"), ("Closing", "Closed")]
    actions = [e.action for e in await AuditRepository(pool).by_entity("Order", result.client_order_id or "")]
    assert actions[0] is AuditAction.ORDER_CREATE and AuditAction.ORDER_STATUS in actions
    await ledger.drain_hooks()


async def test_refusals_are_audited_with_the_reason(runtime: ExecutionRuntime, pool) -> None:
    tiny = market_intent("tiny", qty="0.0001")
    result = await runtime.manager.submit(tiny)
    assert not result.accepted and result.reason is not None and "below the minimum" in result.reason
    rows = await AuditRepository(pool).by_entity("TradeIntent", "tiny")
    assert rows and rows[0].action is AuditAction.RISK_REJECT and not rows[0].success
    assert rows[0].context is not None and rows[0].context["signal"] == {
        "signal": {"type": "test", "strength": 0.9}
    }


async def test_entries_wait_for_reconciliation_but_exits_do_not(runtime: ExecutionRuntime) -> None:
    runtime.account.hold("test", "pretend the private stream is down")
    refused = await runtime.manager.submit(market_intent("while-held"))
    assert not refused.accepted and "not reconciled" in (refused.reason or "")
    exit_ = await runtime.manager.submit(market_intent("exit-held", Side.SELL, reduce_only=True))
    # An exit is let through; with no position the exchange refuses it as reduce-only with nothing to reduce.
    assert exit_.accepted and exit_.status is OrderStatus.REJECTED
    runtime.account.release("test")
    assert (await runtime.manager.submit(market_intent("while-held"))).accepted  # refusals are not cached


async def test_the_other_side_filling_before_a_resting_entry_opens_its_own_position(
    runtime: ExecutionRuntime, venue: SimServer, pool
) -> None:
    """A resting buy entry leaves the symbol's position Opening and empty; a sell filling first has nothing
    to close: the empty position ends without PnL and the sell opens a short, its fee charged once."""
    book = venue.venue.engine.books["BTCUSDT"]
    bid = book.instrument.ticks_to_price(book.best_bid() or 0)
    resting = await runtime.manager.submit(
        TradeIntent(
            intent_id="rest-buy", symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, ts=1,
            price=bid - 500, quantity=Decimal("0.01"), time_in_force=TimeInForce.GTC, source="test",
        )
    )  # fmt: skip
    assert resting.status is OrderStatus.PLACED
    positions = PositionRepository(pool)
    (opening,) = await positions.find(symbol="BTCUSDT")
    assert opening.status is PositionStatus.OPENING and opening.quantity == 0
    sell = await runtime.manager.submit(market_intent("sell-first", Side.SELL))
    assert sell.accepted

    async def short_open() -> bool:
        # The market sell may fill across several levels, one fill event each: wait for all of it.
        live = await positions.get_live("BTCUSDT")
        return (
            live is not None
            and live.side is Side.SELL
            and live.status is PositionStatus.OPEN
            and live.quantity == Decimal("0.01")
        )

    await wait_until(short_open, what="the sell opened a short of its whole quantity")
    await runtime.ledger.drain_hooks()
    superseded = await positions.get(opening.id or 0)
    assert superseded is not None and superseded.status is PositionStatus.CLOSED
    assert superseded.realized_pnl == 0 and superseded.fees_paid == 0
    assert superseded.exit_reason == "superseded: the other side filled before the entry"
    fills = [f for f in await FillRepository(pool).find(symbol="BTCUSDT")]
    short = await positions.get_live("BTCUSDT")
    assert short is not None and short.quantity == Decimal("0.01")
    assert (
        short.fees_paid == sum((f.fee for f in fills), Decimal(0)) and short.realized_pnl == -short.fees_paid
    )
    # The resting entry ending unfilled leaves the short alone.
    await runtime.manager.cancel(resting.client_order_id or "", reason="test cancel")

    async def cancelled() -> bool:
        o = await OrderRepository(pool).get_by_client_order_id(resting.client_order_id or "")
        return o is not None and o.status is OrderStatus.CANCELLED

    await wait_until(cancelled, what="the resting entry cancelled")
    await runtime.ledger.drain_hooks()
    still = await positions.get_live("BTCUSDT")
    assert still is not None and still.id == short.id and still.status is PositionStatus.OPEN


async def test_limit_order_amend_and_cancel(runtime: ExecutionRuntime, venue: SimServer, pool) -> None:
    book = venue.venue.engine.books["BTCUSDT"]
    bid = book.instrument.ticks_to_price(book.best_bid() or 0)
    intent = TradeIntent(
        intent_id="rest-1", symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, ts=1,
        price=bid - 500, quantity=Decimal("0.01"), time_in_force=TimeInForce.GTC, source="test",
    )  # fmt: skip
    result = await runtime.manager.submit(intent)
    assert result.status is OrderStatus.PLACED
    coid = result.client_order_id or ""
    await runtime.manager.amend(coid, price=bid - 600)
    orders = OrderRepository(pool)

    async def amended() -> bool:
        o = await orders.get_by_client_order_id(coid)
        return o is not None and o.price == bid - 600

    await wait_until(amended, what="the amend reported")
    await runtime.manager.cancel(coid, reason="test cancel")

    async def cancelled() -> bool:
        o = await orders.get_by_client_order_id(coid)
        return o is not None and o.status is OrderStatus.CANCELLED

    await wait_until(cancelled, what="the cancel reported")
    position = await PositionRepository(pool).find(symbol="BTCUSDT")
    assert position[0].status is PositionStatus.CLOSED and position[0].exit_reason == "entry not filled"
    events = [(e.from_status, e.to_status) for e in await orders.events(coid)]
    assert events == [
        (None, OrderStatus.PENDING),
        (OrderStatus.PENDING, OrderStatus.PLACED),
        (OrderStatus.PLACED, OrderStatus.PLACED),  # the amend
        (OrderStatus.PLACED, OrderStatus.CANCELLED),
    ]


async def test_post_only_that_would_cross_or_times_out_is_repriced_at_the_touch(
    venue: SimServer, db, pool
) -> None:
    from tests.trading_daemon.execution.conftest import make_rest, make_runtime

    rest = make_rest(venue)
    rt = make_runtime(venue, db, pool, rest, post_only_timeout_s=1.0, post_only_max_reprices=2)
    await rt.open()
    try:
        book = venue.venue.engine.books["BTCUSDT"]
        ask = book.instrument.ticks_to_price(book.best_ask() or 0)
        intent = TradeIntent(
            intent_id="maker", symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, ts=1,
            price=ask + 5, quantity=Decimal("0.01"), time_in_force=TimeInForce.POST_ONLY, source="test",
        )  # fmt: skip
        await rt.manager.submit(intent)  # crosses: the exchange cancels it, execution re-prices
        orders = OrderRepository(pool)

        async def attempts(n: int) -> bool:
            found = await orders.get_by_intent("maker")
            return len(found) >= n and found[n - 1].status is not OrderStatus.PENDING

        await wait_until(lambda: attempts(3), within=15, what="two re-prices")
        await rt.ledger.drain_hooks()
        found = await orders.get_by_intent("maker")
        assert [o.attempt for o in found] == [1, 2, 3]
        first = await orders.events(found[0].client_order_id)
        assert (
            first[-1].details is not None
            and first[-1].details["reject_reason"] == "EC_PostOnlyWillTakeLiquidity"
        )
        second = found[1]
        assert (
            second.time_in_force is TimeInForce.POST_ONLY
            and second.price is not None
            and second.price < ask + 5
        )
        assert second.status in (OrderStatus.CANCELLED, OrderStatus.FILLED)  # timed out (or filled as maker)
        assert rt.manager.stats.reprices == 2
    finally:
        await rt.close()
        await rest.close()
