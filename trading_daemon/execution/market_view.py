"""The market as execution sees it: the newest raw snapshot row per symbol, from the market feed.

A `MarketSink` of `trading_daemon.market.feed.MarketFeed`: it keeps the last valid row of each symbol, so
that audit rows carry the market at the moment of the action (best bid and ask, spread, touch imbalance,
last trade) and a PostOnly order can be re-priced at the touch without a REST call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow


class MarketView:
    """The newest valid book row of every symbol."""

    def __init__(self) -> None:
        self._rows: dict[str, RawSnapshotRow] = {}

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        for row in rows:
            if not row.book_reset and row.n_bid_levels and row.n_ask_levels:
                self._rows[row.symbol] = row

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Trades are not needed: the rows carry the last trade price."""

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        """Candles are not needed here."""

    def touch(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """Best bid and best ask of the newest row, if any."""
        row = self._rows.get(symbol)
        if row is None:
            return None
        return Decimal(repr(row.bid_prices[0])), Decimal(repr(row.ask_prices[0]))

    def age_ms(self, symbol: str, now_ms: int) -> int | None:
        row = self._rows.get(symbol)
        return None if row is None else now_ms - row.ts

    def context(self, symbol: str) -> dict[str, Any] | None:
        """The market at this moment, for an audit row (None before the first row)."""
        row = self._rows.get(symbol)
        if row is None:
            return None
        bid, ask = row.bid_prices[0], row.ask_prices[0]
        bid_size, ask_size = sum(row.bid_sizes[:5]), sum(row.ask_sizes[:5])
        depth = bid_size + ask_size
        return {
            "ts": row.ts,
            "best_bid": _finite(bid),
            "best_ask": _finite(ask),
            "mid": _finite((bid + ask) / 2),
            "spread": _finite(ask - bid),
            "imbalance_top5": _finite(bid_size / depth) if depth else None,
            "last_trade_price": _finite(row.last_trade_price),
        }


def _finite(value: float) -> float | None:
    # JSON (and Postgres jsonb) has no NaN: a row without trades carries NaN as its last trade price.
    return value if math.isfinite(value) else None
