"""Single trader (the account's advisory lock) and the kill switch."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import AuditRepository, OrderRepository
from schemas.enums import AuditAction, OrderStatus, OrderType, Side, TimeInForce
from schemas.trading import TradeIntent
from tests.trading_daemon.execution.conftest import make_rest, make_runtime, market_intent, wait_until
from trading_daemon.execution.account_lock import AccountLock, AccountLocked
from trading_daemon.execution.runtime import ExecutionRuntime


async def test_a_second_holder_waits_or_is_refused_naming_the_first(db: Database) -> None:
    first = AccountLock(db, "venue#key", holder="depthcharge daemon pid=111 host=alpha")
    second = AccountLock(db, "venue#key", holder="depthcharge daemon pid=222 host=beta")
    other_account = AccountLock(db, "venue#other")
    await first.acquire()
    try:
        with pytest.raises(
            AccountLocked, match=r"traded by another daemon: depthcharge daemon pid=111 host=alpha"
        ):
            await second.acquire(wait_s=0)
        await other_account.acquire()  # another account is another lock
        await other_account.release()
        waiter = asyncio.create_task(second.acquire(wait_s=5, poll_s=0.1))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        await first.release()
        await asyncio.wait_for(waiter, 3)
        assert second.held
    finally:
        await first.release()
        await second.release()


async def test_a_lost_lock_is_reported_and_taken_back(db: Database) -> None:
    lock = AccountLock(db, "venue#key")
    await lock.acquire()
    events: list[str] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        lock.watch(stop, on_lost=lambda: events.append("lost"), on_regained=lambda: events.append("regained"),
                   interval_s=0.1)
    )  # fmt: skip
    try:
        with db.connect(autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'depthcharge daemon%'"
            )
        for _ in range(50):
            if events == ["lost", "regained"]:
                break
            await asyncio.sleep(0.1)
        assert events == ["lost", "regained"] and await lock.alive()
    finally:
        stop.set()
        await watcher
        await lock.release()


async def test_kill_switch_cancels_flattens_halts_and_survives_a_restart(
    runtime: ExecutionRuntime, venue: SimServer, db: Database, pool
) -> None:
    entry = await runtime.manager.submit(market_intent("k-entry", qty="0.02"))
    orders = OrderRepository(pool)
    await wait_until(
        lambda: _status_is(orders, entry.client_order_id, OrderStatus.FILLED), what="entry filled"
    )
    book = venue.venue.engine.books["BTCUSDT"]
    bid = book.instrument.ticks_to_price(book.best_bid() or 0)
    resting = await runtime.manager.submit(
        TradeIntent(intent_id="k-rest", symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, ts=0,
                    price=bid - 400, quantity=Decimal("0.01"), time_in_force=TimeInForce.GTC, source="test")
    )  # fmt: skip
    report = await runtime.kill_switch.engage(reason="drill", actor="tester", flatten=True)
    assert report.cancelled == [resting.client_order_id] and not report.errors
    assert [f["symbol"] for f in report.flattened] == ["BTCUSDT"] and report.flattened[0]["accepted"]

    async def flat() -> bool:
        return not [p for p in await runtime.rest.get_positions() if p.size > 0]

    await wait_until(flat, what="the exchange flat")
    await wait_until(
        lambda: _status_is(orders, resting.client_order_id, OrderStatus.CANCELLED), what="cancelled"
    )
    refused = await runtime.manager.submit(market_intent("k-after"))
    assert not refused.accepted and "trading halted: drill" in (refused.reason or "")
    rows = await AuditRepository(pool).by_entity("Account", runtime.account_key)
    stops = [r for r in rows if r.action is AuditAction.EMERGENCY_STOP]
    assert stops[0].actor == "tester" and stops[0].reason == "drill" and stops[-1].success

    # A restart keeps the halt until it is released.
    await runtime.close()
    rest = make_rest(venue)
    again = make_runtime(venue, db, pool, rest)
    await again.open()
    try:
        assert again.kill_switch.engaged
        assert not (await again.manager.submit(market_intent("k-restart"))).accepted
        await again.kill_switch.release(reason="drill over", actor="tester")
        assert (await again.manager.submit(market_intent("k-restart"))).accepted
    finally:
        await again.close()
        await rest.close()
        await runtime.lock.release()


async def _status_is(orders: OrderRepository, coid: str | None, status: OrderStatus) -> bool:
    order = await orders.get_by_client_order_id(coid or "")
    return order is not None and order.status is status
