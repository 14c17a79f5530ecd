from __future__ import annotations

from decimal import Decimal

import pytest

from infra.db.errors import DuplicateKey, VersionConflict
from infra.db.repositories import FillRepository, OrderRepository, PositionRepository
from schemas.enums import ExecType, OrderType, PositionStatus, Side
from schemas.trading import Fill, Order, Position
from testkit.rows import T0_MS


async def test_position_lifecycle_with_versions_and_history(pool) -> None:
    repo = PositionRepository(pool)
    pos = await repo.create(
        Position(
            symbol="BTCUSDT",
            side=Side.BUY,
            quantity=Decimal("0.002"),
            entry_price=Decimal("64000.5"),
            entry_reason="signal",
            opened_ms=T0_MS,
        )
    )
    assert pos.status is PositionStatus.OPENING and pos.opened_ms == T0_MS
    with pytest.raises(DuplicateKey, match="already has a live position"):
        await repo.create(
            Position(symbol="BTCUSDT", side=Side.SELL, quantity=Decimal(1), entry_price=Decimal(1))
        )
    pos = await repo.update(pos.id, expected_version=1, status=PositionStatus.OPEN)
    pos = await repo.update(pos.id, expected_version=2, unrealized_pnl=Decimal("1.25"))
    with pytest.raises(VersionConflict):
        await repo.update(pos.id, expected_version=2, status=PositionStatus.CLOSING)
    with pytest.raises(ValueError, match="cannot update position field"):
        await repo.update(pos.id, expected_version=3, symbol="ETHUSDT")  # type: ignore[arg-type]
    assert (await repo.get_live("BTCUSDT")).id == pos.id  # type: ignore[union-attr]
    closed = await repo.update(
        pos.id,
        expected_version=3,
        status=PositionStatus.CLOSED,
        exit_price=Decimal("64100"),
        realized_pnl=Decimal("0.2"),
        closed_ms=T0_MS + 60_000,
        exit_reason="take profit",
        reason="tp",
    )
    assert (
        closed.version == 4 and closed.closed_ms == T0_MS + 60_000 and closed.realized_pnl == Decimal("0.2")
    )
    assert await repo.get_live("BTCUSDT") is None
    assert await repo.status_history(pos.id) == [(None, "Opening"), ("Opening", "Open"), ("Open", "Closed")]
    assert [p.id for p in await repo.find(status=PositionStatus.CLOSED)] == [pos.id]


async def test_fills_are_idempotent_on_exec_id_and_link_orders(pool) -> None:
    orders, fills = OrderRepository(pool), FillRepository(pool)
    order = await orders.create(
        Order(
            client_order_id="dc-7",
            symbol="ETHUSDT",
            side=Side.SELL,
            order_type=OrderType.MARKET,
            quantity=Decimal("0.5"),
        )
    )
    fill = Fill(
        exec_id="e-1",
        symbol="ETHUSDT",
        side=Side.SELL,
        price=Decimal("3000.01"),
        quantity=Decimal("0.5"),
        fee=Decimal("0.825002750"),
        ts=T0_MS,
        client_order_id="dc-7",
    )
    assert await fills.add(fill) is True
    assert await fills.add(fill) is False
    funding = Fill(
        exec_id="f-1",
        symbol="ETHUSDT",
        side=Side.SELL,
        price=Decimal("3000"),
        quantity=Decimal("0.5"),
        fee=Decimal("-0.15"),
        ts=T0_MS + 1,
        exec_type=ExecType.FUNDING,
    )
    assert await fills.add(funding) is True
    stored = await fills.by_order("dc-7")
    assert len(stored) == 1 and stored[0].order_id == order.id and stored[0].fee == Decimal("0.825002750")
    assert [f.exec_id for f in await fills.find(symbol="ETHUSDT", since_ms=T0_MS)] == ["e-1", "f-1"]
    assert [f.exec_id for f in await fills.find(since_ms=T0_MS + 1)] == ["f-1"]
