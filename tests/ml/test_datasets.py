"""Datasets: windows of consecutive rows, purged time splits, Parquet storage with the spec hash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.datasets import (
    WINDOW,
    LabelledRows,
    Split,
    WindowedDataset,
    build_windowed_dataset,
    class_balance,
    fit_preprocessor,
    format_class_balance,
    leakage_gap_ms,
    read_labelled_features,
    train_val_test_split,
    walk_forward_splits,
    window_rows,
    write_labelled_features,
)
from ml.features.pipeline import compute_features
from ml.labels import attach_labels, two_sided_mid
from schemas.arrow import SPEC_HASH_METADATA_KEY, labelled_features_schema
from schemas.features import FeatureSpec, feature_spec
from tests.fixtures.recorded import recorded_arrow

T0 = 1_767_225_600_000
SPEC = feature_spec()
H_MAX_MS = 60_000


def labelled_table(
    symbol: str, seconds: np.ndarray | range, *, seed: int = 0, spec: FeatureSpec = SPEC
) -> pa.Table:
    """A labelled_features table whose feature values encode (symbol, second) so rows can be traced."""
    seconds = np.asarray(seconds)
    rng = np.random.default_rng(seed)
    n = len(seconds)
    cols: dict[str, object] = {"symbol": [symbol] * n, "ts": T0 + 1000 * seconds}
    for c, name in enumerate(spec.names):
        cols[name] = seconds + c * 1e-3 + rng.normal(0, 1e-6, n)
    cols["mid_price"] = 100.0 + seconds * 0.01
    for h in (10, 30, 60):
        move = rng.normal(0, 2, n)
        cols[f"future_return_{h}s"] = move
        cols[f"direction_{h}s"] = np.where(move > 0.5, 1, np.where(move < -0.5, -1, 0)).astype(np.int8)
    return pa.Table.from_pydict(cols, schema=labelled_features_schema(spec))


def assert_windows_consecutive(rows: LabelledRows, ds: WindowedDataset) -> None:
    for end in ds.ends:
        sl = slice(end - WINDOW + 1, end + 1)
        assert len(set(rows.symbols[sl])) == 1
        assert (np.diff(rows.ts_ms[sl]) == 1000).all()


# ---- windows -------------------------------------------------------------------------------------------


def test_windows_never_cross_symbols_or_gaps() -> None:
    btc = labelled_table("BTCUSDT", np.concatenate([np.arange(0, 100), np.arange(130, 200)]))  # a 30 s gap
    eth = labelled_table("ETHUSDT", np.arange(100, 180), seed=1)  # ts adjacent to BTC's, other symbol
    rows = LabelledRows.from_tables([eth, btc])
    ds = rows.windowed()
    assert_windows_consecutive(rows, ds)
    # BTC runs of 100 and 70 rows, ETH 80 rows: L − 59 windows each
    assert len(ds) == (100 - 59) + (70 - 59) + (80 - 59)
    assert sorted(set(ds.symbols.tolist())) == ["BTCUSDT", "ETHUSDT"]
    first_btc = ds.ts_ms[ds.symbols == "BTCUSDT"]
    assert first_btc.min() == T0 + 59_000 and T0 + 130_000 + 59_000 in first_btc
    assert not ((first_btc > T0 + 99_000) & (first_btc < T0 + 189_000)).any()
    win = ds.windows(np.arange(3))
    assert win.shape == (3, WINDOW, 110) and win.dtype == np.float32
    np.testing.assert_array_equal(ds.last_vectors(np.arange(3)), win[:, -1, :])


def test_dataset_fields_come_from_the_labelled_rows() -> None:
    table = labelled_table("BTCUSDT", range(100))
    ds = build_windowed_dataset(table)
    assert len(ds) == 41
    assert ds.horizons_s == (10, 30, 60)
    np.testing.assert_array_equal(ds.ts_ms, T0 + 1000 * np.arange(59, 100))
    np.testing.assert_array_equal(ds.direction[:, 1], table.column("direction_30s").to_numpy()[59:] + 1)
    np.testing.assert_array_equal(ds.movement_bps[:, 2], table.column("future_return_60s").to_numpy()[59:])
    np.testing.assert_array_equal(ds.mid, 100.0 + np.arange(59, 100) * 0.01)
    assert ds.direction.dtype == np.int64 and set(np.unique(ds.direction)) <= {0, 1, 2}
    # window i is rows ts − 59 s … ts: the value of feature #1 encodes the second
    np.testing.assert_allclose(ds.windows(np.array([0]))[0, :, 0], np.arange(60), atol=1e-4)


def test_stride_and_day_tables_that_join_at_midnight() -> None:
    day1 = labelled_table("BTCUSDT", range(0, 100))
    day2 = labelled_table("BTCUSDT", range(100, 200), seed=3)
    rows = LabelledRows.from_tables([day2, day1])
    ds = rows.windowed()
    assert len(ds) == 200 - 59  # windows run across the two tables
    strided = rows.windowed(stride=10)
    np.testing.assert_array_equal(strided.ends, ds.ends[::10])
    with pytest.raises(ValueError, match="stride"):
        rows.windowed(stride=0)


def test_bad_tables_are_refused() -> None:
    day = labelled_table("BTCUSDT", range(80))
    with pytest.raises(ValueError, match="appears twice"):
        LabelledRows.from_tables([day, day])
    other = labelled_table("BTCUSDT", range(80), spec=feature_spec(500))
    with pytest.raises(ValueError, match=r"table #1: .*built under feature spec"):
        LabelledRows.from_tables([day, other])
    with pytest.raises(ValueError, match="missing"):
        LabelledRows.from_tables(day.drop_columns(["nvi"]))
    with pytest.raises(ValueError, match="no labelled_features tables"):
        LabelledRows.from_tables([])
    bare = day.replace_schema_metadata({})
    with pytest.raises(ValueError, match="no feature-spec hash"):
        LabelledRows.from_tables(bare)


# ---- splits --------------------------------------------------------------------------------------------


def multi_symbol_dataset() -> WindowedDataset:
    tables = [labelled_table(s, range(0, 3000), seed=i) for i, s in enumerate(("BTCUSDT", "ETHUSDT"))]
    tables.append(
        labelled_table("SOLUSDT", np.concatenate([np.arange(0, 1000), np.arange(1500, 3000)]), seed=9)
    )
    return build_windowed_dataset(tables)


def max_label_end(ds: WindowedDataset, idx: np.ndarray) -> int:
    return int(ds.ts_ms[idx].max()) + H_MAX_MS


def min_window_start(ds: WindowedDataset, idx: np.ndarray) -> int:
    return int(ds.ts_ms[idx].min()) - (WINDOW - 1) * 1000


@pytest.mark.parametrize("purge_ms", [0, 60_000, 300_000])
def test_train_val_test_split_is_chronological_and_purged(purge_ms: int) -> None:
    ds = multi_symbol_dataset()
    split = train_val_test_split(ds, (0.6, 0.2, 0.2), purge_ms=purge_ms)
    assert split.purge_ms == purge_ms
    for earlier, later in (
        (split.train, split.validation),
        (split.validation, split.test),
        (split.train, split.test),
    ):
        assert max_label_end(ds, earlier) + purge_ms < min_window_start(ds, later)
        assert leakage_gap_ms(ds, earlier, later) == min_window_start(ds, later) - max_label_end(ds, earlier)
    assert not set(split.train) & set(split.test) and not set(split.validation) & set(split.test)
    # only the boundary is purged: the gap is at most one purge span (+ window + horizon + 1 row) wide
    gap = min_window_start(ds, split.validation) - max_label_end(ds, split.train)
    assert gap <= purge_ms + 1000
    lost = len(ds) - len(split.train) - len(split.validation) - len(split.test)
    assert lost <= 2 * 3 * (purge_ms + H_MAX_MS + WINDOW * 1000) // 1000
    per_boundary = 3 * (purge_ms + H_MAX_MS + WINDOW * 1000) // 1000  # 3 symbols
    assert int(0.6 * len(ds)) - per_boundary - 3 <= len(split.train) <= int(0.6 * len(ds)) + 3
    described = split.describe(ds)
    assert described["test"]["n"] == len(split.test) and described["purge_ms"] == purge_ms


def test_default_purge_is_the_longest_horizon_and_errors_are_clear() -> None:
    ds = multi_symbol_dataset()
    assert train_val_test_split(ds).purge_ms == H_MAX_MS
    no_val = train_val_test_split(ds, (0.8, 0.0, 0.2))
    assert len(no_val.validation) == 0
    assert max_label_end(ds, no_val.train) + H_MAX_MS < min_window_start(ds, no_val.test)
    with pytest.raises(ValueError, match="summing to 1"):
        train_val_test_split(ds, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="purge_ms"):
        train_val_test_split(ds, purge_ms=-1)
    small = build_windowed_dataset(labelled_table("BTCUSDT", range(100)))
    with pytest.raises(ValueError, match="too little data"):
        train_val_test_split(small, purge_ms=60_000)


def test_walk_forward_folds_expand_and_purge() -> None:
    ds = multi_symbol_dataset()
    folds = walk_forward_splits(ds, n_folds=3, test_fraction=0.15, purge_ms=30_000, validation_fraction=0.1)
    assert len(folds) == 3 and all(isinstance(f, Split) for f in folds)
    previous_test_end = None
    for f in folds:
        assert max_label_end(ds, f.train) + 30_000 < min_window_start(ds, f.test)
        assert max_label_end(ds, f.train) + 30_000 < min_window_start(ds, f.validation)
        assert max_label_end(ds, f.validation) + 30_000 < min_window_start(ds, f.test)
        if previous_test_end is not None:
            assert ds.ts_ms[f.test].min() > previous_test_end  # consecutive, disjoint test blocks
        previous_test_end = ds.ts_ms[f.test].max()
    assert len(folds[0].train) < len(folds[1].train) < len(folds[2].train)  # expanding window
    assert ds.ts_ms[folds[-1].test].max() == ds.ts_ms.max()
    sizes = [len(f.test) / len(ds) for f in folds]
    assert all(0.13 < s < 0.17 for s in sizes)
    with pytest.raises(ValueError, match="n_folds × test_fraction"):
        walk_forward_splits(ds, n_folds=5, test_fraction=0.2)


# ---- preprocessing on the training fold ----------------------------------------------------------------


def test_fit_preprocessor_reads_only_the_training_windows() -> None:
    rows = LabelledRows.from_tables(labelled_table("BTCUSDT", range(1000)))
    ds = rows.windowed()
    split = train_val_test_split(ds, (0.6, 0.2, 0.2))
    used = window_rows(ds, split.train)
    assert used.min() == 0 and used.max() == ds.ends[split.train].max()
    ds_pre, pre = fit_preprocessor(rows, ds, split.train)
    assert pre.n_fit_rows == len(used)
    assert ds_pre.features.dtype == np.float32 and np.isfinite(ds_pre.features).all()
    np.testing.assert_array_equal(ds_pre.ends, ds.ends)
    # change every row after the training windows: the fitted scaler does not move
    tampered = replace(rows, features=rows.features.copy())
    tampered.features[used.max() + 1 :] *= 1e3
    _, pre2 = fit_preprocessor(tampered, tampered.windowed(), split.train)
    assert pre2.to_dict() == pre.to_dict()


# ---- class balance -------------------------------------------------------------------------------------


def test_class_balance_counts_each_class() -> None:
    ds = build_windowed_dataset(labelled_table("BTCUSDT", range(200)))
    balance = class_balance(ds)
    for k, h in enumerate((10, 30, 60)):
        counts = np.bincount(ds.direction[:, k], minlength=3)
        entry = balance[f"{h}s"]
        assert (entry["down"], entry["flat"], entry["up"]) == tuple(counts)
        assert entry["n"] == len(ds)
        assert entry["up_share"] == pytest.approx(counts[2] / len(ds))
    sub = class_balance(ds, np.arange(10))
    assert sub["10s"]["n"] == 10
    text = format_class_balance(balance)
    assert "10s" in text and "60s" in text and "%" in text


# ---- Parquet -------------------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path) -> None:
    table = labelled_table("BTCUSDT", range(300))
    path = write_labelled_features(table, tmp_path / "lake" / "BTCUSDT" / "2026-01-01.parquet")
    assert not list(path.parent.glob("*.tmp"))
    back = read_labelled_features(path)
    assert back.equals(table) and back.schema.equals(table.schema, check_metadata=True)
    assert back.schema.metadata[SPEC_HASH_METADATA_KEY] == SPEC.spec_hash.encode()
    ds_a, ds_b = build_windowed_dataset(table), build_windowed_dataset(back)
    np.testing.assert_array_equal(ds_a.features, ds_b.features)


def test_parquet_refuses_another_spec_or_no_hash(tmp_path: Path) -> None:
    other_spec = feature_spec(500)
    path = write_labelled_features(
        labelled_table("BTCUSDT", range(100), spec=other_spec), tmp_path / "a.parquet", spec=other_spec
    )
    with pytest.raises(
        ValueError, match=f"built under feature spec {other_spec.spec_hash}.*{SPEC.spec_hash}"
    ):
        read_labelled_features(path, spec=SPEC)
    assert read_labelled_features(path, spec=other_spec).num_rows == 100
    bare = tmp_path / "bare.parquet"
    pq.write_table(labelled_table("BTCUSDT", range(10)).replace_schema_metadata({}), bare)
    with pytest.raises(ValueError, match="no feature-spec hash"):
        read_labelled_features(bare)
    with pytest.raises(FileNotFoundError):
        read_labelled_features(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="refusing to write"):
        write_labelled_features(
            labelled_table("BTCUSDT", range(10), spec=other_spec), tmp_path / "b.parquet", spec=SPEC
        )
    with pytest.raises(ValueError, match="columns differ"):
        write_labelled_features(
            labelled_table("BTCUSDT", range(10)).drop_columns(["nvi"]), tmp_path / "c.parquet"
        )


def test_write_casts_a_table_without_metadata(tmp_path: Path) -> None:
    table = labelled_table("BTCUSDT", range(20))
    loose = pa.table({n: table.column(n) for n in table.column_names})  # plain types, nullable, no metadata
    path = write_labelled_features(loose, tmp_path / "d.parquet")
    assert read_labelled_features(path).equals(table)


# ---- integration: a recorded market of the paper exchange ----------------------------------------------


@pytest.mark.slow  # records 30 min of the synthetic market on a cold cache (~30-60 s), then well under 5 s
def test_labelled_dataset_from_a_recorded_market(tmp_path: Path) -> None:
    tables = recorded_arrow(seconds=1800, symbol="BTCUSDT", seed=7)
    features = compute_features(tables.rows, tables.candles, spec=SPEC)
    labelled = attach_labels(features, tables.rows, spec=SPEC)
    assert labelled.schema.equals(labelled_features_schema(SPEC), check_metadata=True)
    # the last 60 s cannot be labelled; one-sided rows (if any) cost a few more
    assert 1700 <= labelled.num_rows <= 1800 - 60
    # spot-check the labels against the raw mids directly
    raw_ts = tables.rows.column("ts").to_numpy()
    mid = dict(zip(raw_ts.tolist(), two_sided_mid(tables.rows).tolist(), strict=True))
    for i in (0, 500, labelled.num_rows - 1):
        t = labelled.column("ts")[i].as_py()
        assert labelled.column("future_return_10s")[i].as_py() == pytest.approx(
            1e4 * np.log(mid[t + 10_000] / mid[t])
        )

    path = write_labelled_features(labelled, tmp_path / "BTCUSDT" / "2026-01-01.parquet")
    rows = LabelledRows.from_tables(read_labelled_features(path))
    ds = rows.windowed()
    assert len(ds) > 1500
    assert_windows_consecutive(rows, ds)
    split = train_val_test_split(ds, (0.7, 0.15, 0.15))
    assert leakage_gap_ms(ds, split.train, split.validation) > split.purge_ms
    assert leakage_gap_ms(ds, split.validation, split.test) > split.purge_ms
    ds, pre = fit_preprocessor(rows, ds, split.train)
    assert np.isfinite(ds.features).all() and ds.features.dtype == np.float32
    assert pre.spec_hash == SPEC.spec_hash
    balance = class_balance(ds, split.train)
    assert all(balance[h]["n"] == len(split.train) for h in ("10s", "30s", "60s"))
    assert balance["10s"]["up"] > 0 and balance["10s"]["down"] > 0
