"""Every data check passes on a recorded partition and fails, saying why, on the same partition corrupted."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from depthcharge.offline_recording import DEFAULT_START_MS
from ml.data_checks import (
    check_class_balance,
    check_features_finite,
    check_label_coverage,
    check_no_lookahead,
    check_raw_rows,
    check_spec_hash,
    class_shares,
    feature_summary,
)
from ml.lake import RawPartition, partition_labelled_features
from schemas.features import feature_spec
from tests.ml.test_lake import partition_of, tables

SPEC = feature_spec()
START, END = DEFAULT_START_MS + 600_000, DEFAULT_START_MS + 1_200_000


def partition() -> tuple[RawPartition, pa.Table]:
    raw = partition_of(tables(), START, END)
    return raw, partition_labelled_features(raw, spec=SPEC)


def test_raw_rows_in_order_one_per_interval() -> None:
    raw, _ = partition()
    good = check_raw_rows(raw.rows, interval_ms=1000, start_ms=START, end_ms=END)
    assert good.passed and good.metadata["rows"] == 600 and good.metadata["coverage"] == 1.0

    swapped = pa.concat_tables([raw.rows.slice(1, 1), raw.rows.slice(0, 1), raw.rows.slice(2)])
    bad = check_raw_rows(swapped, interval_ms=1000, start_ms=START, end_ms=END)
    assert not bad.passed and bad.metadata["out_of_order"] == 1 and "out of time order" in bad.description

    doubled = pa.concat_tables([raw.rows, raw.rows.slice(5, 1)]).sort_by("ts")
    bad = check_raw_rows(doubled, interval_ms=1000, start_ms=START, end_ms=END)
    assert not bad.passed and bad.metadata["duplicates"] == 1

    ts = raw.rows.column("ts").to_numpy().copy()
    ts[10] += 400  # between two grid points
    off = raw.rows.set_column(raw.rows.schema.get_field_index("ts"), "ts", pa.array(ts))
    bad = check_raw_rows(off, interval_ms=1000, start_ms=START, end_ms=END)
    assert not bad.passed and bad.metadata["off_grid"] == 1

    bad = check_raw_rows(raw.rows, interval_ms=1000, start_ms=START + 60_000, end_ms=END)
    assert not bad.passed and bad.metadata["outside_window"] == 60

    # A gap (a restart) is not an error: it shows as coverage.
    gap = pa.concat_tables([raw.rows.slice(0, 100), raw.rows.slice(200)])
    ok = check_raw_rows(gap, interval_ms=1000, start_ms=START, end_ms=END)
    assert ok.passed and ok.metadata["gaps"] == 1 and ok.metadata["longest_gap_s"] == 101.0


def test_features_finite_and_spec_hash() -> None:
    _, features = partition()
    assert check_features_finite(features, SPEC.names).passed
    values = features.column("bid_ask_spread_rel").to_numpy().copy()
    values[[3, 7]] = [np.nan, np.inf]
    broken = features.set_column(
        features.schema.get_field_index("bid_ask_spread_rel"), "bid_ask_spread_rel", pa.array(values)
    )
    bad = check_features_finite(broken, SPEC.names)
    assert (
        not bad.passed and bad.metadata["non_finite_values"] == 2 and "bid_ask_spread_rel" in bad.description
    )

    assert check_spec_hash(features, SPEC.spec_hash, "the registry").passed
    other = feature_spec(500).spec_hash
    bad = check_spec_hash(features, other, "production model X")
    assert not bad.passed and "production model X" in bad.description
    bare = features.replace_schema_metadata({})
    assert not check_spec_hash(bare, SPEC.spec_hash, "the registry").passed


def test_label_coverage_and_class_balance() -> None:
    raw, features = partition()
    assert check_label_coverage(raw.rows.num_rows, features.num_rows, 0.9).passed
    bad = check_label_coverage(raw.rows.num_rows, features.num_rows // 2, 0.9)
    assert not bad.passed and "labelled" in bad.description

    assert check_class_balance(features, minimum=0.02, maximum=0.9).passed
    shares = class_shares(features)
    assert abs(sum(shares["10s"].values()) - 1) < 1e-9
    flat = features.set_column(
        features.schema.get_field_index("direction_10s"),
        "direction_10s",
        pa.array(np.zeros(features.num_rows, dtype=np.int8)),
    )
    bad = check_class_balance(flat, minimum=0.02, maximum=0.9)
    assert not bad.passed and "flat 100.0% at 10 s" in bad.description


def test_no_lookahead_catches_features_that_read_the_future() -> None:
    raw, features = partition()
    good = check_no_lookahead(raw, features, SPEC)
    assert good.passed and good.metadata["rows_compared"] > 120

    # Every feature at t replaced by its value at t + 1 s: what a look-ahead bug produces.
    idx = np.minimum(np.arange(features.num_rows) + 1, features.num_rows - 1)
    leaked = features
    for name in SPEC.names:
        column = leaked.column(name).to_numpy()
        leaked = leaked.set_column(leaked.schema.get_field_index(name), name, pa.array(column[idx]))
    bad = check_no_lookahead(raw, leaked, SPEC)
    assert not bad.passed and "change when the data after" in bad.description

    # Rows that pin a candle which closes after them (the candle of the current minute).
    rows = raw.rows
    pins = rows.column("last_candle_start_ms").to_numpy() + 60_000
    future = RawPartition(
        raw.symbol,
        raw.start_ms,
        raw.end_ms,
        rows.set_column(
            rows.schema.get_field_index("last_candle_start_ms"), "last_candle_start_ms", pa.array(pins)
        ).cast(rows.schema),
        raw.trades,
        raw.candles,
        raw.lookback,
    )
    bad = check_no_lookahead(future, features, SPEC)
    assert not bad.passed and "closes after it" in bad.description


def test_feature_summary() -> None:
    _, features = partition()
    stats = {s.name: s for s in feature_summary(features, SPEC.names)}
    assert len(stats) == len(SPEC.names)
    mid = stats["mid_price"]
    assert mid.minimum <= mid.p01 <= mid.median <= mid.p99 <= mid.maximum and mid.non_finite == 0
