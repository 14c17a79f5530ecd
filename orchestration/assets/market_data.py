# No `from __future__ import annotations`: Dagster reads the parameter annotations at definition time.
"""Stage 1, market data: each closed partition (time window × symbol) exported from Postgres into the lake."""

import dagster as dg

from ml.data_checks import check_raw_rows
from ml.lake import RawPartition, export_raw_partition
from orchestration.location import LOCATION
from orchestration.metadata import check_result
from orchestration.partitions import (
    MARKET_PARTITIONS,
    close_cron,
    partition_check,
    partition_window,
    require_closed,
)
from orchestration.resources import DatabaseResource, PipelineSettingsResource
from schemas.times import now_ms

GROUP = "market_data"


@dg.asset(
    partitions_def=MARKET_PARTITIONS,
    group_name=GROUP,
    io_manager_key="lake_io_manager",
    automation_condition=dg.AutomationCondition.on_cron(close_cron(LOCATION)),
    kinds={"postgres", "parquet"},
    description="One partition of raw snapshot rows, public trades and the candles their features read, "
    "exported from market_snapshots, public_trades and candles (ml.lake).",
)
def raw_snapshots(
    context: dg.AssetExecutionContext, database: DatabaseResource, settings: PipelineSettingsResource
) -> dg.Output[RawPartition]:
    window = partition_window(context)
    require_closed(window, grace_s=settings.partition_close_grace_s, now_ms=now_ms())
    with database.connection() as conn:
        raw = export_raw_partition(
            conn, window.symbol, window.start_ms, window.end_ms, interval_ms=settings.snapshot_interval_ms
        )
    slots = (window.end_ms - window.start_ms) // settings.snapshot_interval_ms
    ts = raw.rows.column("ts")
    return dg.Output(
        raw,
        metadata={
            "dagster/row_count": raw.rows.num_rows,
            "symbol": window.symbol,
            "window_start_ms": window.start_ms,
            "window_end_ms": window.end_ms,
            "rows": raw.rows.num_rows,
            "coverage": raw.rows.num_rows / slots if slots else 0.0,
            "first_ts": ts[0].as_py() if raw.rows.num_rows else None,
            "last_ts": ts[-1].as_py() if raw.rows.num_rows else None,
            "book_resets": sum(raw.rows.column("book_reset").to_pylist()) if raw.rows.num_rows else 0,
            "trades": raw.trades.num_rows,
            "candles": raw.candles.num_rows,
            "lookback_rows": raw.lookback.num_rows,
        },
    )


@partition_check(
    raw_snapshots,
    blocking=True,
    description="Raw rows in time order, one per SNAPSHOT_INTERVAL_MS, no duplicates, inside the window.",
)
def raw_rows_in_order(
    context: dg.AssetCheckExecutionContext, raw_snapshots: RawPartition, settings: PipelineSettingsResource
) -> dg.AssetCheckResult:
    outcome = check_raw_rows(
        raw_snapshots.rows,
        interval_ms=settings.snapshot_interval_ms,
        start_ms=raw_snapshots.start_ms,
        end_ms=raw_snapshots.end_ms,
    )
    return check_result(outcome, severity=dg.AssetCheckSeverity.ERROR)
