from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from infra.db.errors import DuplicateKey, NotFound, VersionConflict
from infra.db.repositories import OrderRepository
from schemas.enums import OrderStatus, OrderType, Side
from schemas.trading import Order


def _order(coid: str = "dc-1", **kw: object) -> Order:
    fields: dict[str, object] = dict(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.001"),
        price=Decimal("64000.10"),
        signal_data={"type": "imbalance", "strength": 0.8},
        reason="imbalance buy",
        trace_id="trace-1",
    )
    fields.update(kw)
    return Order(**fields)  # type: ignore[arg-type]


async def test_create_and_get_round_trip_exact_decimals(pool) -> None:
    repo = OrderRepository(pool)
    created = await repo.create(_order(quantity=Decimal("0.123456789012345678")))
    assert created.id is not None and created.version == 1 and created.status is OrderStatus.PENDING
    got = await repo.get_by_client_order_id("dc-1")
    assert got is not None
    assert got.quantity == Decimal("0.123456789012345678")
    assert got.price == Decimal("64000.10")
    assert got.signal_data == {"type": "imbalance", "strength": 0.8}
    assert got.created_ms > 0
    assert await repo.get_by_client_order_id("missing") is None


async def test_duplicate_client_order_id_is_named(pool) -> None:
    repo = OrderRepository(pool)
    await repo.create(_order())
    with pytest.raises(DuplicateKey, match="'dc-1' already exists"):
        await repo.create(_order())


async def test_update_status_bumps_version_and_records_event(pool) -> None:
    repo = OrderRepository(pool)
    await repo.create(_order())
    placed = await repo.update_status(
        "dc-1",
        OrderStatus.PLACED,
        expected_version=1,
        exchange_order_id="ex-9",
        reason="ack",
        trace_id="trace-1",
    )
    assert placed.version == 2 and placed.status is OrderStatus.PLACED and placed.exchange_order_id == "ex-9"
    filled = await repo.update_status(
        "dc-1",
        OrderStatus.FILLED,
        expected_version=2,
        filled_quantity=Decimal("0.001"),
        avg_fill_price=Decimal("64000.05"),
    )
    assert filled.filled_quantity == Decimal("0.001") and filled.avg_fill_price == Decimal("64000.05")
    events = await repo.events("dc-1")
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, OrderStatus.PENDING),
        (OrderStatus.PENDING, OrderStatus.PLACED),
        (OrderStatus.PLACED, OrderStatus.FILLED),
    ]
    assert events[1].reason == "ack" and events[1].trace_id == "trace-1"


async def test_stale_version_raises_version_conflict(pool) -> None:
    repo = OrderRepository(pool)
    await repo.create(_order())
    await repo.update_status("dc-1", OrderStatus.PLACED, expected_version=1)
    with pytest.raises(VersionConflict, match="expected version 1, found version 2") as info:
        await repo.update_status("dc-1", OrderStatus.CANCELLED, expected_version=1)
    assert info.value.actual == 2
    with pytest.raises(NotFound):
        await repo.update_status("nope", OrderStatus.PLACED, expected_version=1)


async def test_two_concurrent_updaters_exactly_one_wins(pool) -> None:
    repo = OrderRepository(pool)
    await repo.create(_order())
    # Both read version 1; the first holds its row lock while the second's UPDATE waits on it.
    async with pool.connection() as first, first.transaction():
        winner = await repo.update_status("dc-1", OrderStatus.PLACED, expected_version=1, conn=first)
        loser = asyncio.create_task(repo.update_status("dc-1", OrderStatus.REJECTED, expected_version=1))
        await asyncio.sleep(0.3)
        assert not loser.done(), "the second updater must wait for the first's row lock"
    with pytest.raises(VersionConflict):
        await loser
    assert winner.version == 2
    stored = await repo.get_by_client_order_id("dc-1")
    assert stored is not None and stored.status is OrderStatus.PLACED and stored.version == 2


async def test_many_concurrent_updaters_one_winner(pool) -> None:
    repo = OrderRepository(pool)
    await repo.create(_order())
    results = await asyncio.gather(
        *(
            repo.update_status("dc-1", s, expected_version=1)
            for s in (OrderStatus.PLACED, OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.CANCELLED)
        ),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, Order)]
    conflicts = [r for r in results if isinstance(r, VersionConflict)]
    assert len(wins) == 1 and len(conflicts) == 3
    assert len(await repo.events("dc-1")) == 2


async def test_list_filters(pool) -> None:
    repo = OrderRepository(pool)
    await repo.create(_order("a"))
    await repo.create(_order("b", symbol="ETHUSDT"))
    await repo.create(_order("c", order_type=OrderType.MARKET, price=None, side=Side.SELL))
    await repo.update_status("b", OrderStatus.PLACED, expected_version=1)
    await repo.update_status("c", OrderStatus.FILLED, expected_version=1)
    assert {o.client_order_id for o in await repo.find(symbol="BTCUSDT")} == {"a", "c"}
    assert {o.client_order_id for o in await repo.list_live()} == {"a", "b"}
    assert [o.client_order_id for o in await repo.find(statuses=[OrderStatus.FILLED])] == ["c"]
    assert [o.client_order_id for o in await repo.find(limit=1)] == ["c"]  # newest first
    assert len(await repo.find(trace_id="trace-1")) == 3
    with pytest.raises(ValueError, match="limit"):
        await repo.find(limit=0)


def test_bad_orders_are_refused_before_the_database() -> None:
    with pytest.raises(ValueError, match="a Limit order needs a price"):
        _order(price=None)
    with pytest.raises(ValueError, match="quantity must be a positive"):
        _order(quantity=Decimal("-1"))
    with pytest.raises(ValueError, match="1-36 characters"):
        _order("x" * 37)
