"""Kline (candle) aggregation from public trades, on the exchange clock (docs/exchange_sim_market.md §13).

Buckets are ``[interval·k, interval·k + interval − 1]`` ms. A candle's open is its first trade price, or
the previous close when the bucket has no trade; high, low and close follow the trades; ``volume`` is
Σ qty (base coin) and ``turnover`` Σ price·qty (USDT). A candle is closed (``confirm: true``) at the first
:meth:`KlineBook.roll` or trade at or after its end, exactly once. Each interval keeps its own running
candle; that equals aggregating closed 1-minute candles, since every trade falls in exactly one bucket
of every interval. Nothing is produced before the first trade: there is no price to open with, unless a
history was loaded (:meth:`KlineBook.load_history`): then the next candle of every interval opens at the
history's last close and fills as trades come.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from exchange_sim.events import ZERO, PublicTrade

INTERVALS: dict[str, int] = {"1": 60_000, "5": 300_000, "15": 900_000, "60": 3_600_000}
HISTORY = 1_500  # closed candles kept per interval (more than the 1000 a REST page can ask for)


@dataclass(slots=True)
class Candle:
    """One candle; ``timestamp`` is the time of the last trade included (its start if none)."""

    interval: str
    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    turnover: Decimal = ZERO
    timestamp: int = 0
    confirm: bool = False

    @property
    def end(self) -> int:
        """Last ms of the bucket."""
        return self.start + INTERVALS[self.interval] - 1


class _Series:
    """The closed candles and the running candle of one symbol and interval."""

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.length = INTERVALS[interval]
        self.closed: deque[Candle] = deque(maxlen=HISTORY)
        self.current: Candle | None = None

    def roll(self, now: int, out: list[Candle]) -> None:
        """Close every candle that ended before ``now``, appending the confirmed ones to ``out``."""
        cur = self.current
        if cur is None or now <= cur.end:
            return
        bucket = now - now % self.length
        while cur.start < bucket:
            cur.confirm = True
            self.closed.append(cur)
            out.append(replace(cur))
            nxt = cur.start + self.length
            if bucket - nxt > HISTORY * self.length:
                # A jump longer than the history: the skipped empty candles would be discarded anyway.
                nxt = bucket - HISTORY * self.length
            c = cur.close
            cur = Candle(self.interval, nxt, c, c, c, c, timestamp=nxt)
        self.current = cur

    def load(self, minutes: Sequence[Candle]) -> None:
        """Start from closed one-minute candles: whole buckets are closed, a partial last one runs on."""
        buckets: list[Candle] = []
        for m in minutes:
            start = m.start - m.start % self.length
            if buckets and buckets[-1].start == start:
                cur = buckets[-1]
                cur.high = max(cur.high, m.high)
                cur.low = min(cur.low, m.low)
                cur.close = m.close
                cur.volume += m.volume
                cur.turnover += m.turnover
                cur.timestamp = m.timestamp
            else:
                buckets.append(replace(m, interval=self.interval, start=start, confirm=True))
        last = buckets[-1]
        if last.start + self.length > minutes[-1].start + 60_000:  # the bucket goes on past the history
            last.confirm = False
            self.closed.extend(buckets[:-1])
            self.current = last
        else:
            self.closed.extend(buckets)
            nxt, c = last.start + self.length, last.close
            self.current = Candle(self.interval, nxt, c, c, c, c, timestamp=nxt)

    def add(self, ts: int, price: Decimal, qty: Decimal) -> None:
        """Add one trade (after :meth:`roll` to ``ts``)."""
        cur = self.current
        if cur is None:
            start = ts - ts % self.length
            cur = self.current = Candle(self.interval, start, price, price, price, price, timestamp=ts)
        cur.high = max(cur.high, price)
        cur.low = min(cur.low, price)
        cur.close = price
        cur.volume += qty
        cur.turnover += price * qty
        cur.timestamp = max(cur.timestamp, ts)


class KlineBook:
    """Candles of every supported interval for one symbol."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.series = {interval: _Series(interval) for interval in INTERVALS}

    def roll(self, now: int) -> list[Candle]:
        """Close what ended before ``now``; returns the newly confirmed candles (copies), oldest first."""
        out: list[Candle] = []
        for series in self.series.values():
            series.roll(now, out)
        return out

    def load_history(self, minutes: Sequence[Candle]) -> None:
        """Start from closed one-minute ``minutes`` (contiguous, oldest first), before the first trade.

        Every interval gets them aggregated; the candle after the history (and a partial bucket of the
        longer intervals) is running, so the live candles follow on from the history's last close.
        """
        if not minutes:
            return
        if any(s.current is not None or s.closed for s in self.series.values()):
            raise ValueError(f"{self.symbol}: a kline history can only be loaded before the first trade")
        for m in minutes:
            if m.interval != "1" or m.start % 60_000:
                raise ValueError(f"{self.symbol}: history candles must be one-minute candles, got {m}")
        for prev, cur in itertools.pairwise(minutes):
            if cur.start != prev.start + 60_000:
                raise ValueError(
                    f"{self.symbol}: history candles must be contiguous, {prev.start} is followed by {cur.start}"
                )
        for series in self.series.values():
            series.load(minutes)

    def add_trades(self, trades: Iterable[PublicTrade]) -> list[Candle]:
        """Fold trades in (time order); returns candles they closed, as :meth:`roll` does."""
        closed: list[Candle] = []
        for trade in trades:
            for series in self.series.values():
                series.roll(trade.time, closed)
                series.add(trade.time, trade.price, trade.qty)
        return closed

    def current(self, interval: str) -> Candle | None:
        """A copy of the running candle of ``interval``, or ``None`` before the first trade."""
        cur = self.series[interval].current
        return replace(cur) if cur is not None else None

    def history(
        self, interval: str, start: int | None = None, end: int | None = None, limit: int = 200
    ) -> list[Candle]:
        """Candles (running one included) with ``start <= candle.start <= end``, newest first."""
        series = self.series[interval]
        rows: list[Candle] = []
        candidates = list(series.closed)
        if series.current is not None:
            candidates.append(series.current)
        for candle in reversed(candidates):
            if end is not None and candle.start > end:
                continue
            if start is not None and candle.start < start:
                break
            rows.append(replace(candle))
            if len(rows) >= limit:
                break
        return rows

    def window(self, since: int) -> list[Candle]:
        """1-minute candles starting at or after ``since`` (running one included), oldest first."""
        series = self.series["1"]
        rows = [c for c in series.closed if c.start >= since]
        if series.current is not None and series.current.start >= since:
            rows.append(series.current)
        return rows
