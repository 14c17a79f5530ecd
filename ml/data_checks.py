"""Data-quality checks of the lake's partitions and training windows, as plain functions.

Each returns a :class:`CheckOutcome` (passed, a one-line description, numeric metadata); the Dagster asset
checks beside the assets only call them. What each one guards:

* :func:`check_raw_rows`: raw snapshot rows in time order, on the SNAPSHOT_INTERVAL_MS grid, at most one
  per interval, inside the partition's window, of one symbol (gaps are allowed: a restart is not an error,
  and the coverage says how much is missing);
* :func:`check_features_finite`: no NaN or ±inf in any of the 110 features;
* :func:`check_spec_hash`: a table's feature-spec hash is the one the model registry serves;
* :func:`check_label_coverage`: enough of a partition's rows carry all their labels;
* :func:`check_no_lookahead`: features at t are unchanged when everything after t (rows and candles that
  close after t) is removed — recomputed for a few cut points from the partition's raw files;
* :func:`check_class_balance`: every direction class holds a share within bounds at every horizon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ml.features.candle_window import MissingCandleError
from ml.features.pipeline import compute_feature_matrix
from ml.lake import LOOKBACK_ROWS, RawPartition
from schemas.arrow import SPEC_HASH_METADATA_KEY
from schemas.features import FeatureSpec
from schemas.market import CANDLE_INTERVAL_MS
from schemas.model import CLASS_NAMES, HORIZONS_S

Metadata = dict[str, float | int | str]
# docs/features.md §1.6: live and batch features agree within 1e-9; a recomputation must do as well.
LOOKAHEAD_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of one check, a sentence saying why, and the numbers behind it."""

    passed: bool
    description: str
    metadata: Metadata = field(default_factory=dict)


def check_raw_rows(
    rows: pa.Table, *, interval_ms: int, start_ms: int | None = None, end_ms: int | None = None
) -> CheckOutcome:
    """Rows in strictly increasing time, each on the interval grid and inside [start_ms, end_ms)."""
    n = rows.num_rows
    ts = rows.column("ts").to_numpy().astype(np.int64) if n else np.zeros(0, np.int64)
    symbols = sorted(set(rows.column("symbol").to_pylist())) if n else []
    steps = np.diff(ts)
    backwards = int((steps < 0).sum())
    duplicates = int((steps == 0).sum())
    off_grid = int((ts % interval_ms != 0).sum())
    outside = 0
    if start_ms is not None and end_ms is not None:
        outside = int(((ts < start_ms) | (ts >= end_ms)).sum())
    gaps = int((steps > interval_ms).sum())
    slots = (end_ms - start_ms) // interval_ms if start_ms is not None and end_ms is not None else n
    metadata: Metadata = {
        "rows": n,
        "out_of_order": backwards,
        "duplicates": duplicates,
        "off_grid": off_grid,
        "outside_window": outside,
        "symbols": len(symbols),
        "gaps": gaps,
        "longest_gap_s": float(steps.max() / 1000) if gaps else 0.0,
        "coverage": float(n / slots) if slots else 0.0,
    }
    problems = [
        f"{count} {what}"
        for count, what in (
            (backwards, "rows out of time order"),
            (duplicates, "duplicate timestamps"),
            (off_grid, f"timestamps off the {interval_ms} ms grid"),
            (outside, "rows outside the partition's window"),
        )
        if count
    ]
    if len(symbols) > 1:
        problems.append(f"rows of {len(symbols)} symbols {symbols[:3]}")
    if problems:
        return CheckOutcome(False, "; ".join(problems), metadata)
    return CheckOutcome(
        True, f"{n} rows in time order, one per interval, coverage {metadata['coverage']:.1%}", metadata
    )


