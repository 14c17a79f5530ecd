"""The market analyzer: per symbol, on every raw snapshot row, the book's state and the screener's columns.

:class:`MarketAnalyzer` is one of the feed's sinks (`trading_daemon.market.feed.MarketSink`). Per symbol it
keeps the rows in an `ml.features.rows.RowBuffer` and runs the order-book channel of the features
(`ml.features.orderbook.orderbook_features`) on each: imbalances, spread, depth, order flow and volatility are
those features' values, computed by the code the model's inputs come from (docs/features.md §2). What no
feature holds is added here: the imbalance at the touch and over 20 levels, the clusters of
MIN_CLUSTER_VOLUME (levels whose notional reaches it), the last minute's volume, and the screener's 24-hour
columns from the closed one-minute candles (the realized volatility is candle feature #64, from
`ml.features.candles`). The newest analysis of each symbol is a frozen :class:`MarketAnalysis`
(:meth:`MarketAnalyzer.latest`) for the strategies and the API; listeners added with
:meth:`MarketAnalyzer.add_listener` are called with each new one.

A row or candle the analyzer cannot take (rows out of time order, an inconsistent candle) is logged and
counted and never reaches the feed; a raising listener is logged and stops neither the others nor the feed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import structlog

from infra.settings import AnalyzerConfig
from ml.features.candle_window import CandleWindow
from ml.features.candles import CANDLE_FEATURE_NAMES, candle_features
from ml.features.orderbook import DEFAULT_PARAMS, orderbook_features
from ml.features.rows import RowBuffer, RowWindow
from schemas.features import FEATURE_NAMES
from schemas.market import CANDLE_INTERVAL_MS, Candle, PublicTrade
from schemas.snapshot import NO_CANDLE_PIN, RawSnapshotRow
from trading_daemon.analysis.records import BookCluster, MarketAnalysis

log = structlog.get_logger(__name__)

MAX_CLUSTERS = 10  # clusters listed per side (all of them count in the side's cluster notional)
DAY_MS = 86_400_000
DAY_MINUTES = DAY_MS // CANDLE_INTERVAL_MS
FLOW_ROWS = 60  # rows of the "last minute" volume columns at the default 1 s cadence
_HELD_CANDLES = DAY_MINUTES + 60  # a day and an hour of slack for late back-fills

Listener = Callable[[MarketAnalysis], None]

# Where each order-book feature this module reads sits in the channel's (50,) vector.
_F = {
    name: FEATURE_NAMES.index(name)
    for name in (
        "bid_ask_spread_abs",
        "bid_ask_spread_rel",
        "mid_price",
        "micro_price",
        "depth_bid_5",
        "depth_ask_5",
        "depth_bid_10",
        "depth_ask_10",
        "imbalance_5",
        "imbalance_10",
        "imbalance_total",
        "order_flow_imbalance",
        "buy_sell_ratio",
        "support_level_1",
        "resistance_level_1",
        "liquidity_bid_5",
        "liquidity_ask_5",
        "depth_imbalance_ratio",
        "orderbook_volatility",
        "trade_arrival_rate",
    )
}
_REALIZED_VOLATILITY = CANDLE_FEATURE_NAMES.index("realized_volatility")


@dataclass(frozen=True, slots=True)
class _CandleStats:
    """What the closed candles up to a pin say: #64 and the 24-hour columns (prices without the last one)."""

    realized_1m_bps: float
    open_24h: float | None
    high_24h: float | None
    low_24h: float | None
    volume_24h: float
    turnover_24h: float
    volatility_24h_pct: float | None
    window_s: int


_NO_CANDLES = _CandleStats(0.0, None, None, None, 0.0, 0.0, None, 0)


class _TradeCounts:
    """Trades per minute from the rows, over the last day (a ring of minute buckets)."""

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()  # [minute start, trades], oldest first
        self._total = 0
        self._first_ts: int | None = None

    def add(self, ts: int, trades: int) -> tuple[int, int]:
        """Count a row's trades; return (trades over the last day, seconds the count covers)."""
        minute = ts - ts % CANDLE_INTERVAL_MS
        if self._buckets and self._buckets[-1][0] == minute:
            self._buckets[-1][1] += trades
        else:
            self._buckets.append([minute, trades])
        self._total += trades
        while self._buckets and self._buckets[0][0] <= minute - DAY_MS:
            self._total -= self._buckets.popleft()[1]
        if self._first_ts is None:
            self._first_ts = ts
        return self._total, (ts - max(self._first_ts, ts - DAY_MS)) // 1000


