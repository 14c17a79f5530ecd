from __future__ import annotations

import asyncio

import dagster as dg

from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from orchestration.definitions import defs
from orchestration.maintenance import market_data_retention_job
from orchestration.resources import DatabaseResource
from schemas.times import now_ms
from tests.fixtures.rows import snapshot_rows


def test_definitions_load_and_resolve() -> None:
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("market_data_retention_job") is not None
    assert defs.resolve_schedule_def("market_data_retention_job_schedule").cron_schedule == "17 3 * * *"


async def _seed(db: Database) -> None:
    # Rows of 2026-01-01 and of the last minute: only the old ones are past a 30-day window.
    pool = await db.open_pool()
    try:
        repo = MarketDataRepository(pool)
        await repo.copy_snapshots(list(snapshot_rows(5)))
        await repo.copy_snapshots(list(snapshot_rows(3, start_ms=(now_ms() // 1000 - 60) * 1000)))
    finally:
        await pool.close()


# Sync on purpose: execute_in_process runs its own event loop.
def test_retention_job_runs_against_the_database(db: Database) -> None:
    asyncio.run(_seed(db))
    result = market_data_retention_job.execute_in_process(
        resources={"database": DatabaseResource(database_url=db.conninfo)}
    )
    assert result.success
    deleted = result.output_for_node("enforce_market_data_retention")
    assert deleted == {"market_snapshots": 5, "public_trades": 0, "candles": 0}
