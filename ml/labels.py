"""Training labels: the future mid-price move of one symbol at 10 s, 30 s and 60 s, and its direction.

For the row at time t and a horizon h (H = h·1000 ms), with m the two-sided mid (Pb + Pa)/2 of docs/features.md §1.1:

    movement_h(t) = 1e4·ln(m(t + H) / m(t))   [bps]

where m(t + H) is the mid of the *last row with ts ≤ t + H* (an as-of lookup). A row gets a label for h only when
the horizon is fully observed; otherwise it is dropped, never guessed. Precisely, with ``interval_ms`` the row
cadence (SNAPSHOT_INTERVAL_MS) and j the as-of row of t + H:

* **recording runs**: consecutive rows of a run are exactly ``interval_ms`` apart. Any other step between two
  rows (a recording gap: the daemon was down, the database spooled and lost rows, a day boundary with no
  rows for the next day) ends a run. Row j must lie in the same run as row t, so no gap lies inside
  (t, t + H].
* **full horizon**: ``ts[j] > t + H − interval_ms``, i.e. j is the row that covers t + H. On the usual grid
  (ts and H multiples of the interval) that means the row at exactly t + H exists. At the end of a recording the
  last H of rows have no such row and get no label (the caller passes the next day's first minute of rows to
  label the end of a day).
* **two-sided ends**: rows t and j must both be two-sided (nb ≥ 1 and na ≥ 1), so both mids are real book mids
  and not the m* fallback. One-sided rows in between do not matter: the label reads only the two ends.
* A ``book_reset`` row inside the horizon does **not** drop the label: a reset reloads the local book, it does
  not change the market's mid, and a reset that comes with missing rows is already a gap. (An invalid book
  awaiting a resync has no levels, so such rows are not two-sided and cannot be an end.)

direction_h = +1 if movement_h > dead band, −1 if movement_h < −dead band, else 0 (the band is in bps, per
horizon if wanted; a move exactly on the band is flat). In the labelled_features table every horizon must be
present (its label columns are not nullable), so a row lacking any horizon is dropped: the last 60 s before each
gap or the end of a recording lose their 10 s and 30 s labels too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.windows import consecutive
from schemas.arrow import SPEC_HASH_METADATA_KEY, labelled_features_schema
from schemas.features import DEFAULT_SNAPSHOT_INTERVAL_MS, FeatureSpec, feature_spec
from schemas.model import HORIZONS_S

DEFAULT_DEAD_BAND_BPS = 0.5


@dataclass(frozen=True)
class LabelConfig:
    """Horizons [s], dead band [bps] (one value for all horizons, or one per horizon) and the row cadence."""

    horizons_s: tuple[int, ...] = HORIZONS_S
    dead_band_bps: float | Mapping[int, float] = DEFAULT_DEAD_BAND_BPS
    interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS
    _bands: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.horizons_s or any(h <= 0 for h in self.horizons_s):
            raise ValueError(f"horizons_s must be positive seconds, got {self.horizons_s}")
        if len(set(self.horizons_s)) != len(self.horizons_s):
            raise ValueError(f"horizons_s must be distinct, got {self.horizons_s}")
        if self.interval_ms <= 0:
            raise ValueError(f"interval_ms must be a positive number of ms, got {self.interval_ms}")
        if isinstance(self.dead_band_bps, Mapping):
            missing = [h for h in self.horizons_s if h not in self.dead_band_bps]
            if missing:
                raise ValueError(f"dead_band_bps has no band for horizons {missing} (seconds)")
            bands = tuple(float(self.dead_band_bps[h]) for h in self.horizons_s)
        else:
            bands = (float(self.dead_band_bps),) * len(self.horizons_s)
        if any(not (np.isfinite(b) and b >= 0) for b in bands):
            raise ValueError(f"dead bands must be finite and >= 0 bps, got {bands}")
        object.__setattr__(self, "_bands", bands)

    @property
    def dead_bands_bps(self) -> tuple[float, ...]:
        """The dead band of each horizon, in the order of ``horizons_s``."""
        return self._bands

    @classmethod
    def for_spec(
        cls,
        spec: FeatureSpec,
        *,
        horizons_s: tuple[int, ...] = HORIZONS_S,
        dead_band_bps: float | Mapping[int, float] = DEFAULT_DEAD_BAND_BPS,
    ) -> LabelConfig:
        """A config whose cadence is the spec's SNAPSHOT_INTERVAL_MS."""
        return cls(horizons_s=horizons_s, dead_band_bps=dead_band_bps, interval_ms=spec.snapshot_interval_ms)


