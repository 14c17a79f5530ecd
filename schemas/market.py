"""Market-data records: book levels and snapshots, public trades, candles.

Market data is float64, parsed from the exchange's decimal strings (docs/features.md §6.1); exact decimals
are kept only for orders, fills and positions (see `schemas.trading`).
"""

from __future__ import annotations

import itertools
import math

import msgspec

from schemas.enums import Side

CANDLE_INTERVAL_MS = 60_000


class BookLevel(msgspec.Struct, frozen=True, array_like=True):
    """One price level: price in USDT per coin, size in base coin."""

    price: float
    size: float


class BookSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A full order book at one instant, best levels first on both sides."""

    symbol: str
    ts: int
    bids: list[BookLevel]
    asks: list[BookLevel]
    update_id: int = 0
    seq: int = 0

    def __post_init__(self) -> None:
        for name, levels, better in (("bids", self.bids, float.__gt__), ("asks", self.asks, float.__lt__)):
            for prev, cur in itertools.pairwise(levels):
                if not better(prev.price, cur.price):
                    raise ValueError(
                        f"BookSnapshot {self.symbol} {name} not strictly ordered best first: "
                        f"{prev.price} then {cur.price}"
                    )
        if self.bids and self.asks and self.bids[0].price >= self.asks[0].price:
            raise ValueError(
                f"BookSnapshot {self.symbol} is crossed: best bid {self.bids[0].price} >= best ask "
                f"{self.asks[0].price}"
            )


class PublicTrade(msgspec.Struct, frozen=True, kw_only=True):
    """One public trade record (Bybit `publicTrade` entry). `side` is the taker side."""

    symbol: str
    ts: int
    trade_id: str
    side: Side
    price: float
    size: float
    block_trade: bool = False
    seq: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.price) and self.price > 0):
            raise ValueError(
                f"PublicTrade {self.trade_id}: price must be a positive number, got {self.price}"
            )
        if not (math.isfinite(self.size) and self.size > 0):
            raise ValueError(f"PublicTrade {self.trade_id}: size must be a positive number, got {self.size}")


class Candle(msgspec.Struct, frozen=True, kw_only=True):
    """A one-minute kline: volume in base coin, turnover in USDT (docs/features.md §6.3)."""

    symbol: str
    start_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float
    interval_ms: int = CANDLE_INTERVAL_MS
    confirmed: bool = True

    def __post_init__(self) -> None:
        if self.start_ms % self.interval_ms:
            raise ValueError(
                f"Candle {self.symbol}: start_ms {self.start_ms} is not a multiple of {self.interval_ms}"
            )
        if not (self.low <= min(self.open, self.close) and max(self.open, self.close) <= self.high):
            raise ValueError(
                f"Candle {self.symbol}@{self.start_ms}: OHLC inconsistent "
                f"(o={self.open} h={self.high} l={self.low} c={self.close})"
            )
        if self.volume < 0 or self.turnover < 0:
            raise ValueError(f"Candle {self.symbol}@{self.start_ms}: negative volume or turnover")

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.interval_ms
