"""Row windows: the columnar view of the raw snapshot rows that the order-book features read.

docs/features.md §1.2: the features at row t read the rows of t's segment ending at t, at most
``max(W_SHORT, W_LONG) + 1`` = 61 of them (the window and the predecessor of its oldest row). Both paths build
the same :class:`RowWindow` and hand it to the same per-row function, so they agree to the last bit:

* batch: :class:`RowColumns` holds a day's columns, built once from an Arrow table or a list of rows;
  ``window(i)`` slices views, no copies;
* live: :class:`RowBuffer` appends one row at a time into preallocated columns and slices the same views.

Scalar stream aggregates live in one (rows, N_AGG) float64 block, so that a window sum of every aggregate
is one numpy reduction (axis 0, rows added oldest first, the same order in both paths). The row-local
quantities of §1.1 (k-level sums, the mid) and the pair quantities of §1.2 (r_j, e_j, x_j: row j with the row
stored before it) are computed once per row, when the row is stored, by one vectorised function
(:meth:`_Columns.derive`, elementwise per row, so a day at once and one live row give the same bits) and
kept in a (rows, N_DERIVED) block. Whether row j's pair quantities are usable (pred(j) in its segment) is
the window's business: row 0 of a window never contributes a pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from schemas.features import FEATURE_PARAMETERS
from schemas.snapshot import (
    BOOK_DEPTH,
    COUNT_FIELDS,
    LEVEL_ARRAY_FIELDS,
    NONNEGATIVE_FLOAT_FIELDS,
    RAW_SNAPSHOT_FIELDS,
    RawSnapshotRow,
)

# Columns of the aggregate block, in order. All but the derived ones are §6.1 fields as float64
# (counts are exact in float64). Derived per row, before any window sum:
#   interval_s = interval_ms / 1000 (rates divide by Σ interval_s, §1.2),
#   bid_events = bid_inserts + bid_updates + bid_deletes (#22), ask_events likewise (#23),
#   n_trades = n_buy_trades + n_sell_trades (#49), traded_volume = buy_volume + sell_volume (#24).
_RAW_AGGREGATES: tuple[str, ...] = RAW_SNAPSHOT_FIELDS[
    RAW_SNAPSHOT_FIELDS.index("n_book_msgs") : RAW_SNAPSHOT_FIELDS.index("eff_spread_volume") + 1
]  # n_book_msgs … eff_spread_volume, in contract order
AGG_COLUMNS: tuple[str, ...] = (
    "interval_s",
    *_RAW_AGGREGATES,
    "bid_events",
    "ask_events",
    "n_trades",
    "traded_volume",
)
AGG = {name: i for i, name in enumerate(AGG_COLUMNS)}
N_AGG = len(AGG_COLUMNS)
_A_BUY_NOT, _A_SELL_NOT = AGG["buy_notional"], AGG["sell_notional"]

# Columns of the derived block (§1.1, §1.2). First the k-level sums, for each quantity over the first 5, the
# first 10 and all levels (cumulative sums, best level first): depth Db_k, Da_k [base], notional Lb_k, La_k
# [USDT], rank-weighted depth Σ q_i/i (#43). Then, per row:
#   two_sided       1.0 when nb ≥ 1 and na ≥ 1;  mid = (Pb + Pa)/2 and spread_rel = 1e4·(Pa − Pb)/m, else 0
#   net_depth_5     X = Db_5 − Da_5 (#20)
#   pair_two_sided  1.0 when this row and the row stored before it are both two-sided; then
#   r               1e4·ln(m_j/m_prev) [bps] and e = the OFI contribution of #21, else 0
#   x_ok, x         last_trade_price > 0 on both rows; then x = 1e4·ln(p_j/p_prev) [bps], else 0
#   signed_notional S_j = (buy_notional − sell_notional)/1e6 (#40); total_notional N_j = (buy + sell)/1e6 (#41)
_LEVEL_SUMS = ("depth_bid", "depth_ask", "notional_bid", "notional_ask", "weighted_bid", "weighted_ask")
_LEVEL_K = (5, 10, BOOK_DEPTH)
DERIVED_COLUMNS: tuple[str, ...] = (
    *(f"{q}_{'all' if k == BOOK_DEPTH else k}" for q in _LEVEL_SUMS for k in _LEVEL_K),
    "two_sided",
    "mid",
    "spread_rel",
    "net_depth_5",
    "pair_two_sided",
    "r",
    "e",
    "x_ok",
    "x",
    "signed_notional",
    "total_notional",
)
DER = {name: i for i, name in enumerate(DERIVED_COLUMNS)}
N_DERIVED = len(DERIVED_COLUMNS)
_RANK_WEIGHTS = 1.0 / np.arange(1, BOOK_DEPTH + 1)  # w_i = 1/i of #43
_N_SUMS = len(_LEVEL_SUMS) * len(_LEVEL_K)
_K_POS = [k - 1 for k in _LEVEL_K]
_D_TWO, _D_MID, _D_SPREAD, _D_X5 = (DER[n] for n in ("two_sided", "mid", "spread_rel", "net_depth_5"))
_D_PAIR, _D_R, _D_E, _D_XOK, _D_X = (DER[n] for n in ("pair_two_sided", "r", "e", "x_ok", "x"))
_D_SIGNED, _D_TOTAL = DER["signed_notional"], DER["total_notional"]
_DERIVE_CHUNK = 4096  # rows per vectorised derive call in batch (bounds the temporaries)

_INT_FIELDS = ("interval_ms", *(f for f in COUNT_FIELDS if f != "late_messages"))  # late_messages: no feature
_FLOAT_FIELDS = NONNEGATIVE_FLOAT_FIELDS


def window_rows(params: Mapping[str, Any] = FEATURE_PARAMETERS) -> int:
    """Rows a window holds at most: the longest row window plus the predecessor of its oldest row (61)."""
    return max(int(params["W_SHORT"]), int(params["W_LONG"])) + 1


def m_star(
    n_bid_levels: int, n_ask_levels: int, best_bid: float, best_ask: float, last_trade: float
) -> float:
    """The reference mid m* of §1.1: the mid if two-sided, else the non-empty side's best price, else the
    last trade price if > 0, else 0. Never undefined."""
    if n_bid_levels > 0 and n_ask_levels > 0:
        return (best_bid + best_ask) / 2
    if n_bid_levels > 0:
        return best_bid
    if n_ask_levels > 0:
        return best_ask
    return last_trade if last_trade > 0 else 0.0


def row_m_star(row: RawSnapshotRow) -> float:
    """m* of one raw snapshot row (§1.1)."""
    return m_star(
        row.n_bid_levels, row.n_ask_levels, row.bid_prices[0], row.ask_prices[0], row.last_trade_price
    )


@dataclass(frozen=True, slots=True)
class RowWindow:
    """The rows of t's segment ending at t, oldest first (row t is the last); numpy views.

    ``starts_segment`` is True when row 0 of the window is the first row of t's segment (so it has no
    predecessor and rates leave it out, §1.2). A window shorter than its maximum always starts the segment.
    """

    ts: np.ndarray  # (k,) int64
    interval_ms: np.ndarray  # (k,) int64
    n_bid_levels: np.ndarray  # (k,) int64
    n_ask_levels: np.ndarray  # (k,) int64
    bid_prices: np.ndarray  # (k, 50) float64, best first, 0-padded
    bid_sizes: np.ndarray
    ask_prices: np.ndarray
    ask_sizes: np.ndarray
    agg: np.ndarray  # (k, N_AGG) float64, columns AGG_COLUMNS
    derived: np.ndarray  # (k, N_DERIVED) float64, columns DERIVED_COLUMNS
    last_trade_price: np.ndarray  # (k,) float64
    last_candle_start_ms: np.ndarray  # (k,) int64
    starts_segment: bool

    def __len__(self) -> int:
        return len(self.ts)

    def column(self, name: str) -> np.ndarray:
        """One aggregate or derived column by name (AGG_COLUMNS, DERIVED_COLUMNS), a (k,) view."""
        if name in AGG:
            return self.agg[:, AGG[name]]
        if name in DER:
            return self.derived[:, DER[name]]
        raise KeyError(f"{name!r} is not a column; expected one of {AGG_COLUMNS + DERIVED_COLUMNS}")

    def m_star(self) -> float:
        """m* of row t (the last row)."""
        return m_star(
            int(self.n_bid_levels[-1]),
            int(self.n_ask_levels[-1]),
            float(self.bid_prices[-1, 0]),
            float(self.ask_prices[-1, 0]),
            float(self.last_trade_price[-1]),
        )


def _slice_window(cols: _Columns, lo: int, hi: int, starts_segment: bool) -> RowWindow:
    return RowWindow(
        ts=cols.ts[lo:hi],
        interval_ms=cols.interval_ms[lo:hi],
        n_bid_levels=cols.n_bid[lo:hi],
        n_ask_levels=cols.n_ask[lo:hi],
        bid_prices=cols.bid_prices[lo:hi],
        bid_sizes=cols.bid_sizes[lo:hi],
        ask_prices=cols.ask_prices[lo:hi],
        ask_sizes=cols.ask_sizes[lo:hi],
        agg=cols.agg[lo:hi],
        derived=cols.derived[lo:hi],
        last_trade_price=cols.last_trade[lo:hi],
        last_candle_start_ms=cols.pin[lo:hi],
        starts_segment=starts_segment,
    )


class _Columns:
    """Plain holder of the column arrays (R rows, or a live buffer's capacity)."""

    __slots__ = (
        "agg",
        "ask_prices",
        "ask_sizes",
        "bid_prices",
        "bid_sizes",
        "book_reset",
        "derived",
        "interval_ms",
        "last_trade",
        "n_ask",
        "n_bid",
        "pin",
        "ts",
    )

    def __init__(self, n: int) -> None:
        self.ts = np.zeros(n, np.int64)
        self.interval_ms = np.zeros(n, np.int64)
        self.book_reset = np.zeros(n, np.bool_)
        self.n_bid = np.zeros(n, np.int64)
        self.n_ask = np.zeros(n, np.int64)
        self.bid_prices = np.zeros((n, BOOK_DEPTH))
        self.bid_sizes = np.zeros((n, BOOK_DEPTH))
        self.ask_prices = np.zeros((n, BOOK_DEPTH))
        self.ask_sizes = np.zeros((n, BOOK_DEPTH))
        self.agg = np.zeros((n, N_AGG))
        self.derived = np.zeros((n, N_DERIVED))
        self.last_trade = np.zeros(n)
        self.pin = np.zeros(n, np.int64)

    def put(self, i: int, row: RawSnapshotRow) -> None:
        self.ts[i] = row.ts
        self.interval_ms[i] = row.interval_ms
        self.book_reset[i] = row.book_reset
        self.n_bid[i] = row.n_bid_levels
        self.n_ask[i] = row.n_ask_levels
        self.bid_prices[i] = row.bid_prices
        self.bid_sizes[i] = row.bid_sizes
        self.ask_prices[i] = row.ask_prices
        self.ask_sizes[i] = row.ask_sizes
        self.agg[i] = _row_aggregates(row)
        self.last_trade[i] = row.last_trade_price
        self.pin[i] = row.last_candle_start_ms

    def derive(self, lo: int, hi: int) -> None:
        """Fill ``derived[lo:hi]`` from rows lo…hi − 1 and, for the pair quantities, the row before each
        (row lo − 1 must already be stored; row 0 has none). Elementwise per row: chunking changes nothing."""
        m = hi - lo
        cur = slice(lo, hi)
        if lo > 0:
            prev: slice | np.ndarray = slice(lo - 1, hi - 1)
            has_prev: bool | np.ndarray = True
        else:
            prev = np.maximum(np.arange(-1, hi - 1), 0)
            has_prev = np.arange(hi) > 0
        bp, bq, ap, aq = self.bid_prices[cur], self.bid_sizes[cur], self.ask_prices[cur], self.ask_sizes[cur]
        d = self.derived[cur]
        # masked entries (one-sided rows, zero prices) may divide by 0 or take log(0); np.where drops them
        with np.errstate(all="ignore"):
            sums = np.cumsum(
                np.array((bq, aq, bp * bq, ap * aq, bq * _RANK_WEIGHTS, aq * _RANK_WEIGHTS)), axis=2
            )
            d[:, :_N_SUMS] = sums[:, :, _K_POS].transpose(1, 0, 2).reshape(m, _N_SUMS)
            d[:, _D_X5] = sums[0, :, 4] - sums[1, :, 4]
            two = (self.n_bid[cur] > 0) & (self.n_ask[cur] > 0)
            pb, qb, pa, qa = bp[:, 0], bq[:, 0], ap[:, 0], aq[:, 0]
            mid = np.where(two, (pb + pa) / 2, 0.0)
            d[:, _D_TWO] = two
            d[:, _D_MID] = mid
            d[:, _D_SPREAD] = np.where(two, 1e4 * (pa - pb) / mid, 0.0)
            ppb, pqb = self.bid_prices[prev, 0], self.bid_sizes[prev, 0]
            ppa, pqa = self.ask_prices[prev, 0], self.ask_sizes[prev, 0]
            pair = two & (self.n_bid[prev] > 0) & (self.n_ask[prev] > 0) & has_prev
            d[:, _D_PAIR] = pair
            d[:, _D_R] = np.where(pair, 1e4 * np.log(mid / ((ppb + ppa) / 2)), 0.0)
            ofi = ((pb >= ppb) * qb - (pb <= ppb) * pqb) - (pa <= ppa) * qa + (pa >= ppa) * pqa
            d[:, _D_E] = np.where(pair, ofi, 0.0)
            price, prev_price = self.last_trade[cur], self.last_trade[prev]
            x_ok = (price > 0) & (prev_price > 0) & has_prev
            d[:, _D_XOK] = x_ok
            d[:, _D_X] = np.where(x_ok, 1e4 * np.log(price / prev_price), 0.0)
            buy, sell = self.agg[cur, _A_BUY_NOT], self.agg[cur, _A_SELL_NOT]
            d[:, _D_SIGNED] = (buy - sell) / 1e6
            d[:, _D_TOTAL] = (buy + sell) / 1e6


def _row_aggregates(r: RawSnapshotRow) -> tuple[float, ...]:
    # Same arithmetic as the vectorised _aggregate_block (one IEEE operation per derived value).
    return (
        r.interval_ms / 1000,
        r.n_book_msgs,
        r.n_bbo_changes,
        r.bid_inserts,
        r.bid_updates,
        r.bid_deletes,
        r.ask_inserts,
        r.ask_updates,
        r.ask_deletes,
        r.ttl_count,
        r.ttl_sum_s,
        r.ttl_sumsq_s2,
        r.n_buy_trades,
        r.n_sell_trades,
        r.buy_volume,
        r.sell_volume,
        r.buy_notional,
        r.sell_notional,
        r.eff_spread_wsum,
        r.eff_spread_volume,
        r.bid_inserts + r.bid_updates + r.bid_deletes,
        r.ask_inserts + r.ask_updates + r.ask_deletes,
        r.n_buy_trades + r.n_sell_trades,
        r.buy_volume + r.sell_volume,
    )


def _aggregate_block(get: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    agg = np.empty((n, N_AGG))
    agg[:, AGG["interval_s"]] = get["interval_ms"].astype(np.int64) / 1000
    for name in _RAW_AGGREGATES:
        agg[:, AGG[name]] = get[name]
    ints = {name: get[name].astype(np.int64) for name in _INT_FIELDS}
    agg[:, AGG["bid_events"]] = ints["bid_inserts"] + ints["bid_updates"] + ints["bid_deletes"]
    agg[:, AGG["ask_events"]] = ints["ask_inserts"] + ints["ask_updates"] + ints["ask_deletes"]
    agg[:, AGG["n_trades"]] = ints["n_buy_trades"] + ints["n_sell_trades"]
    agg[:, AGG["traded_volume"]] = get["buy_volume"].astype(np.float64) + get["sell_volume"].astype(
        np.float64
    )
    return agg


class RowColumns:
    """A day's rows of one symbol as columns, built once; ``window(i)`` is the RowWindow ending at row i.

    The first row starts a segment (§1.2: the oldest row a batch job reads), as does every row with
    ``book_reset``. Rows must be in strictly increasing ``ts`` order.
    """

    def __init__(self, cols: _Columns, n: int, *, max_rows: int) -> None:
        if max_rows < 2:
            raise ValueError(f"max_rows must be >= 2 (a row and its predecessor), got {max_rows}")
        self._cols = cols
        self._n = n
        self.max_rows = max_rows
        if n and np.any(np.diff(cols.ts[:n]) <= 0):
            bad = int(np.flatnonzero(np.diff(cols.ts[:n]) <= 0)[0]) + 1
            raise ValueError(
                f"rows must be in strictly increasing ts order: row {bad} has ts {int(cols.ts[bad])} after "
                f"{int(cols.ts[bad - 1])}"
            )
        # Index of the first row of each row's segment: the last segment start at or before it.
        starts = cols.book_reset[:n].copy()
        if n:
            starts[0] = True
        idx = np.where(starts, np.arange(n), 0)
        self.segment_start = np.maximum.accumulate(idx) if n else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return self._n

    @property
    def ts(self) -> np.ndarray:
        return self._cols.ts[: self._n]

    @property
    def pins(self) -> np.ndarray:
        """``last_candle_start_ms`` of every row."""
        return self._cols.pin[: self._n]

    def window(self, i: int) -> RowWindow:
        """The RowWindow ending at row i (negative i counts from the end)."""
        n = self._n
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        i %= n
        seg = int(self.segment_start[i])
        lo = max(seg, i - self.max_rows + 1)
        return _slice_window(self._cols, lo, i + 1, lo == seg)

    @classmethod
    def from_rows(
        cls, rows: Sequence[RawSnapshotRow], *, params: Mapping[str, Any] = FEATURE_PARAMETERS
    ) -> RowColumns:
        """Columns of validated RawSnapshotRow records (one symbol, ts order)."""
        _check_one_symbol(r.symbol for r in rows)
        cols = _Columns(len(rows))
        for i, row in enumerate(rows):
            cols.put(i, row)
        for lo in range(0, len(rows), _DERIVE_CHUNK):
            cols.derive(lo, min(len(rows), lo + _DERIVE_CHUNK))
        return cls(cols, len(rows), max_rows=window_rows(params))

    @classmethod
    def from_table(cls, table: pa.Table, *, params: Mapping[str, Any] = FEATURE_PARAMETERS) -> RowColumns:
        """Columns of a raw_snapshots table (schemas.arrow.RAW_SNAPSHOTS), checked like RawSnapshotRow."""
        missing = [
            n
            for n in ("symbol", "ts", "book_reset", *_INT_FIELDS, *_FLOAT_FIELDS)
            if n not in table.column_names
        ]
        missing += [
            n
            for n in (*LEVEL_ARRAY_FIELDS, "n_bid_levels", "n_ask_levels", "last_candle_start_ms")
            if n not in table.column_names
        ]
        if missing:
            raise ValueError(f"rows table is not a raw_snapshots table: missing columns {missing}")
        n = table.num_rows
        _check_one_symbol(table.column("symbol").unique().to_pylist())
        get: dict[str, np.ndarray] = {}
        for name in (
            "ts",
            "book_reset",
            "n_bid_levels",
            "n_ask_levels",
            "last_candle_start_ms",
            *_INT_FIELDS,
            *_FLOAT_FIELDS,
        ):
            col = table.column(name)
            if col.null_count:
                raise ValueError(f"rows table: column {name} has {col.null_count} nulls")
            get[name] = col.to_numpy()
        cols = _Columns(0)  # empty, then each column replaced by the table's (no zero-filled copies)
        cols.ts = get["ts"].astype(np.int64)
        cols.interval_ms = get["interval_ms"].astype(np.int64)
        cols.book_reset = get["book_reset"].astype(np.bool_)
        cols.n_bid = get["n_bid_levels"].astype(np.int64)
        cols.n_ask = get["n_ask_levels"].astype(np.int64)
        cols.last_trade = get["last_trade_price"].astype(np.float64)
        cols.pin = get["last_candle_start_ms"].astype(np.int64)
        levels = [_level_matrix(table.column(name), name, n) for name in LEVEL_ARRAY_FIELDS]
        cols.bid_prices, cols.bid_sizes, cols.ask_prices, cols.ask_sizes = levels
        _validate_columns(cols, get, n)
        cols.agg = _aggregate_block(get, n)
        cols.derived = np.zeros((n, N_DERIVED))
        for lo in range(0, n, _DERIVE_CHUNK):
            cols.derive(lo, min(n, lo + _DERIVE_CHUNK))
        return cls(cols, n, max_rows=window_rows(params))


class RowBuffer:
    """The live side: rows appended one at a time into preallocated columns, windows sliced from them.

    When the buffer is full, the last ``max_rows - 1`` rows move to its front (amortised O(1) per row).
    A row with ``book_reset`` and the first row appended start a segment (§1.2).
    """

    def __init__(self, *, max_rows: int, capacity: int = 1024) -> None:
        if capacity < 2 * max_rows:
            raise ValueError(f"capacity {capacity} must be at least twice max_rows {max_rows}")
        self.max_rows = max_rows
        self._cols = _Columns(capacity)
        self._capacity = capacity
        self._n = 0
        self._segment_start = 0  # may go negative after compaction: the segment began before the buffer
        self._last_ts: int | None = None

    def __len__(self) -> int:
        return self._n

    def append(self, row: RawSnapshotRow) -> RowWindow:
        """Add row t (ts strictly after the previous row) and return the window ending at it."""
        if self._last_ts is not None and row.ts <= self._last_ts:
            raise ValueError(
                f"row {row.symbol}@{row.ts} is not after the previous row (ts {self._last_ts}): "
                "rows must arrive in strictly increasing ts order"
            )
        if self._n == self._capacity:
            self._compact()
        i = self._n
        self._cols.put(i, row)
        self._cols.derive(i, i + 1)
        if row.book_reset or self._last_ts is None:
            self._segment_start = i
        self._n = i + 1
        self._last_ts = row.ts
        lo = max(self._segment_start, i - self.max_rows + 1)
        return _slice_window(self._cols, lo, i + 1, lo == self._segment_start)

    def _compact(self) -> None:
        keep = self.max_rows - 1
        shift = self._n - keep
        c = self._cols
        for arr in (c.ts, c.interval_ms, c.book_reset, c.n_bid, c.n_ask, c.last_trade, c.pin):
            arr[:keep] = arr[shift : self._n]
        for mat in (c.bid_prices, c.bid_sizes, c.ask_prices, c.ask_sizes, c.agg, c.derived):
            mat[:keep] = mat[shift : self._n]
        self._n = keep
        self._segment_start -= shift


def _check_one_symbol(symbols: Iterable[str]) -> None:
    distinct = set(symbols)
    if len(distinct) > 1:
        raise ValueError(f"rows must be of one symbol, got {sorted(distinct)}")


def _level_matrix(col: pa.ChunkedArray, name: str, n: int) -> np.ndarray:
    if col.null_count:
        raise ValueError(f"rows table: column {name} has {col.null_count} nulls")
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_fixed_size_list(arr.type) and not pa.types.is_list(arr.type):
        raise ValueError(f"rows table: column {name} must be a list of {BOOK_DEPTH} float64, got {arr.type}")
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if flat.size != n * BOOK_DEPTH:
        raise ValueError(f"rows table: column {name} must hold {BOOK_DEPTH} values per row")
    return np.ascontiguousarray(flat.reshape(n, BOOK_DEPTH))


def _validate_columns(cols: _Columns, get: Mapping[str, np.ndarray], n: int) -> None:
    """The checks of schemas.snapshot.validate_row, vectorised; raises naming the first bad row and field."""

    def fail(name: str, mask: np.ndarray, what: str) -> None:
        rows = np.flatnonzero(mask.reshape(n, -1).any(axis=1))
        if rows.size:
            i = int(rows[0])
            raise ValueError(f"rows table: row {i} (ts {int(cols.ts[i])}): {name} {what}")

    fail("ts", cols.ts <= 0, "must be positive milliseconds since the epoch")
    fail("last_candle_start_ms", cols.pin < -1, "must be -1 (no candle) or a start time")
    for side, counts in (("bid", cols.n_bid), ("ask", cols.n_ask)):
        fail(f"n_{side}_levels", (counts < 0) | (counts > BOOK_DEPTH), f"must be in 0..{BOOK_DEPTH}")
    present_bid = np.arange(BOOK_DEPTH) < cols.n_bid[:, None]
    present_ask = np.arange(BOOK_DEPTH) < cols.n_ask[:, None]
    for name, mat, present in (
        ("bid_prices", cols.bid_prices, present_bid),
        ("bid_sizes", cols.bid_sizes, present_bid),
        ("ask_prices", cols.ask_prices, present_ask),
        ("ask_sizes", cols.ask_sizes, present_ask),
    ):
        fail(name, ~np.isfinite(mat), "holds a non-finite value")
        fail(name, present & (mat <= 0), "must be > 0 within the present levels")
        fail(name, ~present & (mat != 0), "padding past the present levels must be 0")
    for name in _INT_FIELDS:
        fail(name, get[name] < 0, "must be >= 0")
    for name in _FLOAT_FIELDS:
        v = get[name].astype(np.float64)
        fail(name, ~(np.isfinite(v) & (v >= 0)), "must be finite and >= 0")
