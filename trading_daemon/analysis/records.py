"""What the market analyzer holds per symbol: one frozen `MarketAnalysis` per raw snapshot row.

Units follow docs/features.md §1.4: prices in USDT per coin, sizes in base coin, notionals in USDT, bps of the
reference mid. Imbalances are the bid's share of the size (0.5 balanced, above bid-heavy). Where a value is
one of the 110 features, the field says which (`#n`) and the number is exactly that feature's.
"""

from __future__ import annotations

import msgspec


class BookCluster(msgspec.Struct, frozen=True, kw_only=True):
    """One book level whose notional reaches MIN_CLUSTER_VOLUME (docs/strategies.md §1)."""

    price: float
    size: float  # base coin
    notional: float  # USDT
    distance_bps: float  # from the mid, >= 0 on a sane book


class MarketAnalysis(msgspec.Struct, frozen=True, kw_only=True):
    """The analysis of one symbol at one raw snapshot row (`ts`), with the screener's columns."""

    symbol: str
    ts: int
    valid: bool  # the book is two-sided (an invalid or resyncing book's row has no levels)
    book_reset: bool  # the row starts a segment (docs/features.md §1.2)
    candle_pin: int  # the row's newest closed candle (-1 before the first)

    # prices
    best_bid: float  # 0 without bids
    best_ask: float  # 0 without asks
    mid: float  # m* (#3): the mid on a two-sided book, else the fallbacks of docs/features.md §1.1
    micro_price: float  # #4
    last_price: float  # the last trade's price, else the mid
    spread: float  # #1, USDT
    spread_bps: float  # #2

    # imbalance at several depths: Σ bid size / Σ (bid + ask size) over the first k levels
    imbalance_1: float  # the touch
    imbalance_5: float  # #16
    imbalance_10: float  # #17
    imbalance_20: float
    imbalance_total: float  # #18, all (<= 50) levels
    depth_imbalance_ratio: float  # #43, rank-weighted over all levels
    order_flow_imbalance: float  # #21, base coin over the last 10 rows
    buy_sell_ratio: float  # #24, taker-buy share of the volume over the last 10 rows

    # depth and liquidity
    depth_bid_5: float  # #9, base
    depth_ask_5: float  # #10
    depth_bid_10: float  # #11
    depth_ask_10: float  # #12
    liquidity_bid_5: float  # #36, USDT
    liquidity_ask_5: float  # #37

    # clusters: levels of at least MIN_CLUSTER_VOLUME USDT, nearest the touch first (at most MAX_CLUSTERS)
    bid_clusters: tuple[BookCluster, ...]
    ask_clusters: tuple[BookCluster, ...]
    bid_cluster_notional: float  # Σ notional of every such bid level (not only those listed)
    ask_cluster_notional: float
    support: float  # #32, the nearest bid cluster by the feature's rule (docs/features.md §2.3)
    resistance: float  # #33

    # flow and volatility
    volume_1m: float  # traded base volume over the last 60 rows
    turnover_1m: float  # USDT
    trades_1m: int
    trade_rate: float  # #49, trades per second over the last 10 rows
    volatility_1s_bps: float  # #46 per second: std of the per-row mid return over 60 rows, / sqrt(interval s)
    volatility_1m_bps: float  # #64 realized_volatility of the 1-minute candles, in bps (0 under 21 candles)

    # the screener: 24 hours of closed one-minute candles (and of rows, for the trade count)
    change_24h_pct: float | None  # last price against the open of the oldest candle in the window
    high_24h: float | None
    low_24h: float | None
    volume_24h: float  # base
    turnover_24h: float  # USDT
    volatility_24h_pct: float | None  # std of the 1-minute log returns scaled to a day, percent
    window_24h_s: int  # seconds of candles the 24 h columns cover (below 86 400 until a day is held)
    trades_24h: int  # trades counted from the rows this process saw...
    trades_window_s: int  # ...over this many seconds

    def imbalance(self, depth: int) -> float:
        """The imbalance over the first `depth` levels: 1, 5, 10, 20 or 50 (all)."""
        try:
            return float(getattr(self, _IMBALANCE_FIELDS[depth]))
        except KeyError:
            raise ValueError(
                f"MarketAnalysis holds imbalances at depths {sorted(_IMBALANCE_FIELDS)}, not {depth}"
            ) from None

    def touch(self, buy: bool) -> float:
        """The price a PostOnly entry rests at: the best bid for a buy, the best ask for a sell."""
        return self.best_bid if buy else self.best_ask


_IMBALANCE_FIELDS = {
    1: "imbalance_1",
    5: "imbalance_5",
    10: "imbalance_10",
    20: "imbalance_20",
    50: "imbalance_total",
}
