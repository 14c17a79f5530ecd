from __future__ import annotations

from decimal import Decimal

import msgspec
import pyarrow as pa
import pytest

from schemas.arrow import (
    RAW_SNAPSHOTS,
    SPEC_HASH_METADATA_KEY,
    candles_to_table,
    labelled_features_schema,
    raw_rows_to_table,
    table_to_raw_rows,
    trades_to_table,
)
from schemas.enums import OrderStatus, Side
from schemas.features import feature_spec
from schemas.market import BookLevel, BookSnapshot, Candle
from schemas.model import DataWindow, ModelManifest
from schemas.snapshot import BOOK_DEPTH, RAW_SNAPSHOT_FIELDS, RawSnapshotRow, pad_levels, row_from_mapping
from schemas.trading import Fill
from testkit.rows import T0_MS, candles, snapshot_rows, trades

SHARED_FIELDS = [
    "symbol",
    "ts",
    "interval_ms",
    "book_reset",
    "n_bid_levels",
    "n_ask_levels",
    "bid_prices",
    "bid_sizes",
    "ask_prices",
    "ask_sizes",
    "last_candle_start_ms",
    "n_book_msgs",
    "n_bbo_changes",
    "bid_inserts",
    "bid_updates",
    "bid_deletes",
    "ask_inserts",
    "ask_updates",
    "ask_deletes",
    "ttl_count",
    "ttl_sum_s",
    "ttl_sumsq_s2",
    "n_buy_trades",
    "n_sell_trades",
    "buy_volume",
    "sell_volume",
    "buy_notional",
    "sell_notional",
    "eff_spread_wsum",
    "eff_spread_volume",
    "last_trade_price",
    "late_messages",
]


def test_raw_row_has_exactly_the_features_md_fields_in_order() -> None:
    assert list(RAW_SNAPSHOT_FIELDS[: len(SHARED_FIELDS)]) == SHARED_FIELDS
    assert RAW_SNAPSHOT_FIELDS[len(SHARED_FIELDS) :] == (
        "book_update_id",
        "book_msg_ts",
    )  # optional diagnostics
    assert RAW_SNAPSHOTS.names == list(RAW_SNAPSHOT_FIELDS)
    assert RAW_SNAPSHOTS.field("bid_prices").type == pa.list_(pa.float64(), BOOK_DEPTH)


def _row(**changes: object) -> RawSnapshotRow:
    base = next(snapshot_rows(1))
    return RawSnapshotRow(**{**{f: getattr(base, f) for f in RAW_SNAPSHOT_FIELDS}, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bid_prices": [1.0] * 49}, "bid_prices must hold 50 values"),
        ({"n_ask_levels": 51}, "n_ask_levels must be in 0..50"),
        ({"n_bid_levels": 0}, r"bid_prices\[0\] is padding past 0 levels"),
        ({"ask_sizes": pad_levels([float("nan")])}, r"ask_sizes\[0\] is not finite"),
        ({"buy_volume": -1.0}, "buy_volume must be finite and >= 0"),
        ({"bid_deletes": -2}, "bid_deletes must be >= 0"),
        ({"interval_ms": -1}, "interval_ms must be >= 0"),
        ({"symbol": ""}, "symbol is empty"),
    ],
)
def test_bad_rows_are_refused_naming_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _row(**changes)


def test_rows_arrow_round_trip_and_mapping() -> None:
    rows = list(snapshot_rows(50))
    table = raw_rows_to_table(rows)
    assert table.schema == RAW_SNAPSHOTS
    assert table_to_raw_rows(table) == rows
    assert row_from_mapping(table.slice(3, 1).to_pylist()[0]) == rows[3]
    with pytest.raises(msgspec.ValidationError, match="n_bid_levels"):
        row_from_mapping({**table.slice(0, 1).to_pylist()[0], "n_bid_levels": 99})
    with pytest.raises(ValueError, match="missing columns"):
        table_to_raw_rows(table.drop_columns(["ttl_count"]))


def test_other_lake_schemas() -> None:
    spec = feature_spec()
    schema = labelled_features_schema(spec)
    assert schema.names[2:112] == list(spec.names)
    assert schema.names[112:] == [
        "future_return_10s",
        "direction_10s",
        "future_return_30s",
        "direction_30s",
        "future_return_60s",
        "direction_60s",
    ]
    assert schema.metadata[SPEC_HASH_METADATA_KEY] == spec.spec_hash.encode()
    assert candles_to_table(candles(3)).num_rows == 3
    assert trades_to_table(trades(4)).column("side").to_pylist()[0] in ("Buy", "Sell")


def test_market_record_validation() -> None:
    with pytest.raises(ValueError, match="is crossed"):
        BookSnapshot(symbol="X", ts=1, bids=[BookLevel(10.0, 1.0)], asks=[BookLevel(9.0, 1.0)])
    with pytest.raises(ValueError, match="not strictly ordered"):
        BookSnapshot(symbol="X", ts=1, bids=[BookLevel(9.0, 1.0), BookLevel(10.0, 1.0)], asks=[])
    with pytest.raises(ValueError, match="OHLC inconsistent"):
        Candle(symbol="X", start_ms=T0_MS, open=10, high=9, low=8, close=9, volume=1, turnover=9)
    with pytest.raises(ValueError, match="not a multiple of 60000"):
        Candle(symbol="X", start_ms=T0_MS + 1, open=9, high=9, low=9, close=9, volume=0, turnover=0)


def test_money_is_decimal_on_the_wire() -> None:
    fill = Fill(
        exec_id="e",
        symbol="BTCUSDT",
        side=Side.BUY,
        price=Decimal("64000.10"),
        quantity=Decimal("0.001"),
        fee=Decimal("0.0352000550"),
        ts=T0_MS,
    )
    encoded = msgspec.json.encode(fill)
    assert b'"price":"64000.10"' in encoded
    assert msgspec.json.decode(encoded, type=Fill) == fill
    assert OrderStatus.FILLED.is_terminal and not OrderStatus.PLACED.is_terminal


def test_manifest_json_round_trip_and_validation() -> None:
    spec = feature_spec()
    m = ModelManifest(
        version="v1",
        model_type="cnn_lstm",
        created_ms=T0_MS,
        feature_spec_hash=spec.spec_hash,
        definitions_version=1,
        feature_names=list(spec.names),
        horizons_s=[10],
        artifact_path="a",
        artifact_sha256="0" * 64,
        data_window=DataWindow(symbols=["BTCUSDT"], start_ms=0, end_ms=1),
        code_version="c",
    )
    assert ModelManifest.from_json(m.to_json()) == m
    with pytest.raises(msgspec.ValidationError, match="artifact_sha256"):
        ModelManifest.from_json(m.to_json().replace(b"0" * 64, b"0" * 10))
