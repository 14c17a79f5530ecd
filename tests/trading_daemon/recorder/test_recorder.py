"""The recorder against a live database: exact round trip, crash recovery, idempotent back-fill,
queue overflow."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from schemas.snapshot import RawSnapshotRow
from testkit.rows import T0_MS, candles, snapshot_rows, trades
from tests.trading_daemon.recorder.conftest import (
    FAST,
    commit_order_ts,
    read_stored,
    spool_files_left,
    wait_until,
)
from trading_daemon.recorder import Recorder, RecorderConfig, Spool


async def test_rows_trades_candles_round_trip_exactly(
    rec_pool: AsyncConnectionPool, db: Database, spool_dir: Path
) -> None:
    rows, trs, cds = list(snapshot_rows(1234)), trades(777), candles(61)
    async with Recorder(rec_pool, spool_dir, FAST) as rec:
        for i in range(0, len(rows), 10):  # as the hot path would: a few at a time
            rec.submit_rows(rows[i : i + 10])
        rec.submit_trades(trs)
        rec.submit_candles(cds)
        await rec.flush()
        stats = rec.stats()
        assert stats.state == "writing" and stats.rows_spooled == 0 and stats.spool_files == 0
        assert stats.rows_written == 1234 + 777 + 61 and stats.lag_s == 0.0
    stored = read_stored(db)
    assert stored.rows == rows  # every field, every float bit for bit
    assert stored.trades == trs
    assert stored.candles == cds
    assert spool_files_left(spool_dir) == []


async def test_crash_leftover_spool_is_backfilled_at_start_before_new_rows(
    rec_pool: AsyncConnectionPool, db: Database, spool_dir: Path
) -> None:
    rows = list(snapshot_rows(600))
    # A previous run spooled the first 500 rows in two segments, then died mid-append of a frame.
    old = Spool(spool_dir / "snapshots", RawSnapshotRow, segment_bytes=1 << 30)
    old.append(rows[:250], time.time())
    old.seal()
    old.append(rows[250:500], time.time())
    old.sync()
    torn = old.files()[-1]
    old.close()
    with torn.open("ab") as f:
        f.write(b"\x00\x00\x10\x00partial")  # a frame header promising 4096 bytes, then the crash
    trade_spool = Spool(spool_dir / "trades", type(trades(1)[0]), segment_bytes=1 << 30)
    trade_spool.append(trades(40), time.time())
    trade_spool.close()

    rec = Recorder(rec_pool, spool_dir, FAST)
    assert rec.stats().spool_files == 3 and rec.state == "backfilling"
    await rec.start()
    rec.submit_rows(rows[500:])
    await rec.flush()
    await wait_until(lambda: rec.stats().spool_files == 0, 10, "the back-fill")
    assert rec.stats().state == "writing"
    await rec.close()
    stored = read_stored(db)
    assert stored.rows == rows and stored.trades == trades(40)
    assert commit_order_ts(db) == [r.ts for r in rows]  # the spool went in first, oldest file first
    assert spool_files_left(spool_dir) == []


async def test_a_batch_written_then_resent_is_not_duplicated(
    rec_pool: AsyncConnectionPool, db: Database, spool_dir: Path
) -> None:
    rows, trs, cds = list(snapshot_rows(300)), trades(100), candles(10)
    async with Recorder(rec_pool, spool_dir, FAST) as rec:
        rec.submit_rows(rows[:200])
        rec.submit_trades(trs)
        rec.submit_candles(cds)
        await rec.flush()
    # A crash after the commit but before the spool file was deleted: the same batches are spooled.
    for kind, records in (("snapshots", rows[:200]), ("trades", trs), ("candles", cds)):
        spool = Spool(spool_dir / kind, type(records[0]))
        spool.append(records, time.time())
        spool.close()
    async with Recorder(rec_pool, spool_dir, FAST) as rec:
        rec.submit_rows(rows[100:])  # and the hot path re-sends an overlapping range too
        rec.submit_candles(cds[-3:])
        await rec.flush()
        await wait_until(lambda: rec.stats().spool_files == 0, 10, "the back-fill")
        stats = rec.stats()
    assert stats.kinds["snapshots"].rows_duplicate == 200 + 100
    assert stats.kinds["trades"].rows_duplicate == 100
    stored = read_stored(db)
    assert stored.rows == rows and stored.trades == trs and stored.candles == cds


async def test_full_queue_spills_to_the_spool_and_loses_nothing(
    rec_pool: AsyncConnectionPool, db: Database, spool_dir: Path
) -> None:
    rows = list(snapshot_rows(2000))
    config = RecorderConfig(**{**FAST.__dict__, "queue_size": 64, "batch_size": 50})
    async with Recorder(rec_pool, spool_dir, config) as rec:
        t0 = time.perf_counter()
        for row in rows:  # no await in between: the writer cannot keep up, the queue overflows
            rec.submit_rows([row])
        submit_s = time.perf_counter() - t0
        assert rec.stats().kinds["snapshots"].rows_overflowed > 1500
        await rec.flush()
        assert rec.stats().rows_spooled > 1500
        await wait_until(lambda: rec.state == "writing", 15, "the back-fill of the overflow")
        stats = rec.stats()
    assert submit_s < 1.0, f"submit must not block: {submit_s:.3f}s for 2000 rows"
    assert stats.rows_written + stats.rows_backfilled == 2000
    assert read_stored(db).rows == rows
    assert commit_order_ts(db) == [r.ts for r in rows]


async def test_submit_after_close_is_refused(
    rec_pool: AsyncConnectionPool, db: Database, spool_dir: Path
) -> None:
    rec = await Recorder(rec_pool, spool_dir, FAST).start()
    await rec.close()
    try:
        rec.submit_rows(list(snapshot_rows(1)))
    except RuntimeError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("submit after close must raise")


async def test_a_batch_the_database_refuses_is_put_aside_and_writing_goes_on(
    rec_pool: AsyncConnectionPool, db: Database, spool_dir: Path
) -> None:
    """A refusal is about the batch, not the database: it is neither retried nor spooled for a back-fill
    that would fail forever, and it is not lost either (kept in the rejected spool with the reason)."""
    good, later = trades(20), trades(20, seed=4, start_ms=T0_MS + 60_000)
    refused = [msgspec.structs.replace(t, side="Sideways") for t in trades(5, seed=5)]  # no trade_side label
    async with Recorder(rec_pool, spool_dir, FAST) as rec:
        rec.submit_trades(good)
        await rec.flush()
        rec.submit_trades(refused)
        await rec.flush()
        rec.submit_trades(later)
        await rec.flush()
        stats = rec.stats()
    assert stats.rows_rejected == 5 and stats.rows_spooled == 0 and stats.outages == 0 and stats.db_up
    assert read_stored(db).trades == sorted(good + later, key=lambda t: (t.ts, t.seq))
    (kept,) = sorted((spool_dir / "rejected" / "trades").glob("*.msgpack"))
    assert "InvalidData" in kept.with_suffix(".txt").read_text()
    reader = Spool(spool_dir.parent / "reader", dict)  # as plain maps: the side is no Side
    assert [t["trade_id"] for t in reader.read(kept)] == [t.trade_id for t in refused]
