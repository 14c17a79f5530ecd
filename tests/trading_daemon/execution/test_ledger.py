"""The ledger after a change that failed: memory may be ahead of the rolled-back transaction, so the next
change reloads it from the database and replays the fills that could not be written, in arrival order.

The fills drive a real, migrated Postgres; the database's failure is a repository call that raises the
error the driver mapping raises when the server goes away."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from infra.db.errors import DatabaseUnavailable, QueryError
from infra.db.repositories import AuditRepository, FillRepository, PositionRepository
from schemas.enums import PositionStatus, Side
from schemas.trading import Fill
from trading_daemon.execution.audit import Auditor
from trading_daemon.execution.ledger import HOLD, Ledger

BUY, SELL = Side.BUY, Side.SELL


def fill(exec_id: str, side: Side, qty: str, price: str = "100", ts: int = 1) -> Fill:
    return Fill(
        exec_id=exec_id, symbol="BTCUSDT", side=side, price=Decimal(price), quantity=Decimal(qty),
        fee=Decimal("0.01"), ts=ts,
    )  # fmt: skip


@pytest.fixture
def ledger(pool: AsyncConnectionPool) -> Ledger:
    return Ledger(pool, auditor=Auditor(AuditRepository(pool)))


def fail_position_writes(ledger: Ledger, times: int, error: Callable[[], Exception]) -> list[int]:
    """The next `times` position writes raise `error()`; returns the running count of writes tried."""
    original = ledger.book.positions.update
    tried = [0]

    async def update(*args: Any, **kwargs: Any) -> Any:
        tried[0] += 1
        if tried[0] <= times:
            raise error()
        return await original(*args, **kwargs)

    ledger.book.positions.update = update  # type: ignore[method-assign]
    return tried


def database_gone() -> Exception:
    return DatabaseUnavailable("the database went away (test)")


async def positions(pool: AsyncConnectionPool) -> list[tuple[PositionStatus, Decimal]]:
    return [(p.status, p.quantity) for p in reversed(await PositionRepository(pool).find(symbol="BTCUSDT"))]


async def test_a_fill_that_failed_is_replayed_before_the_next_one(
    ledger: Ledger, pool: AsyncConnectionPool
) -> None:
    """The entry fills in two parts and the second part's write fails; the exit's fill follows. Applied on
    top of memory that counted the lost part, the exit would close the position and the part imported later
    would open a phantom one. Replayed first, the exit closes exactly what was bought."""
    assert await ledger.apply_fill(fill("e1", BUY, "0.008"), source="stream")
    fail_position_writes(ledger, 1, database_gone)
    with pytest.raises(DatabaseUnavailable):
        await ledger.apply_fill(fill("e2", BUY, "0.002", ts=2), source="stream")
    assert ledger.behind and HOLD in ledger.account.holds
    assert ledger.account.positions["BTCUSDT"].quantity == Decimal("0.008")  # the database's, not memory's

    assert await ledger.apply_fill(fill("x1", SELL, "0.01", "101", ts=3), source="stream")

    assert not ledger.behind and "BTCUSDT" not in ledger.account.positions
    assert await positions(pool) == [(PositionStatus.CLOSED, Decimal(0))]
    assert {f.exec_id for f in await FillRepository(pool).find(symbol="BTCUSDT")} == {"e1", "e2", "x1"}
    # What reconciliation imports afterwards was replayed already: a duplicate, nothing moves.
    assert not await ledger.apply_fill(fill("e2", BUY, "0.002", ts=2), source="reconciliation")
    assert await positions(pool) == [(PositionStatus.CLOSED, Decimal(0))]
    closed = (await PositionRepository(pool).find(symbol="BTCUSDT"))[0]
    assert closed.realized_pnl == Decimal("0.01") * 1 - Decimal("0.03")  # 0.01 BTC up 1 USDT, three fees
    assert HOLD in ledger.account.holds  # entries wait for a reconciliation to compare it with the exchange


async def test_while_the_database_stays_down_fills_queue_in_order(
    ledger: Ledger, pool: AsyncConnectionPool
) -> None:
    """Each change meanwhile fails on the reload; the repair's reload replays them all, in arrival order."""
    assert await ledger.apply_fill(fill("e1", BUY, "0.01"), source="stream")
    tried = fail_position_writes(ledger, 2, database_gone)
    with pytest.raises(DatabaseUnavailable):
        await ledger.apply_fill(fill("x1", SELL, "0.004", "102", ts=2), source="stream")
    with pytest.raises(DatabaseUnavailable):  # the reload replays x1, whose write fails again
        await ledger.apply_fill(fill("x2", SELL, "0.006", "103", ts=3), source="stream")
    assert tried[0] == 2 and ledger.failures == 2

    assert await ledger.resync()  # what the repair's reconciliation does first

    assert await positions(pool) == [(PositionStatus.CLOSED, Decimal(0))]
    closed = (await PositionRepository(pool).find(symbol="BTCUSDT"))[0]
    assert closed.realized_pnl == Decimal("0.004") * 2 + Decimal("0.006") * 3 - Decimal("0.03")
    assert not await ledger.resync()  # nothing failed since


async def test_a_fill_that_fails_for_a_bug_is_not_replayed(ledger: Ledger, pool: AsyncConnectionPool) -> None:
    """Only a failure that passes is retried: a fill that failed for a bug would fail every later change.
    The reload still puts memory back to the database; reconciliation will try that fill again."""
    assert await ledger.apply_fill(fill("e1", BUY, "0.01"), source="stream")
    fail_position_writes(ledger, 1, lambda: QueryError("a bad statement (test)"))
    with pytest.raises(QueryError):
        await ledger.apply_fill(fill("x1", SELL, "0.004", ts=2), source="stream")
    assert await ledger.apply_fill(fill("x2", SELL, "0.006", ts=3), source="stream")
    assert await positions(pool) == [(PositionStatus.OPEN, Decimal("0.004"))]
    assert {f.exec_id for f in await FillRepository(pool).find(symbol="BTCUSDT")} == {"e1", "x2"}