def recording_runs(ts_ms: np.ndarray, interval_ms: int) -> np.ndarray:
    """Run id per row: a new run starts wherever two rows in a row are not consecutive (``ml.windows``)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(~consecutive(ts[:-1], ts[1:], interval_ms))]).astype(np.int64)


def _check_series(ts_ms: np.ndarray, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ts = np.asarray(ts_ms)
    m = np.asarray(mid, dtype=np.float64)
    if ts.ndim != 1 or m.ndim != 1 or len(ts) != len(m):
        raise ValueError(f"ts_ms and mid must be 1-D of one length, got shapes {ts.shape} and {m.shape}")
    if not np.issubdtype(ts.dtype, np.integer):
        raise ValueError(f"ts_ms must be integer milliseconds, got dtype {ts.dtype}")
    ts = ts.astype(np.int64)
    if len(ts) > 1 and not (np.diff(ts) > 0).all():
        bad = int(np.flatnonzero(np.diff(ts) <= 0)[0])
        raise ValueError(
            f"ts_ms must be strictly increasing (one symbol): ts[{bad + 1}]={ts[bad + 1]} follows {ts[bad]}"
        )
    return ts, m


def future_movement_bps(ts_ms: np.ndarray, mid: np.ndarray, horizon_s: int, interval_ms: int) -> np.ndarray:
    """1e4·ln(m(t+h)/m(t)) per row, NaN where the horizon is not fully observed (module docstring).

    ``mid`` is the two-sided mid per row, NaN (or ≤ 0) where the row is not two-sided.
    """
    ts, m = _check_series(ts_ms, mid)
    out = np.full(len(ts), np.nan)
    if len(ts) == 0:
        return out
    horizon_ms = int(horizon_s) * 1000
    runs = recording_runs(ts, interval_ms)
    target = ts + horizon_ms
    j = np.searchsorted(ts, target, side="right") - 1  # as-of row: j >= i since ts[i] <= target
    valid_mid = np.isfinite(m) & (m > 0)
    ok = (runs[j] == runs) & (ts[j] > target - interval_ms) & valid_mid & valid_mid[j]
    out[ok] = 1e4 * np.log(m[j[ok]] / m[ok])
    return out


def direction_of(movement_bps: np.ndarray, dead_band_bps: float) -> np.ndarray:
    """+1 / −1 where the move is beyond ±dead band, 0 inside it (int8; NaN moves give 0, mask them yourself)."""
    mv = np.asarray(movement_bps, dtype=np.float64)
    return np.where(mv > dead_band_bps, 1, np.where(mv < -dead_band_bps, -1, 0)).astype(np.int8)


@dataclass(frozen=True)
class Labels:
    """Labels of one symbol's rows: ``movement_bps`` (R, H) with NaN where undefined, ``direction`` (R, H) int8
    (−1/0/1, 0 where undefined) and ``labelled`` (R,) true where every horizon is defined."""

    ts_ms: np.ndarray
    movement_bps: np.ndarray
    direction: np.ndarray
    labelled: np.ndarray
    horizons_s: tuple[int, ...]

    def columns(self) -> dict[str, np.ndarray]:
        """The label columns of the labelled_features table for the labelled rows, in schema order."""
        cols: dict[str, np.ndarray] = {}
        for k, h in enumerate(self.horizons_s):
            cols[f"future_return_{h}s"] = self.movement_bps[self.labelled, k]
            cols[f"direction_{h}s"] = self.direction[self.labelled, k]
        return cols


def compute_labels(ts_ms: np.ndarray, mid: np.ndarray, config: LabelConfig | None = None) -> Labels:
    """Movement and direction at every horizon for one symbol's rows (sorted by ts, mid NaN when one-sided)."""
    config = config or LabelConfig()
    ts, m = _check_series(ts_ms, mid)
    movement = np.stack(
        [future_movement_bps(ts, m, h, config.interval_ms) for h in config.horizons_s], axis=1
    ).reshape(len(ts), len(config.horizons_s))
    defined = np.isfinite(movement)
    direction = np.stack(
        [direction_of(movement[:, k], band) for k, band in enumerate(config.dead_bands_bps)], axis=1
    ).reshape(movement.shape)
    direction[~defined] = 0
    return Labels(ts, movement, direction, defined.all(axis=1), tuple(config.horizons_s))


def two_sided_mid(raw_rows: pa.Table) -> np.ndarray:
    """(Pb + Pa)/2 per row of a RAW_SNAPSHOTS table, NaN where the row is not two-sided."""
    missing = {"n_bid_levels", "n_ask_levels", "bid_prices", "ask_prices"} - set(raw_rows.column_names)
    if missing:
        raise ValueError(
            f"raw rows table lacks columns {sorted(missing)} (expected schemas.arrow.RAW_SNAPSHOTS)"
        )
    if raw_rows.num_rows == 0:
        return np.zeros(0)
    nb = raw_rows.column("n_bid_levels").to_numpy()
    na = raw_rows.column("n_ask_levels").to_numpy()
    pb = pc.list_element(raw_rows.column("bid_prices"), 0).to_numpy()
    pa_ = pc.list_element(raw_rows.column("ask_prices"), 0).to_numpy()
    mid = (pb + pa_) / 2
    return np.where((nb >= 1) & (na >= 1), mid, np.nan)


def _one_symbol(table: pa.Table, what: str) -> str:
    symbols = pc.unique(table.column("symbol")).to_pylist()
    if len(symbols) != 1:
        raise ValueError(f"{what} must hold exactly one symbol, got {sorted(map(str, symbols))}")
    return str(symbols[0])


