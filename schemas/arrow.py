"""Arrow schemas of the Parquet lake datasets (`var/lake/<dataset>/...`).

Time columns are int64 milliseconds UTC, like the records; level arrays are fixed-size lists of 50
float64 (docs/features.md §6.1); money, where a dataset carries it, is a decimal string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from schemas.features import FeatureSpec
from schemas.market import Candle, PublicTrade
from schemas.model import HORIZONS_S
from schemas.snapshot import BOOK_DEPTH, LEVEL_ARRAY_FIELDS, RAW_SNAPSHOT_FIELDS, RawSnapshotRow

SPEC_HASH_METADATA_KEY = b"depthcharge.feature_spec_hash"

_LEVELS = pa.list_(pa.float64(), BOOK_DEPTH)
_RAW_TYPES: dict[str, pa.DataType] = {
    "symbol": pa.string(),
    "ts": pa.int64(),
    "interval_ms": pa.int32(),
    "book_reset": pa.bool_(),
    "n_bid_levels": pa.int16(),
    "n_ask_levels": pa.int16(),
    **{name: _LEVELS for name in LEVEL_ARRAY_FIELDS},
    "last_candle_start_ms": pa.int64(),
    "ttl_sum_s": pa.float64(),
    "ttl_sumsq_s2": pa.float64(),
    "buy_volume": pa.float64(),
    "sell_volume": pa.float64(),
    "buy_notional": pa.float64(),
    "sell_notional": pa.float64(),
    "eff_spread_wsum": pa.float64(),
    "eff_spread_volume": pa.float64(),
    "last_trade_price": pa.float64(),
    "book_update_id": pa.int64(),
    "book_msg_ts": pa.int64(),
}
_NULLABLE_RAW = {"book_update_id", "book_msg_ts"}

# Every field not listed above is an int32 count.
RAW_SNAPSHOTS = pa.schema(
    [pa.field(n, _RAW_TYPES.get(n, pa.int32()), nullable=n in _NULLABLE_RAW) for n in RAW_SNAPSHOT_FIELDS],
    metadata={b"dataset": b"raw_snapshots", b"time_unit": b"ms"},
)

CANDLES = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("start_ms", pa.int64(), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("turnover", pa.float64(), nullable=False),
    ],
    metadata={b"dataset": b"candles", b"time_unit": b"ms"},
)

PUBLIC_TRADES = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("side", pa.string(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("size", pa.float64(), nullable=False),
        pa.field("block_trade", pa.bool_(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
    ],
    metadata={b"dataset": b"public_trades", b"time_unit": b"ms"},
)


def label_columns(horizons_s: Sequence[int] = HORIZONS_S) -> list[str]:
    cols = []
    for h in horizons_s:
        cols += [f"future_return_{h}s", f"direction_{h}s"]
    return cols


def labelled_features_schema(spec: FeatureSpec, horizons_s: Sequence[int] = HORIZONS_S) -> pa.Schema:
    """110 float64 features, then per horizon the future return [bps] and direction (-1, 0, 1)."""
    fields = [pa.field("symbol", pa.string(), nullable=False), pa.field("ts", pa.int64(), nullable=False)]
    fields += [pa.field(n, pa.float64(), nullable=False) for n in spec.names]
    for h in horizons_s:
        fields.append(pa.field(f"future_return_{h}s", pa.float64(), nullable=False))
        fields.append(pa.field(f"direction_{h}s", pa.int8(), nullable=False))
    return pa.schema(
        fields,
        metadata={
            b"dataset": b"labelled_features",
            b"time_unit": b"ms",
            SPEC_HASH_METADATA_KEY: spec.spec_hash.encode(),
        },
    )


def raw_rows_to_table(rows: Iterable[RawSnapshotRow]) -> pa.Table:
    """Columnar copy of raw snapshot rows, typed by RAW_SNAPSHOTS."""
    rows = list(rows)
    columns: dict[str, list[Any]] = {n: [getattr(r, n) for r in rows] for n in RAW_SNAPSHOT_FIELDS}
    return pa.Table.from_pydict(columns, schema=RAW_SNAPSHOTS)


def table_to_raw_rows(table: pa.Table) -> list[RawSnapshotRow]:
    """Validated records back from a RAW_SNAPSHOTS table (raises naming the first bad row)."""
    missing = [n for n in RAW_SNAPSHOT_FIELDS if n not in table.column_names]
    if missing:
        raise ValueError(f"table is not a raw_snapshots table: missing columns {missing}")
    return [RawSnapshotRow(**record) for record in table.select(list(RAW_SNAPSHOT_FIELDS)).to_pylist()]


def candles_to_table(candles: Iterable[Candle]) -> pa.Table:
    candles = list(candles)
    return pa.Table.from_pydict({n: [getattr(c, n) for c in candles] for n in CANDLES.names}, schema=CANDLES)


def trades_to_table(trades: Iterable[PublicTrade]) -> pa.Table:
    trades = list(trades)
    return pa.Table.from_pydict(
        {
            n: [str(getattr(t, n)) if n == "side" else getattr(t, n) for t in trades]
            for n in PUBLIC_TRADES.names
        },
        schema=PUBLIC_TRADES,
    )
