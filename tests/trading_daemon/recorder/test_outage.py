"""Database outages: the embedded server is stopped and restarted (same data directory) while the
recorder keeps receiving rows. Embedded server only: these tests own its process."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.embedded import EmbeddedPostgres
from testkit.rows import candles, snapshot_rows, trades
from tests.trading_daemon.recorder.conftest import (
    FAST,
    commit_order_ts,
    read_stored,
    spool_files_left,
    wait_until,
)
from trading_daemon.recorder import Recorder

EMBEDDED_ONLY = pytest.mark.parametrize("pg_server", ["embedded"], indirect=True)


async def _stop(server: EmbeddedPostgres) -> None:
    # Down for real whatever other handles hold the session's server; blocking, so off the recorder's loop.
    await asyncio.to_thread(server.halt)


async def _start(server: EmbeddedPostgres) -> None:
    await asyncio.to_thread(server.resume)


@contextlib.asynccontextmanager
async def _restarted_at_exit(server: EmbeddedPostgres):  # type: ignore[no-untyped-def]
    # The server is shared by the whole session: whatever happens here, it must be up afterwards.
    try:
        yield
    finally:
        await _start(server)  # a no-op when it is running


@EMBEDDED_ONLY
@pytest.mark.parametrize(
    "outage_s", [pytest.param(5.0, id="5s"), pytest.param(30.0, id="30s", marks=pytest.mark.slow)]
)
async def test_rows_survive_an_outage_exactly_once_and_in_order(
    embedded_server: EmbeddedPostgres,
    rec_pool: AsyncConnectionPool,
    db: Database,
    spool_dir: Path,
    outage_s: float,
) -> None:
    n_rows = int((outage_s + 4) / 0.02) + 50
    rows, trs, cds = list(snapshot_rows(n_rows)), trades(n_rows), candles(n_rows // 60 + 1)
    sent = {"rows": 0, "trades": 0, "candles": 0}
    stop_producer = asyncio.Event()

    async def produce(rec: Recorder) -> None:
        # The hot path: a row and a trade every 20 ms, a candle every 60 rows, whatever the database does.
        for i in range(n_rows):
            if stop_producer.is_set():
                return
            rec.submit_rows(rows[i : i + 1])
            rec.submit_trades(trs[i : i + 1])
            sent["rows"] = sent["trades"] = i + 1
            if i % 60 == 0:
                rec.submit_candles(cds[i // 60 : i // 60 + 1])
                sent["candles"] = i // 60 + 1
            await asyncio.sleep(0.02)

    async with _restarted_at_exit(embedded_server), Recorder(rec_pool, spool_dir, FAST) as rec:
        producer = asyncio.create_task(produce(rec))
        await asyncio.sleep(1.0)
        assert rec.state == "writing" and rec.stats().rows_written > 0
        await _stop(embedded_server)
        await wait_until(lambda: rec.state == "spooling", 45, "spooling after the server stopped")
        await asyncio.sleep(outage_s)
        mid = rec.stats()
        assert mid.state == "spooling" and not mid.db_up
        assert mid.rows_spooled > outage_s / 0.02 and mid.spool_files >= 2 and mid.spool_bytes > 0
        assert mid.lag_s >= outage_s * 0.8  # the oldest unwritten row waits since the stop
        await _start(embedded_server)
        # Bounded, not timed: a loaded machine may take longer; how long is no property of the recorder.
        await wait_until(lambda: rec.state == "writing", 60, "the back-fill")
        await asyncio.sleep(1.0)  # rows keep arriving after the back-fill, written directly
        stop_producer.set()
        await producer
        await rec.flush()
        end = rec.stats()
    assert end.spool_files == 0 and end.outages >= 1 and end.rows_backfilled >= mid.rows_spooled
    stored = read_stored(db)
    assert stored.rows == rows[: sent["rows"]]  # every submitted row, exactly once
    assert stored.trades == trs[: sent["trades"]]
    assert stored.candles == cds[: sent["candles"]]
    # ...and committed in submit order: the spool went in oldest first, before any newer row.
    assert commit_order_ts(db) == [r.ts for r in stored.rows]
    assert spool_files_left(spool_dir) == []


@EMBEDDED_ONLY
async def test_close_with_the_database_down_leaves_everything_in_the_spool(
    embedded_server: EmbeddedPostgres, rec_pool: AsyncConnectionPool, db: Database, spool_dir: Path
) -> None:
    rows, trs, cds = list(snapshot_rows(700)), trades(300), candles(5)
    async with _restarted_at_exit(embedded_server):
        rec = await Recorder(rec_pool, spool_dir, FAST).start()
        rec.submit_rows(rows[:200])
        await rec.flush()
        await _stop(embedded_server)
        rec.submit_rows(rows[200:])
        rec.submit_trades(trs)
        rec.submit_candles(cds)
        await rec.close()  # tries the database, gives up, spools and fsyncs
        stats = rec.stats()
        assert (
            stats.rows_spooled == 500 + 300 + 5 and stats.spool_files >= 3
        )  # one kind or more segments each
        await _start(embedded_server)
    assert read_stored(db).rows == rows[:200]
    async with Recorder(rec_pool, spool_dir, FAST) as again:  # the next run back-fills it all
        await wait_until(lambda: again.stats().spool_files == 0, 30, "the back-fill")
    stored = read_stored(db)
    assert stored.rows == rows and stored.trades == trs and stored.candles == cds
