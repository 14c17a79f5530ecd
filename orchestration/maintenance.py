# No `from __future__ import annotations`: Dagster reads the `context` annotation at definition time.
"""Maintenance jobs. Plain-Postgres retention is a scheduled job (docs/storage.md);
under TimescaleDB the same op refreshes the retention policy and drops old chunks."""

import dagster as dg

from infra.db.retention import enforce_retention
from orchestration.resources import DatabaseResource
from schemas.times import now_ms


@dg.op
def enforce_market_data_retention(
    context: dg.OpExecutionContext, database: DatabaseResource
) -> dict[str, int]:
    with database.connection() as conn:
        result = enforce_retention(conn, retention_days=database.retention_days, now_ms=now_ms())
    context.log.info(f"retention {result.retention_days} days ({result.mode}): {result.deleted}")
    context.add_output_metadata({f"deleted_{t}": n for t, n in result.deleted.items()})
    return result.deleted


@dg.job(description="Delete market data older than MARKET_DATA_RETENTION_DAYS.")
def market_data_retention_job() -> None:
    enforce_market_data_retention()


market_data_retention_schedule = dg.ScheduleDefinition(
    job=market_data_retention_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
