"""Labels: as-of future mid moves at each horizon, the dead band, and the rows that must be dropped."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from ml.labels import (
    LabelConfig,
    attach_labels,
    compute_labels,
    direction_of,
    future_movement_bps,
    label_rows,
    two_sided_mid,
)
from schemas.arrow import SPEC_HASH_METADATA_KEY, labelled_features_schema, raw_rows_to_table
from schemas.features import feature_spec
from schemas.snapshot import RawSnapshotRow, pad_levels

T0 = 1_767_225_600_000
SPEC = feature_spec()


def bps(a: float, b: float) -> float:
    return 1e4 * math.log(b / a)


def raw_row(
    ts: int, bid: float | None, ask: float | None, *, symbol: str = "BTCUSDT", reset: bool = False
) -> RawSnapshotRow:
    bids = [bid, bid - 0.1] if bid is not None else []
    asks = [ask, ask + 0.1] if ask is not None else []
    return RawSnapshotRow(
        symbol=symbol,
        ts=ts,
        interval_ms=1000,
        book_reset=reset,
        n_bid_levels=len(bids),
        n_ask_levels=len(asks),
        bid_prices=pad_levels(bids),
        bid_sizes=pad_levels([1.0] * len(bids)),
        ask_prices=pad_levels(asks),
        ask_sizes=pad_levels([1.0] * len(asks)),
        last_candle_start_ms=-1,
        n_book_msgs=0,
        n_bbo_changes=0,
        bid_inserts=0,
        bid_updates=0,
        bid_deletes=0,
        ask_inserts=0,
        ask_updates=0,
        ask_deletes=0,
        ttl_count=0,
        ttl_sum_s=0.0,
        ttl_sumsq_s2=0.0,
        n_buy_trades=0,
        n_sell_trades=0,
        buy_volume=0.0,
        sell_volume=0.0,
        buy_notional=0.0,
        sell_notional=0.0,
        eff_spread_wsum=0.0,
        eff_spread_volume=0.0,
        last_trade_price=0.0,
        late_messages=0,
    )


def features_for(raw: pa.Table, *, symbol: str = "BTCUSDT") -> pa.Table:
    """A stand-in for the pipeline's output: symbol, ts and 110 columns (value = row index + column/1000)."""
    ts = raw.column("ts").to_numpy()
    cols: dict[str, object] = {"symbol": [symbol] * len(ts), "ts": ts}
    for c, name in enumerate(SPEC.names):
        cols[name] = np.arange(len(ts), dtype=np.float64) + c / 1000
    return pa.table(cols)


# ---- arrays --------------------------------------------------------------------------------------------


def test_movement_is_the_as_of_mid_move_and_the_tail_is_dropped() -> None:
    n = 40
    ts = T0 + 1000 * np.arange(n)
    mid = 100.0 * np.exp(np.linspace(0, 0.01, n)) + np.sin(np.arange(n))
    mv = future_movement_bps(ts, mid, 10, 1000)
    for i in range(n - 10):
        assert mv[i] == pytest.approx(bps(mid[i], mid[i + 10]), abs=1e-12)
    assert np.isnan(mv[n - 10 :]).all()  # no row at t + 10 s: never guessed


