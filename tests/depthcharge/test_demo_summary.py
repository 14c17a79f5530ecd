"""The demo's account of what became of the consensus signals, read from the stored decision signals."""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from depthcharge.demo.summary import decision_outcomes, describe_outcomes
from infra.db.connection import Database
from infra.db.repositories.signals import SignalRepository
from schemas.enums import SignalAction
from schemas.times import now_ms
from schemas.trading import Signal
from testkit.rows import T0_MS


def decision(outcome: str | None, n: int, source: str = "decision") -> Signal:
    return Signal(
        symbol="BTCUSDT", ts=T0_MS + n * 1000, source=source, action=SignalAction.BUY, strength=0.5,
        confidence=0.6, context=None if outcome is None else {"outcome": outcome},
    )  # fmt: skip


async def test_outcomes_are_counted_since_the_stage_began_most_frequent_first(
    db: Database, pool: AsyncConnectionPool
) -> None:
    signals = SignalRepository(pool)
    await signals.add_many([decision("sent", 0)])  # before the stage: not counted
    await asyncio.sleep(0.05)
    since = now_ms()
    await asyncio.sleep(0.05)
    await signals.add_many(
        [decision("vetoed", 1), decision("below_cost", 2), decision("vetoed", 3), decision("sent", 4),
         decision(None, 5), decision("vetoed", 6, source="consensus")]
    )  # fmt: skip
    outcomes = await asyncio.to_thread(decision_outcomes, db, since)
    assert outcomes == {"vetoed": 2, "below_cost": 1, "sent": 1, "unknown": 1}
    assert list(outcomes) == ["vetoed", "below_cost", "sent", "unknown"]
    assert describe_outcomes(outcomes) == "vetoed 2, below_cost 1, sent 1, unknown 1"
    assert describe_outcomes(await asyncio.to_thread(decision_outcomes, db, now_ms() + 60_000)) == "none"