class _SymbolState:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.rows = RowBuffer(max_rows=DEFAULT_PARAMS.window_rows)
        self.candles: dict[int, Candle] = {}
        self.candle_version = 0
        self.stats_key: tuple[int, int] | None = None
        self.stats = _NO_CANDLES
        self.trades = _TradeCounts()
        self.latest: MarketAnalysis | None = None

    def add_candle(self, candle: Candle) -> None:
        if not candle.confirmed or candle.interval_ms != CANDLE_INTERVAL_MS:
            return
        if self.candles.get(candle.start_ms) == candle:
            return
        self.candles[candle.start_ms] = candle
        self.candle_version += 1
        if len(self.candles) > _HELD_CANDLES:
            for start in sorted(self.candles)[: len(self.candles) - _HELD_CANDLES]:
                del self.candles[start]

    def candle_stats(self, pin: int, m_star: float) -> _CandleStats:
        key = (pin, self.candle_version)
        if key != self.stats_key:
            self.stats = _candle_stats(self.candles, pin, m_star)
            self.stats_key = key
        return self.stats


def _candle_stats(candles: dict[int, Candle], pin: int, m_star: float) -> _CandleStats:
    if pin == NO_CANDLE_PIN or pin not in candles:
        return _NO_CANDLES
    day = [candles[s] for s in sorted(candles) if pin - DAY_MS < s <= pin]
    run: list[Candle] = []  # K(t) as the features cut it: the contiguous run ending at the pin, <= 200
    start = pin
    while start in candles and len(run) < 200:
        run.append(candles[start])
        start -= CANDLE_INTERVAL_MS
    run.reverse()
    window = CandleWindow(
        start_ms=np.array([c.start_ms for c in run], np.int64),
        open=np.array([c.open for c in run]),
        high=np.array([c.high for c in run]),
        low=np.array([c.low for c in run]),
        close=np.array([c.close for c in run]),
        volume=np.array([c.volume for c in run]),
        turnover=np.array([c.turnover for c in run]),
    )
    realized = float(candle_features(window, m_star)[_REALIZED_VOLATILITY]) * 1e4
    closes = np.array([c.close for c in day])
    starts = np.array([c.start_ms for c in day])
    consecutive = np.diff(starts) == CANDLE_INTERVAL_MS
    returns = np.log(closes[1:] / closes[:-1])[consecutive]
    volatility = float(np.std(returns) * math.sqrt(DAY_MINUTES) * 100) if returns.size >= 2 else None
    return _CandleStats(
        realized_1m_bps=realized,
        open_24h=day[0].open,
        high_24h=max(c.high for c in day),
        low_24h=min(c.low for c in day),
        volume_24h=math.fsum(c.volume for c in day),
        turnover_24h=math.fsum(c.turnover for c in day),
        volatility_24h_pct=volatility,
        window_s=(pin + CANDLE_INTERVAL_MS - day[0].start_ms) // 1000,
    )


def _imbalance(bid: float, ask: float) -> float:
    total = bid + ask
    return bid / total if total > 0 else 0.5


def _clusters(
    prices: np.ndarray, sizes: np.ndarray, n: int, mid: float, min_notional: float, side: int
) -> tuple[tuple[BookCluster, ...], float]:
    notional = prices[:n] * sizes[:n]
    big = np.flatnonzero(notional >= min_notional)
    total = float(notional[big].sum())
    listed = tuple(
        BookCluster(
            price=float(prices[i]),
            size=float(sizes[i]),
            notional=float(notional[i]),
            distance_bps=side * 1e4 * (mid - float(prices[i])) / mid if mid > 0 else 0.0,
        )
        for i in big[:MAX_CLUSTERS]
    )
    return listed, total