def label_rows(raw_rows: pa.Table, config: LabelConfig | None = None) -> pa.Table:
    """symbol, ts and the label columns for the labelled rows of one symbol's RAW_SNAPSHOTS table."""
    config = config or LabelConfig()
    if "symbol" not in raw_rows.column_names or "ts" not in raw_rows.column_names:
        raise ValueError("raw rows table lacks the symbol/ts columns (expected schemas.arrow.RAW_SNAPSHOTS)")
    if raw_rows.num_rows == 0:
        raise ValueError("raw rows table is empty: nothing to label")
    symbol = _one_symbol(raw_rows, "raw rows table")
    raw_rows = raw_rows.sort_by("ts")
    labels = compute_labels(raw_rows.column("ts").to_numpy(), two_sided_mid(raw_rows), config)
    n = int(labels.labelled.sum())
    fields = [pa.field("symbol", pa.string(), nullable=False), pa.field("ts", pa.int64(), nullable=False)]
    arrays: list[pa.Array] = [pa.array([symbol] * n, pa.string()), pa.array(labels.ts_ms[labels.labelled])]
    for name, values in labels.columns().items():
        dtype = pa.float64() if name.startswith("future_return_") else pa.int8()
        fields.append(pa.field(name, dtype, nullable=False))
        arrays.append(pa.array(values, dtype))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def attach_labels(
    features: pa.Table,
    raw_rows: pa.Table,
    *,
    spec: FeatureSpec | None = None,
    config: LabelConfig | None = None,
) -> pa.Table:
    """The labelled_features table: the feature rows of one symbol that have every label, joined on ts.

    ``features`` holds symbol, ts and the spec's feature columns (ml.features.pipeline output);
    ``raw_rows`` the RAW_SNAPSHOTS rows the features were computed from, and ideally the next ``max(horizons)``
    seconds after them, so that the last feature rows can be labelled. Every feature ts must be a raw row ts.
    """
    spec = spec or feature_spec()
    config = config or LabelConfig.for_spec(spec)
    if config.interval_ms != spec.snapshot_interval_ms:
        raise ValueError(
            f"label interval_ms {config.interval_ms} differs from the spec's SNAPSHOT_INTERVAL_MS "
            f"{spec.snapshot_interval_ms}"
        )
    missing = [n for n in ("symbol", "ts", *spec.names) if n not in features.column_names]
    if missing:
        raise ValueError(f"features table lacks {len(missing)} columns, first {missing[:5]}")
    meta = features.schema.metadata or {}
    if SPEC_HASH_METADATA_KEY in meta and meta[SPEC_HASH_METADATA_KEY].decode() != spec.spec_hash:
        raise ValueError(
            f"features table was computed under feature spec {meta[SPEC_HASH_METADATA_KEY].decode()}, "
            f"not {spec.spec_hash}"
        )
    schema = labelled_features_schema(spec, config.horizons_s)
    if features.num_rows == 0:
        return schema.empty_table()
    symbol = _one_symbol(features, "features table")
    raw_symbol = _one_symbol(raw_rows, "raw rows table")
    if raw_symbol != symbol:
        raise ValueError(f"features are of {symbol} but the raw rows are of {raw_symbol}")

    features = features.sort_by("ts")
    feature_ts = features.column("ts").to_numpy()
    if len(feature_ts) > 1 and not (np.diff(feature_ts) > 0).all():
        raise ValueError(f"features table of {symbol} has duplicate ts values")
    labels = label_rows(raw_rows, config)
    raw_ts = np.sort(raw_rows.column("ts").to_numpy())
    pos = np.searchsorted(raw_ts, feature_ts)
    unknown = (pos >= len(raw_ts)) | (raw_ts[np.minimum(pos, len(raw_ts) - 1)] != feature_ts)
    if unknown.any():
        first = int(feature_ts[np.flatnonzero(unknown)[0]])
        raise ValueError(
            f"{int(unknown.sum())} feature rows of {symbol} have no raw row (first ts {first}): "
            "the raw rows passed are not the ones the features were computed from"
        )

    label_ts = labels.column("ts").to_numpy()
    at = np.searchsorted(label_ts, feature_ts)
    hit = np.zeros(len(feature_ts), dtype=bool)
    if len(label_ts):
        hit = (at < len(label_ts)) & (label_ts[np.minimum(at, len(label_ts) - 1)] == feature_ts)
    keep = np.flatnonzero(hit)
    take = at[hit]
    columns: dict[str, pa.Array] = {
        "symbol": pa.array([symbol] * len(keep), pa.string()),
        "ts": pa.array(feature_ts[keep], pa.int64()),
    }
    values = np.column_stack([features.column(n).to_numpy().astype(np.float64) for n in spec.names])[keep]
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(a[0]) for a in np.nonzero(bad))
        raise ValueError(
            f"feature {spec.names[col]} of {symbol} at ts {int(feature_ts[keep][row])} is not finite"
        )
    for c, name in enumerate(spec.names):
        columns[name] = pa.array(values[:, c], pa.float64())
    for name in labels.column_names[2:]:
        columns[name] = labels.column(name).take(pa.array(take))
    return pa.Table.from_pydict(columns, schema=schema)
