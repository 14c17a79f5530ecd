"""Market-data retention. TimescaleDB drops old chunks by policy; plain Postgres needs this job
(`depthcharge db retention`, and the Dagster schedule) to delete the same rows. Tables derived row by row
from the market (the models' predictions, support/resistance level sets) grow at the same pace and go
with it, in both modes: they are plain tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

DAY_MS = 86_400_000

# (table, time column). Migrations are frozen history, so this list is kept here, not imported from one.
MARKET_DATA_TABLES = (("market_snapshots", "ts"), ("public_trades", "ts"), ("candles", "start_time"))
DERIVED_TABLES = (("model_predictions", "ts"), ("sr_levels", "computed_at"))


@dataclass(frozen=True)
class RetentionResult:
    mode: str  # "plain" or "timescaledb"
    retention_days: int
    cutoff_ms: int
    deleted: dict[str, int]


def storage_mode(conn: Connection[Any]) -> bool:
    """True when the migrations set the market-data tables up as hypertables."""
    row = conn.execute("SELECT value FROM storage_settings WHERE key = 'timescaledb'").fetchone()
    return bool(row and (row[0] if not isinstance(row[0], str) else json.loads(row[0])))


def enforce_retention(
    conn: Connection[Any], *, retention_days: int, now_ms: int, batch_rows: int = 50_000
) -> RetentionResult:
    """Delete market data older than `retention_days` before `now_ms`.

    Plain mode deletes in batches (short transactions, so the recorder's COPY never waits long);
    in Timescale mode the policy is brought in line with `retention_days` and old chunks are dropped now.
    """
    if retention_days < 1:
        raise ValueError(f"MARKET_DATA_RETENTION_DAYS must be >= 1, got {retention_days}")
    cutoff_ms = now_ms - retention_days * DAY_MS
    deleted: dict[str, int] = {}
    timescale = storage_mode(conn)
    for table, time_col in MARKET_DATA_TABLES:
        if timescale:
            with conn.transaction():
                conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
                conn.execute(
                    "SELECT add_retention_policy(%s, drop_after => %s * interval '1 day')",
                    (table, retention_days),
                )
                dropped = conn.execute(
                    "SELECT count(*) FROM drop_chunks(%s, older_than => timestamptz 'epoch' + %s * interval '1 ms')",
                    (table, cutoff_ms),
                ).fetchone()
            deleted[table] = int(dropped[0]) if dropped else 0  # chunks, not rows, in this mode
            continue
        deleted[table] = _delete_before(conn, table, time_col, cutoff_ms, batch_rows)
    for table, time_col in DERIVED_TABLES:
        deleted[table] = _delete_before(conn, table, time_col, cutoff_ms, batch_rows)
    with conn.transaction():
        conn.execute(
            """INSERT INTO storage_settings (key, value) VALUES ('market_data_retention_days', %s::jsonb)
               ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
            (json.dumps(retention_days),),
        )
    return RetentionResult("timescaledb" if timescale else "plain", retention_days, cutoff_ms, deleted)


def _delete_before(conn: Connection[Any], table: str, time_col: str, cutoff_ms: int, batch_rows: int) -> int:
    """Delete `table`'s rows older than the cutoff in batches (short transactions: writers never wait long)."""
    total = 0
    while True:
        with conn.transaction():
            cur = conn.execute(
                f"""DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                      SELECT ctid FROM {table}
                      WHERE {time_col} < timestamptz 'epoch' + %s * interval '1 ms' LIMIT %s))""",
                (cutoff_ms, batch_rows),
            )
        total += cur.rowcount
        if cur.rowcount < batch_rows:
            return total
