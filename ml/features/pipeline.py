"""The feature pipeline: the three channels combined into the 110-vector of docs/features.md, live and batch.

One per-row function serves both paths (§1.6): :func:`row_features` reads a :class:`RowWindow` (order-book
channel #1–50) and the candle window K(t) of the row's pin (candle #51–75 and indicator #76–110 channels).

* Live, :class:`LiveFeatureEngine`: rows of one symbol arrive one at a time; the window is sliced from a
  buffer of the last rows (O(window) per row).
* Batch, :func:`compute_features`: a day of recorded rows (with the rows prepended before it, §1.2) as a
  table; windows are views of the day's columns.

Candle and indicator features change only when the pin k_0 changes (§1.6), so both paths compute them once
per pin; before the first pin (pin −1) they are defaults that follow m*(t) row by row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ml.features.candle_window import DEFAULT_CAPACITY, CandleHistory, CandleWindow
from ml.features.candles import candle_features
from ml.features.indicators import indicator_features
from ml.features.orderbook import OrderBookParams, orderbook_features
from ml.features.rows import RowBuffer, RowColumns, RowWindow, row_m_star
from schemas.arrow import SPEC_HASH_METADATA_KEY
from schemas.features import (
    CHANNEL_BOUNDS,
    FEATURE_NAMES,
    FEATURE_PARAMETERS,
    N_FEATURES,
    FeatureSpec,
    feature_spec,
)
from schemas.market import Candle
from schemas.snapshot import NO_CANDLE_PIN, RawSnapshotRow

_OB_END = CHANNEL_BOUNDS["orderbook"][1]
# Parameters read by the order-book channel; the candle and indicator channels use FEATURE_PARAMETERS.
_ORDERBOOK_PARAMETERS = {
    "W_SHORT",
    "W_LONG",
    "MIN_PAIRS",
    "RATIO_CAP",
    "CLUSTER_SIZE_MULT",
    "CLUSTER_MIN_NOTIONAL",
}


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """The 110 features of one symbol at row time ``ts_ms``, in spec order (read-only values)."""

    symbol: str
    ts_ms: int
    values: np.ndarray  # (110,) float64

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (N_FEATURES,):
            raise ValueError(
                f"FeatureVector {self.symbol}@{self.ts_ms}: values must be ({N_FEATURES},), got {values.shape}"
            )
        if values.flags.writeable:
            values = values.view()
            values.flags.writeable = False
        object.__setattr__(self, "values", values)

    @property
    def names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def to_array(self) -> np.ndarray:
        """The (110,) float64 vector (read-only; ``to_array()[i]`` is feature # i + 1)."""
        return self.values

    def to_channels(self) -> dict[str, np.ndarray]:
        """{"orderbook": (50,), "candle": (25,), "indicator": (35,)}, by the channel bounds of the spec."""
        return {name: self.values[lo:hi] for name, (lo, hi) in CHANNEL_BOUNDS.items()}

    def as_dict(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.values.tolist(), strict=True))


def _check_spec(spec: FeatureSpec) -> OrderBookParams:
    """The order-book parameters of ``spec``; raises if the spec asks for what this code does not compute."""
    if spec.names != FEATURE_NAMES:
        raise ValueError(
            "feature spec names differ from the 110 names this pipeline computes (schemas.features)"
        )
    fixed = {k for k in set(spec.parameters) | set(FEATURE_PARAMETERS) if k not in _ORDERBOOK_PARAMETERS}
    differ = sorted(k for k in fixed if spec.parameters.get(k) != FEATURE_PARAMETERS.get(k))
    if differ:
        raise ValueError(
            f"feature spec parameters {differ} differ from schemas.features.FEATURE_PARAMETERS: the candle and "
            "indicator channels compute only the default values"
        )
    return OrderBookParams.from_mapping(spec.parameters)