def check_features_finite(table: pa.Table, names: Sequence[str]) -> CheckOutcome:
    """No NaN or infinite value in the feature columns ``names``."""
    bad: dict[str, int] = {}
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        count = int((~np.isfinite(values)).sum())
        if count:
            bad[name] = count
    metadata: Metadata = {
        "rows": table.num_rows,
        "non_finite_values": sum(bad.values()),
        "columns_affected": len(bad),
    }
    if bad:
        worst = sorted(bad.items(), key=lambda kv: -kv[1])[:5]
        metadata["worst_columns"] = ", ".join(f"{k} ({v})" for k, v in worst)
        return CheckOutcome(
            False,
            f"{sum(bad.values())} non-finite values in {len(bad)} features, e.g. {worst[0][0]}",
            metadata,
        )
    return CheckOutcome(True, f"all {len(names)} features finite in {table.num_rows} rows", metadata)


def table_spec_hash(table: pa.Table) -> str | None:
    """The feature-spec hash a table carries in its schema metadata, if any."""
    found = (table.schema.metadata or {}).get(SPEC_HASH_METADATA_KEY)
    return None if found is None else found.decode()


def check_spec_hash(table: pa.Table, expected: str, source: str) -> CheckOutcome:
    """The table's spec hash equals ``expected`` (``source`` says whose hash that is)."""
    found = table_spec_hash(table)
    metadata: Metadata = {
        "table_spec_hash": found or "none",
        "expected_spec_hash": expected,
        "source": source,
    }
    if found != expected:
        return CheckOutcome(
            False,
            f"features built under spec {found or 'none'}, but {source} serves spec {expected}",
            metadata,
        )
    return CheckOutcome(True, f"spec {expected[:12]}… matches {source}", metadata)


def check_label_coverage(n_rows: int, n_labelled: int, minimum: float) -> CheckOutcome:
    """At least ``minimum`` of ``n_rows`` raw rows carry every label (a partition without rows passes)."""
    coverage = n_labelled / n_rows if n_rows else 1.0
    metadata: Metadata = {
        "rows": n_rows,
        "labelled_rows": n_labelled,
        "coverage": coverage,
        "minimum": minimum,
    }
    if coverage < minimum:
        return CheckOutcome(
            False, f"only {coverage:.1%} of {n_rows} rows labelled (minimum {minimum:.0%})", metadata
        )
    return CheckOutcome(True, f"{coverage:.1%} of {n_rows} rows labelled", metadata)


def check_class_balance(
    table: pa.Table,
    *,
    minimum: float,
    maximum: float,
    horizons_s: Sequence[int] = HORIZONS_S,
) -> CheckOutcome:
    """Each direction class's share lies in [minimum, maximum] at every horizon."""
    metadata: Metadata = {"rows": table.num_rows, "minimum": minimum, "maximum": maximum}
    problems = []
    for h in horizons_s:
        direction = table.column(f"direction_{h}s").to_numpy().astype(np.int64)
        for value, name in zip((-1, 0, 1), CLASS_NAMES, strict=True):
            share = float((direction == value).mean()) if len(direction) else 0.0
            metadata[f"{name}_share_{h}s"] = share
            if not minimum <= share <= maximum:
                problems.append(f"{name} {share:.1%} at {h} s")
    if not table.num_rows:
        return CheckOutcome(False, "no labelled rows to balance", metadata)
    if problems:
        return CheckOutcome(
            False, f"class shares outside [{minimum:.0%}, {maximum:.0%}]: {', '.join(problems)}", metadata
        )
    return CheckOutcome(True, f"every class within [{minimum:.0%}, {maximum:.0%}] at every horizon", metadata)


def cut_points(n_rows: int, n_cuts: int) -> list[int]:
    """``n_cuts`` row positions spread over a partition, first and last included."""
    if n_rows == 0:
        return []
    return sorted({round(float(x)) for x in np.linspace(0, n_rows - 1, min(n_cuts, n_rows))})


