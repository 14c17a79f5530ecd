"""The ambiguous-outcome rule with the paper exchange's faults: a create executed but its answer lost, a
create lost before it executed, a slow create that arrives after the client gave up (within its recv
window: executed; beyond it: refused). Each time: exactly one order on the exchange, and the database knows
it in the exchange's state; nothing is resent before the recv window has passed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import OrderRepository
from schemas.enums import OrderStatus, OrderType, Side, TimeInForce
from schemas.trading import TradeIntent
from tests.trading_daemon.execution.conftest import (
    RECV_WINDOW_MS,
    make_rest,
    make_runtime,
    market_intent,
    wait_until,
)
from trading_daemon.execution.order_ids import order_link_id
from trading_daemon.execution.runtime import ExecutionRuntime

CREATE = "/v5/order/create"


@pytest.fixture
async def fast_timeout(venue: SimServer, db: Database, pool) -> AsyncIterator[ExecutionRuntime]:
    """Execution whose REST calls give up after 0.5 s (shorter than the late request's delay)."""
    rest = make_rest(venue, timeout_s=0.5)
    rt = make_runtime(venue, db, pool, rest)
    await rt.open()
    try:
        yield rt
    finally:
        await rt.close()
        await rest.close()


async def _exchange_orders(rt: ExecutionRuntime, intent_id: str) -> list[Any]:
    ids = {order_link_id(intent_id, a) for a in range(1, 4)}
    history = await rt.rest.get_order_history("BTCUSDT", max_items=None)
    live = await rt.rest.get_open_orders("BTCUSDT")
    return [o for o in history + live if o.order_link_id in ids]


async def _settled(rt: ExecutionRuntime, pool, coid: str, expected: OrderStatus) -> OrderStatus:
    """Wait for the order to settle in `expected` (the stream may bring the final state after the ack)."""
    orders = OrderRepository(pool)

    async def done() -> bool:
        order = await orders.get_by_client_order_id(coid)
        return order is not None and order.status is expected and coid not in rt.manager.settling

    await wait_until(done, within=15, what=f"order {coid} settled {expected}")
    order = await orders.get_by_client_order_id(coid)
    assert order is not None
    return order.status


async def test_executed_but_answer_lost_is_found_not_resent(runtime: ExecutionRuntime, admin, pool) -> None:
    await admin("POST", "/sim/faults", {"request_faults": [{"path": CREATE, "mode": "lost_reply"}]})
    result = await runtime.manager.submit(market_intent("lost-reply"))
    assert result.accepted and result.status is OrderStatus.PENDING  # outcome unknown
    assert not runtime.account.reconciled()  # no new entries while it is unsettled
    coid = order_link_id("lost-reply", 1)
    assert await _settled(runtime, pool, coid, OrderStatus.FILLED) is OrderStatus.FILLED
    on_exchange = await _exchange_orders(runtime, "lost-reply")
    assert [o.order_link_id for o in on_exchange] == [coid]
    assert on_exchange[0].order_status is OrderStatus.FILLED
    stats = runtime.manager.stats
    assert (stats.unknown_outcomes, stats.resent, stats.confirmed_absent) == (1, 0, 0)
    assert runtime.account.reconciled()


async def test_lost_create_is_resent_only_after_the_recv_window(
    runtime: ExecutionRuntime, admin, pool
) -> None:
    await admin("POST", "/sim/faults", {"request_faults": [{"path": CREATE, "mode": "lost_request"}]})
    started = runtime.rest.http.now_ms()
    result = await runtime.manager.submit(market_intent("lost-request"))
    assert result.status is OrderStatus.PENDING
    coid = order_link_id("lost-request", 1)
    assert await _settled(runtime, pool, coid, OrderStatus.FILLED) is OrderStatus.FILLED
    on_exchange = await _exchange_orders(runtime, "lost-request")
    assert [o.order_link_id for o in on_exchange] == [coid]  # the resend kept the orderLinkId
    # Nothing was sent again before the first request's recv window (and the margin) had passed.
    assert on_exchange[0].created_ms >= started + RECV_WINDOW_MS
    stats = runtime.manager.stats
    assert (stats.unknown_outcomes, stats.confirmed_absent, stats.resent) == (1, 1, 1)


async def test_slow_create_arriving_after_the_timeout_is_found(
    fast_timeout: ExecutionRuntime, admin, pool
) -> None:
    """Delayed 1 s, timed out after 0.5 s, executed at its late arrival (within its 1.5 s window)."""
    fault = {"path": CREATE, "mode": "late_request", "delay_ms": 1000}
    await admin("POST", "/sim/faults", {"request_faults": [fault]})
    rt = fast_timeout
    book_bid = (
        Decimal(str(rt.market.touch("BTCUSDT")[0])) if rt.market and rt.market.touch("BTCUSDT") else None
    )
    intent = TradeIntent(
        intent_id="late-1", symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, ts=int(time.time() * 1000),
        price=(book_bid or Decimal(60000)) - 1000, quantity=Decimal("0.01"), time_in_force=TimeInForce.GTC,
        source="test",
    )  # fmt: skip
    result = await rt.manager.submit(intent)
    assert result.status is OrderStatus.PENDING
    coid = order_link_id("late-1", 1)
    assert await _settled(rt, pool, coid, OrderStatus.PLACED) is OrderStatus.PLACED
    on_exchange = await _exchange_orders(rt, "late-1")
    assert [o.order_link_id for o in on_exchange] == [coid]
    assert rt.manager.stats.resent == 0 and rt.manager.stats.confirmed_absent == 0


async def test_slow_create_arriving_after_its_recv_window_is_refused_then_resent(
    fast_timeout: ExecutionRuntime, admin, pool
) -> None:
    fault = {"path": CREATE, "mode": "late_request", "delay_ms": RECV_WINDOW_MS + 500}
    await admin("POST", "/sim/faults", {"request_faults": [fault]})
    rt = fast_timeout
    result = await rt.manager.submit(market_intent("late-2"))
    assert result.status is OrderStatus.PENDING
    coid = order_link_id("late-2", 1)
    assert await _settled(rt, pool, coid, OrderStatus.FILLED) is OrderStatus.FILLED
    assert [o.order_link_id for o in await _exchange_orders(rt, "late-2")] == [coid]
    assert (rt.manager.stats.confirmed_absent, rt.manager.stats.resent) == (1, 1)


async def test_an_old_intent_confirmed_absent_is_failed_not_resent(
    runtime: ExecutionRuntime, admin, pool
) -> None:
    await admin("POST", "/sim/faults", {"request_faults": [{"path": CREATE, "mode": "lost_request"}]})
    old = market_intent("stale-intent")
    old = TradeIntent(**{**{f: getattr(old, f) for f in old.__struct_fields__}, "ts": old.ts - 60_000})
    await runtime.manager.submit(old)
    coid = order_link_id("stale-intent", 1)
    assert await _settled(runtime, pool, coid, OrderStatus.FAILED) is OrderStatus.FAILED
    assert await _exchange_orders(runtime, "stale-intent") == []
    events = await OrderRepository(pool).events(coid)
    assert events[-1].to_status is OrderStatus.FAILED and "confirmed by orderLinkId" in (
        events[-1].reason or ""
    )
