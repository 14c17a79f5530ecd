"""Helpers of the recorder tests: a fast config, read-back of the three tables, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.repositories import read_candles, read_snapshots, read_trades
from schemas.arrow import table_to_raw_rows
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from testkit.rows import T0_MS
from trading_daemon.recorder import RecorderConfig, open_recorder_pool

FAST = RecorderConfig(
    batch_size=100,
    batch_age_s=0.05,
    queue_size=10_000,
    write_timeout_s=2.0,
    retry_attempts=2,
    retry_wait_s=0.01,
    probe_interval_s=0.2,
    probe_timeout_s=1.0,
    segment_bytes=256 << 10,  # small segments: outages produce several files
)
END_MS = T0_MS * 2


@dataclass
class Stored:
    rows: list[RawSnapshotRow]
    trades: list[PublicTrade]
    candles: list[Candle]


def read_stored(db: Database, symbol: str = "BTCUSDT") -> Stored:
    with db.connect() as conn:
        rows = table_to_raw_rows(read_snapshots(conn, symbol, 0, END_MS))
        trades = [msgspec.convert(d, PublicTrade) for d in read_trades(conn, symbol, 0, END_MS).to_pylist()]
        candles = [msgspec.convert(d, Candle) for d in read_candles(conn, symbol, 0, END_MS).to_pylist()]
    return Stored(rows, trades, candles)


def commit_order_ts(db: Database, table: str = "market_snapshots", column: str = "ts") -> list[int]:
    """Keys in the order they were committed (transaction id, then physical order in it)."""
    with db.connect() as conn:
        cur = conn.execute(
            f"SELECT (extract(epoch FROM {column}) * 1000)::bigint FROM {table} ORDER BY xmin::text::bigint, ctid"
        )
        return [r[0] for r in cur.fetchall()]


async def wait_until(cond: Callable[[], bool], within: float, what: str) -> float:
    """Poll `cond` without blocking the loop; return the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def spool_files_left(spool_dir: Path) -> list[Path]:
    """Segments still in the spool (rejected ones included)."""
    return sorted(spool_dir.rglob("*.msgpack"))


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "var" / "spool"


@pytest.fixture
async def rec_pool(db: Database) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_recorder_pool(db)
    yield pool
    await pool.close()
