from __future__ import annotations

import math

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.db.connection import Database
from infra.db.errors import DuplicateKey
from infra.db.repositories import (
    MarketDataRepository,
    read_candles,
    read_snapshots,
    read_snapshots_pandas,
    read_trades,
)
from schemas.arrow import RAW_SNAPSHOTS, table_to_raw_rows
from schemas.snapshot import RawSnapshotRow, pad_levels
from testkit.rows import T0_MS, candles, snapshot_rows, trades


async def test_copy_round_trip_is_exact(pool, db: Database) -> None:
    rows = list(snapshot_rows(300))
    repo = MarketDataRepository(pool)
    assert await repo.copy_snapshots(rows) == 300
    with db.connect() as conn:
        table = read_snapshots(conn, "BTCUSDT", T0_MS, T0_MS + 300_000)
    assert table.schema == RAW_SNAPSHOTS
    assert table_to_raw_rows(table) == rows  # every field, every float bit for bit
    with db.connect() as conn:
        frame = read_snapshots_pandas(conn, "BTCUSDT", T0_MS, T0_MS + 300_000)
    assert list(frame.columns) == RAW_SNAPSHOTS.names and len(frame) == 300
    assert frame["ts"].tolist() == [r.ts for r in rows]
    assert list(frame["ask_sizes"].iloc[7]) == rows[7].ask_sizes


async def test_read_range_is_half_open_and_per_symbol(pool, db: Database) -> None:
    repo = MarketDataRepository(pool)
    await repo.copy_snapshots(list(snapshot_rows(10)))
    await repo.copy_snapshots(list(snapshot_rows(10, symbol="ETHUSDT", mid=3000.0, tick=0.01)))
    with db.connect() as conn:
        table = read_snapshots(conn, "BTCUSDT", T0_MS + 2000, T0_MS + 5000)
        assert table.column("ts").to_pylist() == [T0_MS + 2000, T0_MS + 3000, T0_MS + 4000]
        assert set(read_snapshots(conn, "ETHUSDT", 0, T0_MS * 2).column("symbol").to_pylist()) == {"ETHUSDT"}


async def test_copy_of_a_stored_row_fails_whole_batch_and_ingest_skips_it(pool, db: Database) -> None:
    rows = list(snapshot_rows(20))
    repo = MarketDataRepository(pool)
    await repo.copy_snapshots(rows[:10])
    with pytest.raises(DuplicateKey) as info:
        await repo.copy_snapshots(rows[5:15])
    assert isinstance(info.value.__cause__, psycopg.errors.UniqueViolation)
    assert await repo.ingest_snapshots(rows[5:20]) == 10  # the 5 stored ones skipped
    assert await repo.ingest_snapshots(rows) == 0
    with db.connect() as conn:
        assert table_to_raw_rows(read_snapshots(conn, "BTCUSDT", 0, T0_MS * 2)) == rows


async def test_executemany_baseline_stores_the_same_rows(pool, db: Database) -> None:
    rows = list(snapshot_rows(50))
    await MarketDataRepository(pool).insert_snapshots_executemany(rows)
    with db.connect() as conn:
        assert table_to_raw_rows(read_snapshots(conn, "BTCUSDT", 0, T0_MS * 2)) == rows


async def test_trades_and_candles_round_trip(pool, db: Database) -> None:
    repo = MarketDataRepository(pool)
    ts, cs = trades(100), candles(30)
    assert await repo.copy_trades(ts) == 100
    assert await repo.ingest_trades(ts) == 0
    assert await repo.ingest_candles(cs) == 30
    assert await repo.ingest_candles(cs) == 0
    with db.connect() as conn:
        got_t = read_trades(conn, "BTCUSDT", 0, T0_MS * 2).to_pylist()
        got_c = read_candles(conn, "BTCUSDT", 0, T0_MS * 2).to_pylist()
    assert [(t["trade_id"], t["ts"], t["side"], t["price"], t["size"]) for t in got_t] == [
        (t.trade_id, t.ts, str(t.side), t.price, t.size) for t in ts
    ]
    assert [
        (c["start_ms"], c["open"], c["high"], c["low"], c["close"], c["volume"], c["turnover"]) for c in got_c
    ] == [(c.start_ms, c.open, c.high, c.low, c.close, c.volume, c.turnover) for c in cs]


_positive = st.floats(min_value=5e-324, max_value=1e15, allow_nan=False, allow_infinity=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prices=st.lists(_positive, min_size=0, max_size=50), other=st.floats(0, 1e300))
async def test_extreme_floats_survive_copy(pool, db: Database, prices: list[float], other: float) -> None:
    n = len(prices)
    row = RawSnapshotRow(
        **{
            **{f: getattr(next(snapshot_rows(1)), f) for f in RawSnapshotRow.__struct_fields__},
            "n_bid_levels": n,
            "bid_prices": pad_levels(prices),
            "bid_sizes": pad_levels(prices),
            "ttl_sum_s": other,
            "ts": T0_MS + abs(hash((tuple(prices), other))) % 10**9,
        }
    )
    await MarketDataRepository(pool).ingest_snapshots([row])
    with db.connect() as conn:
        got = table_to_raw_rows(read_snapshots(conn, "BTCUSDT", row.ts, row.ts + 1))
    assert got == [row]
    assert all(
        math.copysign(1, a) == math.copysign(1, b)
        for a, b in zip(got[0].bid_prices, row.bid_prices, strict=True)
    )