def test_a_recording_gap_inside_the_horizon_drops_the_row() -> None:
    # rows 0..19 s, then a 5 s hole, then rows 25..59 s
    ts = T0 + 1000 * np.concatenate([np.arange(20), np.arange(25, 60)])
    mid = np.linspace(100, 101, len(ts))
    mv = future_movement_bps(ts, mid, 10, 1000)
    by_second = dict(zip(((ts - T0) // 1000).tolist(), mv.tolist(), strict=True))
    assert all(not math.isnan(by_second[s]) for s in range(10))  # 0 + 10 = 10 still in the first run
    assert all(math.isnan(by_second[s]) for s in range(10, 20))  # horizon crosses the hole (or ends on it)
    assert all(not math.isnan(by_second[s]) for s in range(25, 50))
    assert all(math.isnan(by_second[s]) for s in range(50, 60))
    assert by_second[25] == pytest.approx(bps(mid[20], mid[30]))


def test_a_row_one_short_of_the_horizon_is_not_enough() -> None:
    # The recording ends at t + h − interval: the mid at t + h is unknown, so no label (not a 9 s one).
    ts = T0 + 1000 * np.arange(10)
    assert np.isnan(future_movement_bps(ts, np.full(10, 100.0), 10, 1000)).all()
    ts11 = T0 + 1000 * np.arange(11)
    assert future_movement_bps(ts11, np.full(11, 100.0), 10, 1000)[0] == 0.0


def test_as_of_lookup_when_the_horizon_is_off_the_row_grid() -> None:
    ts = T0 + 3000 * np.arange(8)  # 3 s rows: t + 10 s falls between rows, the as-of row is t + 9 s
    mid = 100 + np.arange(8, dtype=float)
    mv = future_movement_bps(ts, mid, 10, 3000)
    assert mv[0] == pytest.approx(bps(mid[0], mid[3]))
    assert np.isfinite(mv[:5]).all() and np.isnan(mv[5:]).all()


def test_one_sided_rows_at_either_end_drop_the_label_but_not_in_between() -> None:
    n = 30
    ts = T0 + 1000 * np.arange(n)
    mid = np.linspace(100, 103, n)
    mid[5] = np.nan  # one-sided row
    mv = future_movement_bps(ts, mid, 10, 1000)
    assert np.isnan(mv[5])  # start is one-sided
    assert np.isfinite(mv[4]) and np.isfinite(mv[6])  # row 5 lies strictly inside their horizons
    assert mv[4] == pytest.approx(bps(mid[4], mid[14]))


def test_unsorted_or_duplicate_ts_raise() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        future_movement_bps(np.array([T0, T0, T0 + 1000]), np.ones(3), 10, 1000)
    with pytest.raises(ValueError, match="one length"):
        future_movement_bps(np.array([T0, T0 + 1000]), np.ones(3), 10, 1000)
    with pytest.raises(ValueError, match="integer"):
        future_movement_bps(np.array([1.0, 2.0]), np.ones(2), 10, 1000)


def test_dead_band_is_strict_and_may_differ_per_horizon() -> None:
    assert direction_of(np.array([0.5, 0.50001, -0.5, -0.6, 0.0]), 0.5).tolist() == [0, 1, 0, -1, 0]
    n = 80
    ts = T0 + 1000 * np.arange(n)
    mid = 100 * np.exp(np.arange(n) * 1e-4 / 2)  # exactly +0.5 bps per row
    labels = compute_labels(ts, mid, LabelConfig(dead_band_bps={10: 4.9, 30: 15.001, 60: 40.0}))
    assert labels.horizons_s == (10, 30, 60)
    np.testing.assert_allclose(labels.movement_bps[0], [5.0, 15.0, 30.0], rtol=1e-9)
    assert labels.direction[0].tolist() == [1, 0, 0]  # 5 > 4.9; 15 < 15.001; 30 < 40
    assert labels.labelled.sum() == n - 60
    assert labels.direction.dtype == np.int8
    with pytest.raises(ValueError, match="no band for horizons"):
        LabelConfig(dead_band_bps={10: 1.0})
    with pytest.raises(ValueError, match="dead bands"):
        LabelConfig(dead_band_bps=-1.0)
    with pytest.raises(ValueError, match="horizons_s"):
        LabelConfig(horizons_s=(10, 10))


# ---- raw rows and the labelled_features table ----------------------------------------------------------


def test_two_sided_mid_from_raw_rows() -> None:
    table = raw_rows_to_table(
        [raw_row(T0, 99.9, 100.1), raw_row(T0 + 1000, None, 100.2), raw_row(T0 + 2000, 100.0, None)]
    )
    mid = two_sided_mid(table)
    assert mid[0] == (99.9 + 100.1) / 2
    assert np.isnan(mid[1:]).all()


def test_label_rows_from_a_raw_table_with_a_book_reset_and_a_gap() -> None:
    mids = {s: 100 + 0.01 * s for s in range(100)}
    seconds = [s for s in range(100) if not 70 <= s < 73]  # a 3 s recording gap
    rows = [raw_row(T0 + 1000 * s, mids[s] - 0.05, mids[s] + 0.05, reset=s in (0, 40)) for s in seconds]
    out = label_rows(raw_rows_to_table(rows[::-1]))  # order of the input does not matter
    got = ((out.column("ts").to_numpy() - T0) // 1000).tolist()
    # labelled: a full 60 s ahead in the same run. The reset at 40 s does not cut anything.
    assert got == list(range(0, 10))
    assert out.column_names == [
        "symbol",
        "ts",
        *[c for h in (10, 30, 60) for c in (f"future_return_{h}s", f"direction_{h}s")],
    ]
    assert out.column("future_return_30s")[0].as_py() == pytest.approx(bps(mids[0], mids[30]))
    assert out.column("direction_10s").type == pa.int8()


def test_label_rows_refuses_two_symbols_and_empty_tables() -> None:
    rows = [raw_row(T0, 99.9, 100.1), raw_row(T0 + 1000, 99.9, 100.1, symbol="ETHUSDT")]
    with pytest.raises(ValueError, match="exactly one symbol"):
        label_rows(raw_rows_to_table(rows))
    with pytest.raises(ValueError, match="empty"):
        label_rows(raw_rows_to_table([]))


def test_attach_labels_builds_the_labelled_features_table() -> None:
    n = 130
    rows = [raw_row(T0 + 1000 * s, 100 + 0.01 * s - 0.05, 100 + 0.01 * s + 0.05) for s in range(n)]
    rows[20] = raw_row(T0 + 20_000, None, 100.3)  # one-sided: no label at 20, nor where 20 is the end
    raw = raw_rows_to_table(rows)
    features = features_for(raw.slice(0, 100))  # the day; the raw rows run 30 s past it
    out = attach_labels(features, raw, spec=SPEC)
    assert out.schema.equals(labelled_features_schema(SPEC), check_metadata=True)
    assert out.schema.metadata[SPEC_HASH_METADATA_KEY] == SPEC.spec_hash.encode()
    seconds = ((out.column("ts").to_numpy() - T0) // 1000).tolist()
    # ends of the 60 s horizon must be ≤ 129 s; 20 is one-sided; 10 and (−40) end on row 20 at 10 s
    expected = [s for s in range(70) if s not in (20, 10)]
    assert seconds == expected
    # features travel with their own ts
    np.testing.assert_array_equal(
        out.column("mid_price").to_numpy(), np.array(expected, dtype=float) + 2 / 1000
    )
    assert out.column("future_return_60s")[0].as_py() == pytest.approx(bps(100.0, 100.6))


def test_attach_labels_refuses_inconsistent_inputs() -> None:
    rows = [raw_row(T0 + 1000 * s, 99.95, 100.05) for s in range(80)]
    raw = raw_rows_to_table(rows)
    features = features_for(raw)
    with pytest.raises(ValueError, match="but the raw rows are of"):
        attach_labels(features_for(raw, symbol="ETHUSDT"), raw, spec=SPEC)
    with pytest.raises(ValueError, match="have no raw row"):
        attach_labels(features, raw.slice(5), spec=SPEC)
    with pytest.raises(ValueError, match="lacks 1 columns"):
        attach_labels(features.drop_columns(["nvi"]), raw, spec=SPEC)
    tagged = features.replace_schema_metadata({SPEC_HASH_METADATA_KEY: b"0" * 64})
    with pytest.raises(ValueError, match="computed under feature spec"):
        attach_labels(tagged, raw, spec=SPEC)
    bad = features.set_column(
        features.column_names.index("vwap_bid_5"), "vwap_bid_5", pa.array([np.nan] * 80)
    )
    with pytest.raises(ValueError, match=r"vwap_bid_5 of BTCUSDT at ts .* is not finite"):
        attach_labels(bad, raw, spec=SPEC)
    with pytest.raises(ValueError, match="interval_ms"):
        attach_labels(features, raw, spec=SPEC, config=LabelConfig(interval_ms=500))
