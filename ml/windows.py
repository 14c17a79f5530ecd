"""Model input windows: WINDOW consecutive feature vectors of one symbol, for training and for serving.

The one definition of a valid window, shared by the dataset code (:mod:`ml.datasets`, a table of rows at
once) and the daemon (:class:`WindowBuffer`, one feature vector at a time), so that a live window equals
the training window of the same rows:

* A window is the feature vectors of WINDOW rows of one symbol that are *consecutive*: each row exactly
  SNAPSHOT_INTERVAL_MS after the one before it (:func:`consecutive`). A missing row ends a run, and no
  window spans it: a recording gap, a restart of the daemon, a row whose features could not be computed,
  or, in a dataset, a row dropped because it has no label.
* A ``book_reset`` inside a window is allowed: the features restart their own row windows at segment
  starts (docs/features.md, segments), and the row itself is real data.
* The window ending at row t holds the vectors of rows t − WINDOW + 1 … t, oldest first, as the feature
  engine computed them (float64); the predictor's preprocessor makes the model's float32 input of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from schemas.features import N_FEATURES
from schemas.model import WINDOW


@overload
def consecutive(previous_ts: int, ts: int, interval_ms: int) -> bool: ...
@overload
def consecutive(previous_ts: np.ndarray, ts: np.ndarray, interval_ms: int) -> np.ndarray: ...
def consecutive(previous_ts: Any, ts: Any, interval_ms: int) -> Any:
    """Whether row ``ts`` follows row ``previous_ts`` of the same symbol in one run (element-wise on arrays)."""
    return ts - previous_ts == interval_ms


def run_positions(symbols: np.ndarray, ts_ms: np.ndarray, interval_ms: int) -> np.ndarray:
    """Each row's position in its run of consecutive rows (0 starts a run), rows sorted by (symbol, ts)."""
    n = len(ts_ms)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ts = np.asarray(ts_ms, dtype=np.int64)
    starts = np.ones(n, dtype=bool)
    starts[1:] = (symbols[1:] != symbols[:-1]) | ~consecutive(ts[:-1], ts[1:], interval_ms)
    run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return np.asarray(np.arange(n) - run_start, dtype=np.int64)


def window_ends(
    symbols: np.ndarray, ts_ms: np.ndarray, interval_ms: int, *, stride: int = 1, window: int = WINDOW
) -> np.ndarray:
    """Indices of the rows that end a window (rows sorted by (symbol, ts)), every ``stride``-th per run."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    pos = run_positions(symbols, ts_ms, interval_ms)
    ok = (pos >= window - 1) & ((pos - (window - 1)) % stride == 0)
    return np.flatnonzero(ok).astype(np.int64)


@dataclass(frozen=True, slots=True)
class FeatureWindow:
    """The model input of one symbol at decision time ``ts_ms``: (WINDOW, 110) float64, oldest row first."""

    symbol: str
    ts_ms: int  # the ts of the window's last row
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise ValueError(
                f"FeatureWindow {self.symbol}@{self.ts_ms}: values must be 2-D, got {self.values.shape}"
            )
        if self.values.flags.writeable:
            view = self.values.view()
            view.flags.writeable = False
            object.__setattr__(self, "values", view)


class WindowBuffer:
    """The newest WINDOW feature vectors of one symbol and the length of the run they end (the live side).

    Vectors are pushed in ts order; :meth:`window` is the window ending at the newest one when that row ends
    a full run of consecutive rows, else None. A ring of twice the window (each vector written twice) keeps
    the newest WINDOW vectors contiguous, so a window is one copy.
    """

    def __init__(
        self, symbol: str, interval_ms: int, *, n_features: int = N_FEATURES, window: int = WINDOW
    ) -> None:
        if interval_ms <= 0:
            raise ValueError(f"SNAPSHOT_INTERVAL_MS must be positive, got {interval_ms}")
        if window < 1 or n_features < 1:
            raise ValueError(f"window and n_features must be >= 1, got {window} and {n_features}")
        self.symbol = symbol
        self.interval_ms = interval_ms
        self.size = window
        self._ring = np.zeros((2 * window, n_features), dtype=np.float64)
        self._pushed = 0
        self._run = 0  # consecutive rows ending at the newest vector; 0 after break_run()
        self.last_ts: int | None = None

    @property
    def run_length(self) -> int:
        """Consecutive rows ending at the newest vector (0 before the first, or after :meth:`break_run`)."""
        return self._run

    def push(self, ts_ms: int, values: np.ndarray) -> bool:
        """Add the feature vector of row ``ts_ms``; True when a complete window now ends at it."""
        vector = np.asarray(values, dtype=np.float64)
        if vector.shape != self._ring.shape[1:]:
            raise ValueError(
                f"WindowBuffer({self.symbol}): a vector must have shape {self._ring.shape[1:]}, got {vector.shape}"
            )
        if self.last_ts is not None and ts_ms <= self.last_ts:
            raise ValueError(
                f"WindowBuffer({self.symbol}): row {ts_ms} is not after the previous row {self.last_ts}: "
                "vectors must arrive in strictly increasing ts order"
            )
        continues = (
            self._run > 0 and self.last_ts is not None and consecutive(self.last_ts, ts_ms, self.interval_ms)
        )
        self._run = self._run + 1 if continues else 1
        slot = self._pushed % self.size
        self._ring[slot] = vector
        self._ring[slot + self.size] = vector
        self._pushed += 1
        self.last_ts = ts_ms
        return self._run >= self.size

    def break_run(self) -> None:
        """End the current run: the row after the newest one produced no vector (its features failed)."""
        self._run = 0

    def window(self) -> FeatureWindow | None:
        """The window ending at the newest vector (a copy), or None unless that row ends a full run."""
        if self._run < self.size or self.last_ts is None:
            return None
        newest = (self._pushed - 1) % self.size
        values = self._ring[newest + 1 : newest + 1 + self.size].copy()
        return FeatureWindow(self.symbol, self.last_ts, values)