class MarketAnalyzer:
    """Per-symbol market analysis on every raw snapshot row; a market sink."""

    def __init__(self, config: AnalyzerConfig) -> None:
        if config.snapshot_interval_ms <= 0:
            raise ValueError(f"snapshot_interval_ms must be > 0, got {config.snapshot_interval_ms}")
        if not (math.isfinite(config.min_cluster_volume) and config.min_cluster_volume >= 0):
            raise ValueError(f"MIN_CLUSTER_VOLUME must be finite and >= 0, got {config.min_cluster_volume}")
        self.config = config
        self._interval_s = config.snapshot_interval_ms / 1000
        self._states = {s: _SymbolState(s) for s in config.symbols}
        self._listeners: list[Listener] = []
        self.rows_failed = dict.fromkeys(self._states, 0)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._states)

    def latest(self, symbol: str) -> MarketAnalysis | None:
        """The analysis of `symbol`'s newest row, or None before its first row."""
        state = self._states.get(symbol)
        if state is None:
            raise KeyError(f"MarketAnalyzer holds no symbol {symbol!r} (symbols: {sorted(self._states)})")
        return state.latest

    def all_latest(self) -> dict[str, MarketAnalysis]:
        """The newest analysis of every symbol that has one (the screener's table)."""
        return {s: st.latest for s, st in self._states.items() if st.latest is not None}

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` with every new analysis, after it became `latest` (on the feed's call stack)."""
        self._listeners.append(listener)

    def load_candles(self, candles: Iterable[Candle]) -> None:
        """Hold older closed candles (e.g. a day from the database) for the 24-hour columns."""
        self.submit_candles(list(candles))

    # -- MarketSink ----------------------------------------------------------------------------------

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        for row in rows:
            state = self._states.get(row.symbol)
            if state is None:
                continue
            try:
                analysis = self._analyse(state, row)
            except Exception as exc:
                self.rows_failed[row.symbol] += 1
                log.error("market analysis refused a row", symbol=row.symbol, ts=row.ts, error=str(exc))
                continue
            state.latest = analysis
            for listener in self._listeners:
                try:
                    listener(analysis)
                except Exception:
                    log.exception("market analysis listener failed", symbol=row.symbol, ts=row.ts)

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        for candle in candles:
            state = self._states.get(candle.symbol)
            if state is not None:
                state.add_candle(candle)

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Nothing to do: the rows carry the trades' aggregates."""

    # -- the analysis --------------------------------------------------------------------------------

    def _analyse(self, state: _SymbolState, row: RawSnapshotRow) -> MarketAnalysis:
        window = state.rows.append(row)
        f = orderbook_features(window, DEFAULT_PARAMS)
        nb, na = row.n_bid_levels, row.n_ask_levels
        bid_sizes, ask_sizes = window.bid_sizes[-1], window.ask_sizes[-1]
        mid = float(f[_F["mid_price"]])
        bid_clusters, bid_notional = _clusters(
            window.bid_prices[-1], bid_sizes, nb, mid, self.config.min_cluster_volume, 1
        )
        ask_clusters, ask_notional = _clusters(
            window.ask_prices[-1], ask_sizes, na, mid, self.config.min_cluster_volume, -1
        )
        volume, turnover, trades = _last_minute(window)
        trades_24h, trades_window_s = state.trades.add(row.ts, row.n_buy_trades + row.n_sell_trades)
        stats = state.candle_stats(row.last_candle_start_ms, mid)
        last = row.last_trade_price if row.last_trade_price > 0 else mid
        high = None if stats.high_24h is None else max(stats.high_24h, last)
        low = None if stats.low_24h is None else min(stats.low_24h, last)
        change = None
        if stats.open_24h is not None and stats.open_24h > 0 and last > 0:
            change = (last / stats.open_24h - 1) * 100
        return MarketAnalysis(
            symbol=row.symbol,
            ts=row.ts,
            valid=nb > 0 and na > 0,
            book_reset=row.book_reset,
            candle_pin=row.last_candle_start_ms,
            best_bid=row.bid_prices[0],
            best_ask=row.ask_prices[0],
            mid=mid,
            micro_price=float(f[_F["micro_price"]]),
            last_price=last,
            spread=float(f[_F["bid_ask_spread_abs"]]),
            spread_bps=float(f[_F["bid_ask_spread_rel"]]),
            imbalance_1=_imbalance(row.bid_sizes[0], row.ask_sizes[0]),
            imbalance_5=float(f[_F["imbalance_5"]]),
            imbalance_10=float(f[_F["imbalance_10"]]),
            imbalance_20=_imbalance(float(bid_sizes[:20].sum()), float(ask_sizes[:20].sum())),
            imbalance_total=float(f[_F["imbalance_total"]]),
            depth_imbalance_ratio=float(f[_F["depth_imbalance_ratio"]]),
            order_flow_imbalance=float(f[_F["order_flow_imbalance"]]),
            buy_sell_ratio=float(f[_F["buy_sell_ratio"]]),
            depth_bid_5=float(f[_F["depth_bid_5"]]),
            depth_ask_5=float(f[_F["depth_ask_5"]]),
            depth_bid_10=float(f[_F["depth_bid_10"]]),
            depth_ask_10=float(f[_F["depth_ask_10"]]),
            liquidity_bid_5=float(f[_F["liquidity_bid_5"]]),
            liquidity_ask_5=float(f[_F["liquidity_ask_5"]]),
            bid_clusters=bid_clusters,
            ask_clusters=ask_clusters,
            bid_cluster_notional=bid_notional,
            ask_cluster_notional=ask_notional,
            support=float(f[_F["support_level_1"]]),
            resistance=float(f[_F["resistance_level_1"]]),
            volume_1m=volume,
            turnover_1m=turnover,
            trades_1m=trades,
            trade_rate=float(f[_F["trade_arrival_rate"]]),
            volatility_1s_bps=float(f[_F["orderbook_volatility"]]) / math.sqrt(self._interval_s),
            volatility_1m_bps=stats.realized_1m_bps,
            change_24h_pct=change,
            high_24h=high,
            low_24h=low,
            volume_24h=stats.volume_24h,
            turnover_24h=stats.turnover_24h,
            volatility_24h_pct=stats.volatility_24h_pct,
            window_24h_s=stats.window_s,
            trades_24h=trades_24h,
            trades_window_s=trades_window_s,
        )


def _last_minute(window: RowWindow) -> tuple[float, float, int]:
    """Traded volume [base], turnover [USDT] and trades over the window's last FLOW_ROWS rows."""
    recent = slice(-FLOW_ROWS, None)
    volume = float(window.column("traded_volume")[recent].sum())
    turnover = float(
        window.column("buy_notional")[recent].sum() + window.column("sell_notional")[recent].sum()
    )
    trades = int(window.column("n_trades")[recent].sum())
    return volume, turnover, trades