class CandleChannels:
    """Features #51–110 of one symbol's rows: computed once per pin, defaults following m* without one.

    ``keep`` bounds how many pins stay cached (1 live, where pins only move forward; None in batch).
    """

    def __init__(self, history: CandleHistory, *, keep: int | None = 1) -> None:
        self.history = history
        self._keep = keep
        self._cache: dict[int, np.ndarray] = {}

    def values(self, pin_ms: int, m_star: float) -> np.ndarray:
        """(60,) candle then indicator features for a row pinning ``pin_ms`` with reference mid ``m_star``."""
        if pin_ms == NO_CANDLE_PIN:
            return _channels_of(CandleWindow.EMPTY, m_star)
        cached = self._cache.get(pin_ms)
        if cached is None:
            cached = _channels_of(self.history.window(pin_ms), m_star)
            if self._keep is not None and len(self._cache) >= self._keep:
                self._cache.clear()
            self._cache[pin_ms] = cached
        return cached

    def add_candle(self, candle: Candle) -> None:
        """Hold a closed candle; cached pins at or after it are recomputed (it may lengthen their K(t))."""
        self.history.add(candle)
        for pin in [p for p in self._cache if p >= candle.start_ms]:
            del self._cache[pin]


def _channels_of(k: CandleWindow, m_star: float) -> np.ndarray:
    return np.concatenate((candle_features(k, m_star), indicator_features(k, m_star)))


def row_features(
    w: RowWindow, channels: CandleChannels, params: OrderBookParams, out: np.ndarray | None = None
) -> np.ndarray:
    """The 110 features at row t (the last row of ``w``), into ``out`` if given: THE per-row function."""
    if out is None:
        out = np.empty(N_FEATURES)
    out[:_OB_END] = orderbook_features(w, params)
    out[_OB_END:] = channels.values(int(w.last_candle_start_ms[-1]), w.m_star())
    return out


class LiveFeatureEngine:
    """Features of one symbol for the daemon, one raw snapshot row at a time.

    Feed closed candles with :meth:`on_candle` as they close (and the held history first), and rows in
    ``ts`` order with :meth:`on_row`. The first row seen and every row with ``book_reset`` start a segment.
    A warm start feeds the last recorded rows (at most 61 matter) and the candles first: :meth:`warm_up`.
    A row whose pinned candle was never fed raises ``MissingCandleError``.
    """

    def __init__(
        self, symbol: str, spec: FeatureSpec | None = None, *, candle_capacity: int | None = DEFAULT_CAPACITY
    ) -> None:
        if not symbol:
            raise ValueError("LiveFeatureEngine needs a symbol")
        self.symbol = symbol
        self.spec = spec if spec is not None else feature_spec()
        self._params = _check_spec(self.spec)
        self._rows = RowBuffer(max_rows=self._params.window_rows)
        self._channels = CandleChannels(CandleHistory(symbol, candle_capacity), keep=1)

    @property
    def rows_seen(self) -> int:
        """Rows currently buffered (at most the capacity of the buffer; 0 before the first row)."""
        return len(self._rows)

    def on_candle(self, candle: Candle) -> None:
        """Hold one closed (confirmed) one-minute candle of this symbol."""
        if candle.symbol != self.symbol:
            raise ValueError(
                f"LiveFeatureEngine({self.symbol}) got a candle of {candle.symbol}@{candle.start_ms}"
            )
        self._channels.add_candle(candle)

    def on_row(self, row: RawSnapshotRow) -> FeatureVector:
        """The features at this row (rows strictly increasing in ``ts``)."""
        if row.symbol != self.symbol:
            raise ValueError(f"LiveFeatureEngine({self.symbol}) got a row of {row.symbol}@{row.ts}")
        if (
            row.last_candle_start_ms != NO_CANDLE_PIN
        ):  # a missing pinned candle raises before the row is buffered
            self._channels.values(row.last_candle_start_ms, row_m_star(row))
        window = self._rows.append(row)
        return FeatureVector(self.symbol, row.ts, row_features(window, self._channels, self._params))

    def warm_up(self, rows: Iterable[RawSnapshotRow], candles: Iterable[Candle] = ()) -> None:
        """Hold ``candles`` and buffer recorded ``rows`` (oldest first) without computing their features."""
        for candle in candles:
            self.on_candle(candle)
        for row in rows:
            if row.symbol != self.symbol:
                raise ValueError(
                    f"LiveFeatureEngine({self.symbol}) got a warm-up row of {row.symbol}@{row.ts}"
                )
            self._rows.append(row)


