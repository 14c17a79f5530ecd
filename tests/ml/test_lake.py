"""The lake's partitions: a partition computed alone gives the features and labels the whole recording
gives (the lookback rows and candle window make it self-contained), its files round-trip with their
metadata, and the export from the database is that partition."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from depthcharge.offline_recording import DEFAULT_START_MS
from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from ml.lake import (
    LOOKBACK_ROWS,
    LakeError,
    LakeLayout,
    RawPartition,
    candle_history_ms,
    export_raw_partition,
    partition_labelled_features,
)
from ml.workflow import labelled_features
from schemas.arrow import SPEC_HASH_METADATA_KEY
from schemas.features import feature_spec
from tests.fixtures.recorded import RecordedTables, recorded_arrow, recorded_market

SPEC = feature_spec()
TEN_MIN = 600_000


def tables() -> RecordedTables:
    return recorded_arrow(seconds=1800, symbol="BTCUSDT", seed=7)


def _between(table: pa.Table, column: str, lo: int, hi: int) -> pa.Table:
    col = table.column(column)
    return table.filter(pc.and_(pc.greater_equal(col, lo), pc.less(col, hi)))


def partition_of(t: RecordedTables, start: int, end: int) -> RawPartition:
    """What export_raw_partition reads, cut from the recording's tables."""
    before = _between(t.rows, "ts", start - LOOKBACK_ROWS * 1000, start)
    lookback = before.slice(max(0, before.num_rows - LOOKBACK_ROWS))
    first = lookback.column("ts")[0].as_py() if lookback.num_rows else start
    return RawPartition(
        "BTCUSDT",
        start,
        end,
        _between(t.rows, "ts", start, end),
        _between(t.trades, "ts", start, end),
        _between(t.candles, "start_ms", first - candle_history_ms(), end),
        lookback,
    )


def test_partitions_give_the_features_and_labels_of_the_whole_recording() -> None:
    t = tables()
    whole = labelled_features(t.rows, t.candles, spec=SPEC)
    parts = [
        partition_labelled_features(partition_of(t, s, s + TEN_MIN), spec=SPEC)
        for s in range(DEFAULT_START_MS, DEFAULT_START_MS + 3 * TEN_MIN, TEN_MIN)
    ]
    joined = pa.concat_tables(parts)
    ts_whole = whole.column("ts").to_numpy()
    ts_parts = joined.column("ts").to_numpy()
    # Every partition row is a row of the whole, with the same values, bit for bit.
    index = {int(x): i for i, x in enumerate(ts_whole)}
    rows = np.array([index[int(x)] for x in ts_parts])
    for name in whole.column_names[2:]:
        np.testing.assert_array_equal(
            joined.column(name).to_numpy(), whole.column(name).to_numpy()[rows], name
        )
    # What partitions drop is exactly the rows whose longest horizon runs past their partition's end.
    missing = np.setdiff1d(ts_whole, ts_parts)
    assert len(missing) > 0
    assert all((x % TEN_MIN) == 0 or (TEN_MIN - x % TEN_MIN) <= 60_000 for x in missing - DEFAULT_START_MS)


def test_files_round_trip_with_their_spec_hash_and_window(tmp_path: Path) -> None:
    t = tables()
    layout = LakeLayout(tmp_path)
    starts = [DEFAULT_START_MS, DEFAULT_START_MS + TEN_MIN]
    for start in starts:
        raw = partition_of(t, start, start + TEN_MIN)
        paths = layout.write_raw(raw, spec_hash=SPEC.spec_hash)
        assert set(paths) == {"raw_snapshots", "public_trades", "candles", "raw_lookback"}
        table = partition_labelled_features(raw, spec=SPEC)
        layout.write_labelled(table, dataset="labelled_features", symbol="BTCUSDT", start_ms=start, spec=SPEC)
    assert layout.partitions("raw_snapshots", "BTCUSDT") == starts
    assert layout.partition_path("raw_snapshots", "BTCUSDT", starts[0]).name == "20260101T0000Z.parquet"
    assert layout.newest_partitions("labelled_features", ["BTCUSDT", "ETHUSDT"], 1) == starts[1:]
    assert layout.newest_partitions("labelled_features", ["BTCUSDT"], 5, end_ms=starts[0]) == starts[:1]

    back = layout.read_raw("BTCUSDT", starts[1])
    original = partition_of(t, starts[1], starts[1] + TEN_MIN)
    assert back.end_ms == starts[1] + TEN_MIN
    for name, table in original.tables().items():
        assert back.tables()[name].equals(table), name
    meta = pq.read_schema(layout.partition_path("public_trades", "BTCUSDT", starts[1])).metadata
    assert meta[SPEC_HASH_METADATA_KEY].decode() == SPEC.spec_hash
    assert meta[b"dataset"] == b"public_trades"

    labelled = layout.read_labelled(
        dataset="labelled_features", symbol="BTCUSDT", start_ms=starts[0], spec=SPEC
    )
    assert labelled.num_rows > 500
    with pytest.raises(LakeError, match="feature spec"):
        layout.read_labelled(
            dataset="labelled_features", symbol="BTCUSDT", start_ms=starts[0], spec=feature_spec(500)
        )
    with pytest.raises(LakeError, match="no lake file"):
        layout.read_raw("ETHUSDT", starts[0])


def test_the_export_from_the_database_is_the_partition(db: Database) -> None:
    rec = recorded_market(seconds=1800, symbols=("BTCUSDT",), seed=7)

    async def ingest() -> None:
        pool = await db.open_pool(min_size=1, max_size=1)
        try:
            repo = MarketDataRepository(pool)
            await repo.ingest_snapshots(rec.rows["BTCUSDT"])
            await repo.ingest_trades(rec.trades["BTCUSDT"])
            await repo.ingest_candles(rec.candles["BTCUSDT"])
        finally:
            await pool.close()

    asyncio.run(ingest())
    start = DEFAULT_START_MS + TEN_MIN
    with db.connect() as conn:
        raw = export_raw_partition(conn, "BTCUSDT", start, start + TEN_MIN, interval_ms=1000)
        with pytest.raises(ValueError, match="must end after it starts"):
            export_raw_partition(conn, "BTCUSDT", start, start, interval_ms=1000)
    expected = partition_of(tables(), start, start + TEN_MIN)
    assert raw.rows.num_rows == 600 and raw.lookback.num_rows == LOOKBACK_ROWS
    for name, table in expected.tables().items():
        assert raw.tables()[name].equals(table), name
