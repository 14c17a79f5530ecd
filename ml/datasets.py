"""Training data: windows of 60 consecutive feature vectors per symbol with their labels.

A window is not materialised (60 × 110 float32 per sample would be 2.3 GB for one symbol-day): the
dataset keeps the per-row feature matrix once and the index of each window's last row, and slices.

From labelled_features tables (ml.labels.attach_labels, Parquet via write/read_labelled_features) to the
inputs of a training run::

    rows = LabelledRows.from_tables(tables, spec=spec)        # validated, sorted, float64
    ds = rows.windowed(stride=1)                               # samples; raw features as float32
    split = train_val_test_split(ds, (0.7, 0.15, 0.15), interval_ms=rows.interval_ms)  # by time, purged
    ds, pre = fit_preprocessor(rows, ds, split.train)         # scaler from the training rows only
    train, val, test = ds.subset(split.train), ds.subset(split.validation), ds.subset(split.test)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.preprocessing import FeaturePreprocessor
from ml.windows import window_ends
from schemas.arrow import SPEC_HASH_METADATA_KEY, labelled_features_schema
from schemas.features import DEFAULT_SNAPSHOT_INTERVAL_MS, FeatureSpec, feature_spec
from schemas.model import CLASS_NAMES, HORIZONS_S, N_CLASSES, WINDOW


class InsufficientData(ValueError):
    """Too few samples for the split asked for (record more data, or ask for fewer folds): the data's
    shortcoming, where every other ValueError here is a wrong argument."""


@dataclass(frozen=True)
class WindowedDataset:
    """Samples of one or more symbols; sample i is the window ``features[ends[i] - WINDOW + 1 : ends[i] + 1]``.

    * ``features``: (R, 110) float32, one row per raw snapshot row, already preprocessed when a
      :class:`~ml.preprocessing.FeaturePreprocessor` was applied (raw feature values otherwise).
      Rows of different symbols or recording segments may sit in one matrix; ``ends`` only names windows
      that lie inside one symbol's run of consecutive rows.
    * ``ends``: (N,) int64, index into ``features`` of each sample's last row (the decision time t).
    * ``direction``: (N, H) int64 class per horizon (0 down, 1 flat, 2 up).
    * ``movement_bps``: (N, H) float64 future mid move per horizon, 1e4·ln(m(t+h)/m(t)).
    * ``ts_ms``: (N,) int64 the ts of each sample's last row; ``symbols``: (N,) str.
    * ``mid``: (N,) float64 the mid at t (for the backtest's fills).
    """

    features: np.ndarray
    ends: np.ndarray
    direction: np.ndarray
    movement_bps: np.ndarray
    ts_ms: np.ndarray
    symbols: np.ndarray
    mid: np.ndarray
    horizons_s: tuple[int, ...] = HORIZONS_S

    def __post_init__(self) -> None:
        n = len(self.ends)
        if self.features.ndim != 2:
            raise ValueError(f"features must be (rows, n_features), got shape {self.features.shape}")
        for name in ("direction", "movement_bps"):
            arr = getattr(self, name)
            if arr.shape != (n, len(self.horizons_s)):
                raise ValueError(f"{name} must be ({n}, {len(self.horizons_s)}), got {arr.shape}")
        for name in ("ts_ms", "symbols", "mid"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} samples")
        if n and (self.ends.min() < WINDOW - 1 or self.ends.max() >= len(self.features)):
            raise ValueError("ends must index rows with a full window of WINDOW rows before them")

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def windows(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """The (n, WINDOW, n_features) float32 inputs of the samples ``idx`` (all when None)."""
        ends = self.ends if idx is None else self.ends[idx]
        offsets = np.arange(-WINDOW + 1, 1)
        return self.features[np.asarray(ends)[:, None] + offsets[None, :]]

    def last_vectors(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """The (n, n_features) feature vector at each sample's decision time (the baselines' input)."""
        ends = self.ends if idx is None else self.ends[idx]
        return np.asarray(self.features[ends])

    def subset(self, idx: np.ndarray) -> WindowedDataset:
        """The samples ``idx`` (sharing the feature matrix)."""
        return WindowedDataset(
            features=self.features,
            ends=self.ends[idx],
            direction=self.direction[idx],
            movement_bps=self.movement_bps[idx],
            ts_ms=self.ts_ms[idx],
            symbols=self.symbols[idx],
            mid=self.mid[idx],
            horizons_s=self.horizons_s,
        )


# ---- building datasets from labelled_features tables -------------------------------------------------------


class Preprocessor(Protocol):
    """What the builder needs of :class:`ml.preprocessing.FeaturePreprocessor`."""

    def transform(self, features: np.ndarray) -> np.ndarray: ...


def check_labelled_table(table: pa.Table, spec: FeatureSpec, horizons_s: Sequence[int] = HORIZONS_S) -> None:
    """Raise naming the problem unless ``table`` has the labelled_features columns, types and spec hash."""
    expected = labelled_features_schema(spec, horizons_s)
    if table.column_names != expected.names:
        missing = [n for n in expected.names if n not in table.column_names]
        extra = [n for n in table.column_names if n not in expected.names]
        raise ValueError(
            "table is not a labelled_features table of this spec: "
            f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
            + ("" if missing or extra else ", columns out of order")
        )
    found = (table.schema.metadata or {}).get(SPEC_HASH_METADATA_KEY)
    if found is None:
        raise ValueError("labelled_features table carries no feature-spec hash in its schema metadata")
    if found.decode() != spec.spec_hash:
        raise ValueError(
            f"labelled_features table was built under feature spec {found.decode()}, not {spec.spec_hash}: "
            "refusing to mix feature definitions"
        )
    for f in expected:
        if not table.schema.field(f.name).type.equals(f.type):
            raise ValueError(f"column {f.name} has type {table.schema.field(f.name).type}, expected {f.type}")


@dataclass(frozen=True)
class LabelledRows:
    """The rows of one or more labelled_features tables, sorted by (symbol, ts), features kept in float64.

    ``direction`` holds class indices (direction + 1: 0 down, 1 flat, 2 up). Build the samples with
    :meth:`windowed`; preprocessing from these float64 values (not from a float32 copy) keeps the
    price-relative transforms exact.
    """

    symbols: np.ndarray
    ts_ms: np.ndarray
    features: np.ndarray
    movement_bps: np.ndarray
    direction: np.ndarray
    mid: np.ndarray
    horizons_s: tuple[int, ...]
    spec: FeatureSpec

    @property
    def interval_ms(self) -> int:
        """The row cadence of the spec (SNAPSHOT_INTERVAL_MS): consecutive rows are this far apart."""
        return self.spec.snapshot_interval_ms

    @classmethod
    def from_tables(
        cls,
        tables: pa.Table | Sequence[pa.Table],
        *,
        spec: FeatureSpec | None = None,
        horizons_s: Sequence[int] = HORIZONS_S,
    ) -> LabelledRows:
        """Validate (columns, types, spec hash), concatenate and sort; duplicate (symbol, ts) rows raise."""
        spec = spec or feature_spec()
        tables = [tables] if isinstance(tables, pa.Table) else list(tables)
        if not tables:
            raise ValueError("no labelled_features tables given")
        for i, t in enumerate(tables):
            try:
                check_labelled_table(t, spec, horizons_s)
            except ValueError as exc:
                raise ValueError(f"labelled_features table #{i}: {exc}") from None
        table = pa.concat_tables(tables).sort_by([("symbol", "ascending"), ("ts", "ascending")])
        symbols = np.asarray(table.column("symbol").to_pylist(), dtype=str)
        ts = table.column("ts").to_numpy().astype(np.int64)
        same = (symbols[1:] == symbols[:-1]) & (ts[1:] == ts[:-1])
        if same.any():
            k = int(np.flatnonzero(same)[0])
            raise ValueError(f"row {symbols[k]}@{ts[k]} appears twice (the same day given twice?)")
        features = np.column_stack([table.column(n).to_numpy() for n in spec.names]).astype(np.float64)
        horizons = tuple(horizons_s)
        movement = np.column_stack([table.column(f"future_return_{h}s").to_numpy() for h in horizons])
        direction = np.column_stack([table.column(f"direction_{h}s").to_numpy() for h in horizons])
        if table.num_rows and not np.isin(direction, (-1, 0, 1)).all():
            raise ValueError("direction columns must hold -1, 0 or 1")
        if not np.isfinite(movement).all():
            raise ValueError("future_return columns must be finite (unlabelled rows are dropped, not NaN)")
        return cls(
            symbols=symbols,
            ts_ms=ts,
            features=features.reshape(table.num_rows, len(spec.names)),
            movement_bps=movement.astype(np.float64).reshape(table.num_rows, len(horizons)),
            direction=(direction.astype(np.int64) + 1).reshape(table.num_rows, len(horizons)),
            mid=features[:, spec.index_of("mid_price")].copy() if table.num_rows else np.zeros(0),
            horizons_s=horizons,
            spec=spec,
        )

    def __len__(self) -> int:
        return len(self.ts_ms)

    def window_ends(self, stride: int = 1) -> np.ndarray:
        """Rows that end a window of WINDOW consecutive rows of one symbol, every ``stride``-th per run.

        The rule is :mod:`ml.windows`' (the daemon's live windows use it too): consecutive means same symbol
        and exactly ``interval_ms`` apart, so a recording gap, or a row dropped because it had no label, ends
        a run; a ``book_reset`` inside a window is allowed.
        """
        return window_ends(self.symbols, self.ts_ms, self.interval_ms, stride=stride)

    def windowed(self, *, stride: int = 1, preprocessor: Preprocessor | None = None) -> WindowedDataset:
        """The samples; features raw (float32) or transformed by ``preprocessor`` from the float64 rows."""
        ends = self.window_ends(stride)
        values = self.features if preprocessor is None else preprocessor.transform(self.features)
        if values.shape != self.features.shape:
            raise ValueError(
                f"preprocessor changed the feature shape {self.features.shape} to {values.shape}"
            )
        return WindowedDataset(
            features=np.ascontiguousarray(values, dtype=np.float32),
            ends=ends,
            direction=self.direction[ends],
            movement_bps=self.movement_bps[ends],
            ts_ms=self.ts_ms[ends],
            symbols=self.symbols[ends],
            mid=self.mid[ends],
            horizons_s=self.horizons_s,
        )


def build_windowed_dataset(
    tables: pa.Table | Sequence[pa.Table],
    *,
    spec: FeatureSpec | None = None,
    stride: int = 1,
    preprocessor: Preprocessor | None = None,
    horizons_s: Sequence[int] = HORIZONS_S,
) -> WindowedDataset:
    """A WindowedDataset from labelled_features tables (one per symbol/day, any order)."""
    rows = LabelledRows.from_tables(tables, spec=spec, horizons_s=horizons_s)
    return rows.windowed(stride=stride, preprocessor=preprocessor)


def window_rows(ds: WindowedDataset, idx: np.ndarray | None = None) -> np.ndarray:
    """The sorted distinct feature rows that the windows of samples ``idx`` read (to fit a scaler on)."""
    ends = ds.ends if idx is None else ds.ends[idx]
    rows = (np.asarray(ends)[:, None] + np.arange(-WINDOW + 1, 1)[None, :]).ravel()
    return np.unique(rows)


def fit_preprocessor(
    rows: LabelledRows, ds: WindowedDataset, train_idx: np.ndarray, *, row_local: bool = True
) -> tuple[WindowedDataset, FeaturePreprocessor]:
    """Fit a FeaturePreprocessor (under the rows' feature spec) on the rows the training windows read, and
    apply it to every row.

    ``ds`` must come from ``rows.windowed`` (same rows); the result keeps ``ds``'s samples.
    """
    if ds.features.shape != rows.features.shape:
        raise ValueError("ds was not built from these rows (feature matrices differ in shape)")
    if len(train_idx) == 0:
        raise ValueError("cannot fit a preprocessor on an empty training fold")
    pre = FeaturePreprocessor.fit(
        rows.features[window_rows(ds, train_idx)], spec=rows.spec, row_local=row_local
    )
    features = pre.transform(rows.features)
    return replace(ds, features=np.ascontiguousarray(features, dtype=np.float32)), pre


# ---- splits by time with a purge gap -----------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Sample indices of one split; each block lies after the previous one in time, purged (see below)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    purge_ms: int

    def describe(self, ds: WindowedDataset) -> dict[str, Any]:
        """Counts and time ranges of each block (for manifests and logs)."""
        out: dict[str, Any] = {"purge_ms": self.purge_ms}
        for name in ("train", "validation", "test"):
            idx = getattr(self, name)
            ts = ds.ts_ms[idx]
            out[name] = {
                "n": len(idx),
                "start_ms": int(ts.min()) if len(idx) else None,
                "end_ms": int(ts.max()) if len(idx) else None,
            }
        return out


def leakage_gap_ms(
    ds: WindowedDataset,
    earlier: np.ndarray,
    later: np.ndarray,
    *,
    interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS,
) -> int | None:
    """Start of the earliest window of ``later`` minus the end of the latest label of ``earlier`` [ms].

    A sample at t reads feature rows from t − (WINDOW − 1)·interval and its labels reach t + max(horizon).
    The split is free of overlap when this is > 0, and purged by ``purge_ms`` when it is > purge_ms.
    None when a block is empty.
    """
    if len(earlier) == 0 or len(later) == 0:
        return None
    label_end = int(ds.ts_ms[earlier].max()) + max(ds.horizons_s) * 1000
    window_start = int(ds.ts_ms[later].min()) - (WINDOW - 1) * interval_ms
    return window_start - label_end


def _purged(
    ds: WindowedDataset, candidates: np.ndarray, later: np.ndarray, purge_ms: int, interval_ms: int
) -> np.ndarray:
    """The candidates whose label ends more than ``purge_ms`` before the first window of ``later`` starts."""
    if len(later) == 0:
        return candidates
    window_start = int(ds.ts_ms[later].min()) - (WINDOW - 1) * interval_ms
    label_end = ds.ts_ms[candidates] + max(ds.horizons_s) * 1000
    return np.asarray(candidates[label_end + purge_ms < window_start])


def _time_cut(ts_sorted: np.ndarray, fraction: float) -> int:
    """The ts at the ``fraction`` quantile of the samples (a block starts at a ts, so ties stay together)."""
    k = min(len(ts_sorted) - 1, max(0, int(np.ceil(fraction * len(ts_sorted)))))
    return int(ts_sorted[k])


def _default_purge(ds: WindowedDataset, purge_ms: int | None) -> int:
    purge = max(ds.horizons_s) * 1000 if purge_ms is None else int(purge_ms)
    if purge < 0:
        raise ValueError(f"purge_ms must be >= 0, got {purge}")
    return purge


def train_val_test_split(
    ds: WindowedDataset,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    purge_ms: int | None = None,
    *,
    interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS,
) -> Split:
    """Chronological train | validation | test blocks (fractions of the samples, all symbols on one clock).

    Purge: a sample is kept in an earlier block only if its last label (t + max horizon) ends more than
    ``purge_ms`` (default: the longest horizon) before the first window of the next block starts
    (t' − (WINDOW − 1)·interval). Without the window term a training label could cover rows that a test window
    reads as inputs; without the horizon term training labels would overlap test labels; ``purge_ms`` adds an
    embargo for the autocorrelation of the features themselves. Samples are dropped from the end of the
    earlier block, never moved.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if fractions[0] == 0 or fractions[2] == 0:
        raise ValueError(f"train and test fractions must be > 0, got {fractions}")
    purge = _default_purge(ds, purge_ms)
    if len(ds) < 3:
        raise InsufficientData(f"dataset has {len(ds)} samples, too few to split")
    ts_sorted = np.sort(ds.ts_ms)
    t_val = _time_cut(ts_sorted, fractions[0])
    t_test = _time_cut(ts_sorted, fractions[0] + fractions[1])
    all_idx = np.arange(len(ds))
    test = all_idx[ds.ts_ms >= t_test]
    val = all_idx[(ds.ts_ms >= t_val) & (ds.ts_ms < t_test)] if fractions[1] > 0 else all_idx[:0]
    val = _purged(ds, val, test, purge, interval_ms)
    train = _purged(ds, all_idx[ds.ts_ms < t_val], val if len(val) else test, purge, interval_ms)
    train = _purged(ds, train, test, purge, interval_ms)
    if len(train) == 0 or len(test) == 0:
        raise InsufficientData(
            f"split of {len(ds)} samples left train={len(train)}, test={len(test)} after a {purge} ms purge: "
            "too little data for these fractions"
        )
    return Split(train=train, validation=val, test=test, purge_ms=purge)


def walk_forward_splits(
    ds: WindowedDataset,
    n_folds: int = 3,
    test_fraction: float = 0.15,
    purge_ms: int | None = None,
    *,
    validation_fraction: float = 0.0,
    interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS,
) -> list[Split]:
    """Expanding-window walk-forward: the last ``n_folds × test_fraction`` of the samples, in time order, form
    ``n_folds`` consecutive test blocks; fold k trains on everything before its test block (and, with
    ``validation_fraction`` > 0, validates on the last part of that history). Every boundary is purged as in
    :func:`train_val_test_split`.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    if not test_fraction > 0 or n_folds * test_fraction >= 1:
        raise ValueError(f"need 0 < n_folds × test_fraction < 1, got {n_folds} × {test_fraction}")
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    purge = _default_purge(ds, purge_ms)
    if len(ds) < 2 * (n_folds + 1):
        raise InsufficientData(f"dataset has {len(ds)} samples, too few for {n_folds} folds")
    ts_sorted = np.sort(ds.ts_ms)
    all_idx = np.arange(len(ds))
    first = 1.0 - n_folds * test_fraction
    splits = []
    for k in range(n_folds):
        t_lo = _time_cut(ts_sorted, first + k * test_fraction)
        upper = ds.ts_ms < _time_cut(ts_sorted, first + (k + 1) * test_fraction) if k < n_folds - 1 else True
        test = all_idx[(ds.ts_ms >= t_lo) & upper]
        history = all_idx[ds.ts_ms < t_lo]
        val = all_idx[:0]
        if validation_fraction > 0 and len(history):
            t_val = _time_cut(np.sort(ds.ts_ms[history]), 1.0 - validation_fraction)
            val = _purged(ds, history[ds.ts_ms[history] >= t_val], test, purge, interval_ms)
            history = history[ds.ts_ms[history] < t_val]
        train = _purged(ds, _purged(ds, history, val, purge, interval_ms), test, purge, interval_ms)
        if len(train) == 0 or len(test) == 0:
            raise InsufficientData(
                f"walk-forward fold {k} has train={len(train)}, test={len(test)} after a {purge} ms purge: "
                "too little data for these folds"
            )
        splits.append(Split(train=train, validation=val, test=test, purge_ms=purge))
    return splits


# ---- class balance -----------------------------------------------------------------------------------------


def class_balance(ds: WindowedDataset, idx: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Per horizon ("10s", …): the count and the share of each class among the samples ``idx`` (all if None)."""
    direction = ds.direction if idx is None else ds.direction[idx]
    out: dict[str, dict[str, float]] = {}
    for k, h in enumerate(ds.horizons_s):
        counts = np.bincount(direction[:, k], minlength=N_CLASSES)
        n = int(counts.sum())
        entry: dict[str, float] = {"n": n}
        for c, name in enumerate(CLASS_NAMES):
            entry[name] = int(counts[c])
            entry[f"{name}_share"] = float(counts[c] / n) if n else 0.0
        out[f"{h}s"] = entry
    return out


def format_class_balance(balance: dict[str, dict[str, float]]) -> str:
    """A small text table of :func:`class_balance`."""
    lines = [f"{'horizon':>8} {'n':>9} " + " ".join(f"{c:>14}" for c in CLASS_NAMES)]
    for h, e in balance.items():
        cells = " ".join(f"{int(e[c]):>7} {e[c + '_share']:>6.1%}" for c in CLASS_NAMES)
        lines.append(f"{h:>8} {int(e['n']):>9} {cells}")
    return "\n".join(lines)


# ---- Parquet -----------------------------------------------------------------------------------------------


def write_labelled_features(
    table: pa.Table,
    path: str | Path,
    *,
    spec: FeatureSpec | None = None,
    horizons_s: Sequence[int] = HORIZONS_S,
) -> Path:
    """Write one labelled_features table as Parquet with the schema (and spec hash) of schemas/arrow.py.

    The table is cast to the schema (so a table without the metadata gets it; a wrong column raises) and
    written to a temporary file that is renamed into place, so readers never see half a file.
    """
    spec = spec or feature_spec()
    schema = labelled_features_schema(spec, horizons_s)
    if table.column_names != schema.names:
        raise ValueError(
            f"cannot write labelled_features: columns differ from the schema (first expected {schema.names[:3]}, "
            f"got {table.column_names[:3]}, {table.num_columns} vs {len(schema.names)} columns)"
        )
    found = (table.schema.metadata or {}).get(SPEC_HASH_METADATA_KEY)
    if found is not None and found.decode() != spec.spec_hash:
        raise ValueError(
            f"table carries feature spec {found.decode()}, refusing to write it as {spec.spec_hash}"
        )
    try:
        typed = table.cast(schema)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise ValueError(f"cannot write labelled_features: {exc}") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(typed, tmp)
    os.replace(tmp, path)
    return path


def read_labelled_features(
    path: str | Path,
    *,
    spec: FeatureSpec | None = None,
    horizons_s: Sequence[int] = HORIZONS_S,
) -> pa.Table:
    """Read a labelled_features Parquet file, refusing one built under another feature spec."""
    spec = spec or feature_spec()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no labelled_features file at {path}")
    found = (pq.read_schema(path).metadata or {}).get(SPEC_HASH_METADATA_KEY)
    if found is None:
        raise ValueError(f"{path} carries no feature-spec hash: not a labelled_features file of this project")
    if found.decode() != spec.spec_hash:
        raise ValueError(
            f"{path} was built under feature spec {found.decode()}, but this code's spec is {spec.spec_hash}: "
            "refusing to mix feature definitions (recompute the dataset)"
        )
    table = pq.read_table(path)
    check_labelled_table(table, spec, horizons_s)
    return table