def compute_feature_matrix(
    rows: pa.Table, candles: pa.Table, *, n_lookback: int = 0, spec: FeatureSpec | None = None
) -> tuple[str, np.ndarray, np.ndarray]:
    """(symbol, ts (R,) int64, features (R, 110) float64) for the rows after the first ``n_lookback``.

    ``rows`` is a raw_snapshots table of ONE symbol (sorted here by ts; ts must be unique); its first
    ``n_lookback`` rows are the history prepended before the day (§1.2: their features are not output, and
    the oldest starts a segment). ``candles`` is a candles table holding every pinned candle (other symbols
    are ignored); a pinned candle that is missing raises ``MissingCandleError``.
    """
    spec = spec if spec is not None else feature_spec()
    params = _check_spec(spec)
    if not 0 <= n_lookback <= rows.num_rows:
        raise ValueError(f"n_lookback must be in 0..{rows.num_rows} (the rows given), got {n_lookback}")
    if "symbol" not in rows.column_names or "ts" not in rows.column_names:
        raise ValueError("rows table is not a raw_snapshots table: it needs symbol and ts columns")
    symbols = rows.column("symbol").unique().to_pylist()
    if len(symbols) > 1:
        raise ValueError(f"compute_features takes the rows of one symbol, got {sorted(symbols)}")
    symbol = str(symbols[0]) if symbols else ""
    cols = RowColumns.from_table(rows.sort_by("ts"), params=spec.parameters)
    n_out = len(cols) - n_lookback
    out = np.empty((n_out, N_FEATURES))
    if n_out == 0:
        return symbol, np.empty(0, np.int64), out
    channels = CandleChannels(CandleHistory.from_table(symbol, candles), keep=None)
    for j, i in enumerate(range(n_lookback, len(cols))):
        row_features(cols.window(i), channels, params, out[j])
    return symbol, cols.ts[n_lookback:].copy(), out


def features_schema(spec: FeatureSpec | None = None) -> pa.Schema:
    """symbol, ts, then the 110 float64 features; the spec hash in the schema metadata."""
    spec = spec if spec is not None else feature_spec()
    fields = [pa.field("symbol", pa.string(), nullable=False), pa.field("ts", pa.int64(), nullable=False)]
    fields += [pa.field(name, pa.float64(), nullable=False) for name in spec.names]
    return pa.schema(
        fields,
        metadata={
            b"dataset": b"features",
            b"time_unit": b"ms",
            SPEC_HASH_METADATA_KEY: spec.spec_hash.encode(),
        },
    )


def compute_features(
    rows: pa.Table, candles: pa.Table, *, n_lookback: int = 0, spec: FeatureSpec | None = None
) -> pa.Table:
    """Batch features of one symbol's day as a table (:func:`features_schema`), one row per output row.

    Same inputs as :func:`compute_feature_matrix`: rows sorted by ts, the first ``n_lookback`` of them the
    prepended history (not output).
    """
    spec = spec if spec is not None else feature_spec()
    symbol, ts, values = compute_feature_matrix(rows, candles, n_lookback=n_lookback, spec=spec)
    schema = features_schema(spec)
    arrays: list[pa.Array] = [pa.array([symbol] * len(ts), pa.string()), pa.array(ts, pa.int64())]
    arrays += [pa.array(values[:, i]) for i in range(N_FEATURES)]
    return pa.Table.from_arrays(arrays, schema=schema)