def check_no_lookahead(
    raw: RawPartition,
    features: pa.Table,
    spec: FeatureSpec,
    *,
    n_cuts: int = 5,
    rows_before: int = 30,
) -> CheckOutcome:
    """Recompute the features of the ``rows_before`` + 1 rows up to each cut t from the rows ≤ t and the
    candles closed by t only, and compare them with ``features`` (the partition's labelled_features)."""
    rows = pa.concat_tables([raw.lookback, raw.rows]) if raw.lookback.num_rows else raw.rows
    n_lookback = raw.lookback.num_rows
    ts_rows = rows.column("ts").to_numpy().astype(np.int64) if rows.num_rows else np.zeros(0, np.int64)
    f_ts = features.column("ts").to_numpy().astype(np.int64)
    position = {int(t): i for i, t in enumerate(f_ts)}
    full = np.column_stack([features.column(n).to_numpy() for n in spec.names]) if len(f_ts) else None
    candle_start = raw.candles.column("start_ms").to_numpy().astype(np.int64)
    compared = 0
    worst = 0.0
    problems: list[str] = []
    # Cuts among the rows that have labels (the partition's last minute has none to compare with).
    last = int(f_ts.max()) if len(f_ts) else None
    labelled_rows = int(np.searchsorted(ts_rows[n_lookback:], last, side="right")) if last is not None else 0
    cuts = cut_points(labelled_rows, n_cuts)
    for cut in cuts:
        g = n_lookback + cut  # the cut row's index in `rows`
        t = int(ts_rows[g])
        lo = max(0, g - rows_before - LOOKBACK_ROWS)
        out_from = max(lo, g - rows_before, n_lookback if lo == 0 else lo)
        past_rows = rows.slice(lo, g + 1 - lo)
        closed = raw.candles.filter(pa.array(candle_start + CANDLE_INTERVAL_MS <= t))
        try:
            _, ts_cut, values = compute_feature_matrix(past_rows, closed, n_lookback=out_from - lo, spec=spec)
        except MissingCandleError as exc:
            problems.append(f"the row at {t} reads a candle that closes after it ({exc})")
            continue
        for k, row_ts in enumerate(ts_cut):
            i = position.get(int(row_ts))
            if i is None or full is None:
                continue  # a row without labels is not in the labelled table
            diff = np.abs(values[k] - full[i])
            scale = np.maximum(np.abs(full[i]), 1.0)
            bad = ~(diff <= LOOKAHEAD_TOLERANCE * scale)
            compared += 1
            worst = max(worst, float(np.nanmax(diff / scale)) if np.isfinite(diff).any() else np.inf)
            if bad.any():
                names = [spec.names[j] for j in np.flatnonzero(bad)[:3]]
                problems.append(
                    f"features {names} at {int(row_ts)} change when the data after {t} is removed"
                )
                break
    metadata: Metadata = {
        "cuts": len(cuts),
        "rows_compared": compared,
        "max_relative_difference": worst,
        "tolerance": LOOKAHEAD_TOLERANCE,
    }
    if problems:
        return CheckOutcome(
            False, problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""), metadata
        )
    return CheckOutcome(True, f"{compared} rows unchanged without the data after them", metadata)


# ---- summaries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureStats:
    """Summary of one feature column."""

    name: str
    mean: float
    std: float
    minimum: float
    p01: float
    median: float
    p99: float
    maximum: float
    non_finite: int


def feature_summary(table: pa.Table, names: Sequence[str]) -> list[FeatureStats]:
    """Mean, spread and quantiles of each feature over the finite values of ``table``."""
    out = []
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            nan = float("nan")
            out.append(FeatureStats(name, nan, nan, nan, nan, nan, nan, nan, len(values)))
            continue
        q = np.quantile(finite, [0.01, 0.5, 0.99])
        out.append(
            FeatureStats(
                name=name,
                mean=float(finite.mean()),
                std=float(finite.std()),
                minimum=float(finite.min()),
                p01=float(q[0]),
                median=float(q[1]),
                p99=float(q[2]),
                maximum=float(finite.max()),
                non_finite=len(values) - len(finite),
            )
        )
    return out


def class_shares(table: pa.Table, horizons_s: Sequence[int] = HORIZONS_S) -> dict[str, dict[str, float]]:
    """Per horizon ("10s"…), the share of each direction class among the rows of ``table``."""
    out: dict[str, dict[str, float]] = {}
    for h in horizons_s:
        direction = table.column(f"direction_{h}s").to_numpy().astype(np.int64)
        out[f"{h}s"] = {
            name: float((direction == value).mean()) if len(direction) else 0.0
            for value, name in zip((-1, 0, 1), CLASS_NAMES, strict=True)
        }
    return out
