"""The candle window K(t) of docs/features.md §1.3 and the per-symbol store of closed candles it is cut from.

K(t) is the contiguous run of closed one-minute candles ending at the row's pinned candle k_0, the newest
`CANDLE_WINDOW` of them; a missing minute ends it. Every candle and indicator feature is a function of K(t)
(and, for its default, of m*(t)), so live and batch agree as long as both cut the window the same way, which
they do by sharing `CandleHistory.window`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.arrow import CANDLES
from schemas.features import CANDLE_WINDOW
from schemas.market import CANDLE_INTERVAL_MS, Candle
from schemas.snapshot import NO_CANDLE_PIN

# Live rows pin the newest closed candle, so a store of twice the window keeps every pin a row can name,
# with room for a late backfill, at a few tens of kilobytes per symbol.
DEFAULT_CAPACITY = 2 * CANDLE_WINDOW

_PRICE_FIELDS = ("open", "high", "low", "close")
_FLOAT_FIELDS = (*_PRICE_FIELDS, "volume", "turnover")


class MissingCandleError(ValueError):
    """A row pins a candle that the store does not hold: a data-integrity error, never defaulted (§1.3)."""

    def __init__(self, symbol: str, pin_ms: int, detail: str = "") -> None:
        self.symbol = symbol
        self.pin_ms = pin_ms
        if detail:
            super().__init__(f"{symbol}: cannot cut K(t) for the pin start_ms={pin_ms}: {detail}")
        else:
            super().__init__(f"{symbol}: pinned candle start_ms={pin_ms} is not in the candle store")


class ConflictingCandleError(ValueError):
    """A candle arrived for a start already held with different values.

    Closed klines are final, so this is an upstream error. The held candle is kept: features already
    computed (and cached per pin) from it stay valid, and live and batch keep seeing the same K(t).
    """


def _check_candle_arrays(where: str, starts: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    """Raise naming the first bad candle: non-finite or non-positive prices, inconsistent OHLC, negative sizes."""
    o, h, lo, c = (columns[name] for name in _PRICE_FIELDS)
    v, t = columns["volume"], columns["turnover"]
    with np.errstate(invalid="ignore"):
        bad = ~(
            np.isfinite(o)
            & np.isfinite(h)
            & np.isfinite(lo)
            & np.isfinite(c)
            & (lo > 0)
            & (lo <= np.minimum(o, c))
            & (np.maximum(o, c) <= h)
            & np.isfinite(v)
            & (v >= 0)
            & np.isfinite(t)
            & (t >= 0)
        )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}: invalid candle at start_ms={int(starts[i])}: o={o[i]} h={h[i]} l={lo[i]} c={c[i]} "
            f"v={v[i]} turnover={t[i]} (prices must be finite and > 0 with l <= min(o, c) <= max(o, c) <= h, "
            "volume and turnover finite and >= 0)"
        )


def _read_only(values: np.ndarray) -> np.ndarray:
    if not values.flags.writeable:
        return values
    view = values.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, slots=True, eq=False)
class CandleWindow:
    """K(t): closed one-minute candles, oldest first, contiguous minutes, at most `CANDLE_WINDOW`.

    Arrays are read-only views (windows are cached and shared); k_0 is the last element.
    """

    start_ms: np.ndarray  # int64, ms since the epoch
    open: np.ndarray  # float64, USDT per coin
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # float64, base coin
    turnover: np.ndarray  # float64, USDT

    EMPTY: ClassVar[CandleWindow]

    def __post_init__(self) -> None:
        starts = np.asarray(self.start_ms)
        if starts.ndim != 1 or (starts.size and starts.dtype.kind not in "iu"):
            raise ValueError(
                f"CandleWindow.start_ms must be a 1-D integer array, got {starts.dtype} {starts.shape}"
            )
        object.__setattr__(self, "start_ms", _read_only(np.ascontiguousarray(starts, dtype=np.int64)))
        n = len(starts)
        if n > CANDLE_WINDOW:
            raise ValueError(f"CandleWindow holds at most CANDLE_WINDOW={CANDLE_WINDOW} candles, got {n}")
        columns: dict[str, np.ndarray] = {}
        for name in _FLOAT_FIELDS:
            values = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if values.shape != (n,):
                raise ValueError(
                    f"CandleWindow.{name} has shape {values.shape}, expected ({n},) like start_ms"
                )
            columns[name] = _read_only(values)
            object.__setattr__(self, name, columns[name])
        if n == 0:
            return
        if starts[0] % CANDLE_INTERVAL_MS or (n > 1 and not (np.diff(starts) == CANDLE_INTERVAL_MS).all()):
            raise ValueError(
                f"CandleWindow.start_ms must be consecutive minute starts (step {CANDLE_INTERVAL_MS} ms), "
                f"got {starts[0]} … {starts[-1]} for {n} candles"
            )
        _check_candle_arrays("CandleWindow", starts, columns)

    def __len__(self) -> int:
        return len(self.start_ms)

    @property
    def k0_start(self) -> int:
        """Start of the newest candle k_0, or −1 for the empty window (a row without a pin)."""
        return int(self.start_ms[-1]) if len(self.start_ms) else NO_CANDLE_PIN

    @classmethod
    def from_candles(cls, candles: Iterable[Candle]) -> CandleWindow:
        """A window of the given candles, oldest first (they must be consecutive minutes, at most 200)."""
        candles = list(candles)
        return cls(
            start_ms=np.array([c.start_ms for c in candles], dtype=np.int64),
            **{
                name: np.array([getattr(c, name) for c in candles], dtype=np.float64)
                for name in _FLOAT_FIELDS
            },
        )


CandleWindow.EMPTY = CandleWindow(
    start_ms=np.empty(0, dtype=np.int64), **{name: np.empty(0, dtype=np.float64) for name in _FLOAT_FIELDS}
)
EMPTY_WINDOW = CandleWindow.EMPTY


class CandleHistory:
    """Closed one-minute candles of one symbol, and the windows K(t) cut from them.

    Holds at most `capacity` candles (None: unbounded, as a batch job holding a day wants); beyond that the
    oldest are dropped, and a window that would reach back into dropped candles raises instead of coming out
    shorter than batch would cut it. Adding a candle already held is a no-op when it is identical and raises
    `ConflictingCandleError` when it differs (the held one is kept, see there).
    """

    def __init__(self, symbol: str, capacity: int | None = DEFAULT_CAPACITY) -> None:
        if not symbol:
            raise ValueError("CandleHistory needs a symbol")
        if capacity is not None and capacity < CANDLE_WINDOW:
            raise ValueError(
                f"CandleHistory capacity must be >= CANDLE_WINDOW={CANDLE_WINDOW}, got {capacity}"
            )
        self.symbol = symbol
        self.capacity = capacity
        # start_ms -> (open, high, low, close, volume, turnover)
        self._candles: dict[int, tuple[float, float, float, float, float, float]] = {}
        self._dropped_through = -math.inf  # newest start dropped for capacity
        self._arrays: _Columns | None = None
        self._last_window: tuple[int, CandleWindow] | None = None

    def __len__(self) -> int:
        return len(self._candles)

    def __contains__(self, start_ms: object) -> bool:
        return start_ms in self._candles

    @property
    def newest_start(self) -> int:
        """Start of the newest held candle, or −1 when empty."""
        return max(self._candles) if self._candles else NO_CANDLE_PIN

    def add(self, candle: Candle) -> None:
        """Hold one closed candle of this symbol (any order; a repeat of an identical candle is a no-op)."""
        if candle.symbol != self.symbol:
            raise ValueError(
                f"CandleHistory({self.symbol}) got a candle of {candle.symbol}@{candle.start_ms}"
            )
        if not candle.confirmed:
            raise ValueError(
                f"{self.symbol}: candle {candle.start_ms} is not confirmed; only closed candles count"
            )
        if candle.interval_ms != CANDLE_INTERVAL_MS:
            raise ValueError(
                f"{self.symbol}: candle {candle.start_ms} has interval_ms={candle.interval_ms}, "
                f"expected one-minute candles ({CANDLE_INTERVAL_MS})"
            )
        values = (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.turnover)
        _check_candle_arrays(
            f"CandleHistory({self.symbol})",
            np.array([candle.start_ms]),
            {name: np.array([x]) for name, x in zip(_FLOAT_FIELDS, values, strict=True)},
        )
        self._put(candle.start_ms, values)

    def _put(self, start_ms: int, values: tuple[float, float, float, float, float, float]) -> None:
        held = self._candles.get(start_ms)
        if held is not None:
            if held != values:
                raise ConflictingCandleError(
                    f"{self.symbol}: candle {start_ms} already held as {held}, got different values {values}; "
                    "keeping the held candle"
                )
            return
        if start_ms <= self._dropped_through:
            return  # older than candles already dropped for capacity: it could never be in a window
        self._candles[start_ms] = values
        self._arrays = None
        self._last_window = None
        if self.capacity is not None and len(self._candles) > self.capacity:
            oldest = min(self._candles)
            del self._candles[oldest]
            self._dropped_through = max(self._dropped_through, oldest)

    def window(self, pin_ms: int) -> CandleWindow:
        """K(t) for a row pinning `pin_ms` (docs/features.md §1.3): empty for −1; raises `MissingCandleError`
        when the pinned candle is not held (never another candle instead)."""
        if pin_ms == NO_CANDLE_PIN:
            return EMPTY_WINDOW
        if pin_ms < 0 or pin_ms % CANDLE_INTERVAL_MS:
            raise ValueError(f"{self.symbol}: pin {pin_ms} is neither −1 nor a minute start")
        if self._last_window is not None and self._last_window[0] == pin_ms:
            return self._last_window[1]
        cols = self._columns()
        j = int(np.searchsorted(cols.start_ms, pin_ms))
        if j == len(cols.start_ms) or cols.start_ms[j] != pin_ms:
            raise MissingCandleError(self.symbol, pin_ms)
        lo = max(int(cols.run_start[j]), j + 1 - CANDLE_WINDOW)
        if (
            j + 1 - lo < CANDLE_WINDOW
            and int(cols.start_ms[lo]) - CANDLE_INTERVAL_MS <= self._dropped_through
        ):
            raise MissingCandleError(
                self.symbol,
                pin_ms,
                f"its window reaches back into candles already dropped at capacity={self.capacity}",
            )
        # Every held candle was checked on the way in and the run is contiguous by construction, so the
        # window skips CandleWindow's checks (most of its cost; batch cuts one per distinct pin).
        window = object.__new__(CandleWindow)
        for name in ("start_ms", *_FLOAT_FIELDS):
            object.__setattr__(window, name, getattr(cols, name)[lo : j + 1])
        self._last_window = (pin_ms, window)
        return window

    def _columns(self) -> _Columns:
        if self._arrays is None:
            keys = sorted(self._candles)
            values = np.array([self._candles[s] for s in keys], dtype=np.float64).reshape(-1, 6)
            self._arrays = _Columns(np.array(keys, dtype=np.int64), values)
        return self._arrays

    @classmethod
    def from_candles(
        cls, symbol: str, candles: Iterable[Candle], capacity: int | None = DEFAULT_CAPACITY
    ) -> CandleHistory:
        history = cls(symbol, capacity)
        for candle in candles:
            history.add(candle)
        return history

    @classmethod
    def from_table(cls, symbol: str, table: pa.Table) -> CandleHistory:
        """An unbounded history of `symbol`'s candles in a table with the columns of `schemas.arrow.CANDLES`
        (rows of other symbols are ignored; any order; identical duplicates allowed)."""
        missing = [name for name in CANDLES.names if name not in table.column_names]
        if missing:
            raise ValueError(f"candle table for {symbol} lacks columns {missing} of schemas.arrow.CANDLES")
        where = f"candle table for {symbol}"
        mine = table.filter(pc.equal(table.column("symbol"), symbol))
        for name in ("start_ms", *_FLOAT_FIELDS):
            if mine.column(name).null_count:
                raise ValueError(f"{where}: column {name} has nulls")
        starts = mine.column("start_ms").to_numpy().astype(np.int64)
        columns = {name: mine.column(name).to_numpy().astype(np.float64) for name in _FLOAT_FIELDS}
        off_grid = starts % CANDLE_INTERVAL_MS != 0
        if off_grid.any():
            raise ValueError(f"{where}: start_ms={int(starts[off_grid][0])} is not a minute start")
        _check_candle_arrays(where, starts, columns)
        history = cls(symbol, capacity=None)
        o, h, lo, c, v, t = (columns[name].tolist() for name in _FLOAT_FIELDS)
        for i, start in enumerate(starts.tolist()):
            history._put(start, (o[i], h[i], lo[i], c[i], v[i], t[i]))
        return history


class _Columns:
    """Sorted copies of the held candles, read-only, and for each index the first index of its contiguous run."""

    __slots__ = ("close", "high", "low", "open", "run_start", "start_ms", "turnover", "volume")

    def __init__(self, starts: np.ndarray, values: np.ndarray) -> None:
        self.start_ms = _read_only(starts)
        self.open, self.high, self.low, self.close, self.volume, self.turnover = (
            _read_only(np.ascontiguousarray(values[:, k])) for k in range(6)
        )
        breaks = np.ones(len(starts), dtype=bool)  # True where a run starts (a hole or the first candle)
        breaks[1:] = np.diff(starts) != CANDLE_INTERVAL_MS
        self.run_start = np.maximum.accumulate(np.where(breaks, np.arange(len(starts)), 0))
