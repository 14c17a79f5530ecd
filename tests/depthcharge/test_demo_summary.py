"""The demo's account of what became of the strategies' votes and the consensus signals, read from the
stored signals."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg_pool import AsyncConnectionPool

from depthcharge.demo.summary import Decisions, read_decisions
from infra.db.connection import Database
from infra.db.repositories.signals import SignalRepository
from schemas.enums import SignalAction
from schemas.times import now_ms
from schemas.trading import Signal
from testkit.rows import T0_MS


def signal(source: str, n: int, **context: Any) -> Signal:
    return Signal(
        symbol="BTCUSDT", ts=T0_MS + n * 1000, source=source, action=SignalAction.BUY, strength=0.5,
        confidence=0.6, context=context or None,
    )  # fmt: skip


def _read(db: Database, since_ms: int, *, dict_rows: bool = False) -> Decisions:
    with db.connect(dict_rows=dict_rows) as conn:
        return read_decisions(conn, since_ms)


async def test_votes_and_outcomes_are_counted_since_the_stage_began(
    db: Database, pool: AsyncConnectionPool
) -> None:
    signals = SignalRepository(pool)
    await signals.add_many(
        [signal("decision", 0, outcome="sent"), signal("imbalance", 0, sent=True)]
    )  # before
    await asyncio.sleep(0.05)
    since = now_ms()
    await asyncio.sleep(0.05)
    await signals.add_many(
        [
            signal("imbalance", 1, sent=False), signal("imbalance", 2, sent=False), signal("momentum", 3, sent=True),
            signal("supertrend", 4),  # stored before votes said whether they were sent: not counted
            signal("consensus", 5, sent=True),  # not a vote
            signal("decision", 6, outcome="vetoed"), signal("decision", 7, outcome="below_cost"),
            signal("decision", 8, outcome="vetoed"), signal("decision", 9, outcome="sent"), signal("decision", 10),
        ]
    )  # fmt: skip
    decisions = await asyncio.to_thread(_read, db, since)
    assert decisions == Decisions(
        votes_sent=1, votes_below_cost=2, outcomes={"vetoed": 2, "below_cost": 1, "sent": 1, "unknown": 1}
    )
    assert list(decisions.outcomes) == ["vetoed", "below_cost", "sent", "unknown"]  # most frequent first
    assert (
        decisions.describe()
        == "votes 1 sent, 2 below cost; decisions: vetoed 2, below_cost 1, sent 1, unknown 1"
    )
    later = await asyncio.to_thread(_read, db, now_ms() + 60_000)
    # the summary reads on a dict-row connection, the activity line on a tuple-row one
    assert await asyncio.to_thread(_read, db, since, dict_rows=True) == decisions
    assert later.describe() == "votes 0 sent, 0 below cost; decisions: none"
