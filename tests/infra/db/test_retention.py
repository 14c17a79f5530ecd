from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from infra.db.retention import DAY_MS, enforce_retention
from testkit.rows import T0_MS, candles, snapshot_rows, trades


def _counts(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("market_snapshots", "public_trades", "candles")
        }


async def _seed(pool, *, old_ms: int, new_ms: int) -> None:
    repo = MarketDataRepository(pool)
    for start in (old_ms, new_ms):
        await repo.copy_snapshots(list(snapshot_rows(30, start_ms=start)))
        await repo.copy_trades(trades(20, start_ms=start, seed=start % 97))
        await repo.ingest_candles(candles(5, start_ms=start))


async def test_plain_retention_deletes_only_rows_older_than_the_window(pool, db: Database) -> None:
    now = T0_MS + 40 * DAY_MS
    await _seed(pool, old_ms=T0_MS, new_ms=now - DAY_MS)
    assert _counts(db) == {"market_snapshots": 60, "public_trades": 40, "candles": 10}
    with db.connect(autocommit=True) as conn:
        result = enforce_retention(conn, retention_days=30, now_ms=now, batch_rows=7)  # several batches
    assert result.mode == "plain"
    derived = {"model_predictions": 0, "sr_levels": 0}
    assert result.deleted == {"market_snapshots": 30, "public_trades": 20, "candles": 5, **derived}
    assert _counts(db) == {"market_snapshots": 30, "public_trades": 20, "candles": 5}
    with db.connect() as conn:
        oldest = conn.execute("SELECT min(ts) FROM market_snapshots").fetchone()[0]
    assert oldest.timestamp() * 1000 >= now - 30 * DAY_MS


async def test_rows_exactly_at_the_cutoff_are_kept(pool, db: Database) -> None:
    now = T0_MS + 30 * DAY_MS
    await MarketDataRepository(pool).copy_snapshots(list(snapshot_rows(3, start_ms=T0_MS - 1000)))
    with db.connect(autocommit=True) as conn:
        result = enforce_retention(conn, retention_days=30, now_ms=now)
    assert result.deleted["market_snapshots"] == 1  # T0-1000 goes, T0 (= cutoff) and T0+1000 stay


def test_rows_derived_from_the_market_go_with_it(db: Database) -> None:
    """The models' predictions and the support/resistance level sets are kept as long as the market data."""
    now = T0_MS + 40 * DAY_MS
    with db.connect(autocommit=True) as conn:
        for ts in (T0_MS, now - DAY_MS):
            at = conn.execute("SELECT timestamptz 'epoch' + %s * interval '1 ms'", (ts,)).fetchone()[0]
            conn.execute(
                """INSERT INTO model_predictions (symbol, ts, model_version, role, horizons_s, direction,
                       probabilities, confidence, expected_return_bps)
                   VALUES ('BTCUSDT', %s, 'v1', 'production', '{10}', '{1}', '{0.2,0.3,0.5}', 0.5, '{1.0}')""",
                (at,),
            )
            conn.execute(
                """INSERT INTO sr_levels (symbol, computed_at, price, kind, price_low, price_high, strength,
                       touches, volume, first_touch_at, last_touch_at)
                   VALUES ('BTCUSDT', %s, 100, 'support', 99, 101, 0.5, 2, 10, %s, %s)""",
                (at, at, at),
            )
        result = enforce_retention(conn, retention_days=30, now_ms=now)
        left = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("model_predictions", "sr_levels")
        }
    assert {t: result.deleted[t] for t in left} == {"model_predictions": 1, "sr_levels": 1}
    assert left == {"model_predictions": 1, "sr_levels": 1}


def test_retention_refuses_nonpositive_days(db: Database) -> None:
    with db.connect(autocommit=True) as conn, pytest.raises(ValueError, match="MARKET_DATA_RETENTION_DAYS"):
        enforce_retention(conn, retention_days=0, now_ms=T0_MS)


async def test_retention_command(pool, db: Database) -> None:
    await _seed(pool, old_ms=T0_MS, new_ms=T0_MS + DAY_MS)  # both far in the past relative to today
    env = {**os.environ, "DATABASE_URL": db.conninfo, "MARKET_DATA_RETENTION_DAYS": "3650"}
    keep = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "depthcharge", "db", "retention"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keep.returncode == 0, keep.stderr
    assert "retention 3650 days (plain)" in keep.stdout and _counts(db)["market_snapshots"] == 60
    drop = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "depthcharge", "db", "retention", "--days", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert drop.returncode == 0, drop.stderr
    assert "market_snapshots 60" in drop.stdout and _counts(db)["market_snapshots"] == 0
