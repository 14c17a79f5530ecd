"""The local order book of one symbol, maintained from Bybit's `orderbook.{depth}` snapshots and deltas.

Each side is a price-keyed map plus a sorted list of its prices, so the best levels and the top N are a
slice, deletes of absent levels are harmless, and a re-sent snapshot replaces everything (docs/exchange_protocol.md §5.3,
§8.1). Written by hand rather than taken from a client library because the raw snapshot row needs the
per-message level events and level lifetimes of docs/features.md §6.2, which no library exposes; `bench/`
measures it against a naive rebuild-the-sorted-view baseline.

Prices are floats parsed from the exchange's decimal strings: the same string always gives the same
float, so they are exact map keys, and rows carry float64 anyway (docs/features.md §6.1).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

Level = tuple[float, float]
Bbo = tuple[float, float, float, float] | None


class DeltaOutcome(Enum):
    APPLIED = "applied"
    CROSSED = "crossed"  # applied, left the book crossed: invalid until the next snapshot
    DUPLICATE = "duplicate"  # u <= last u: dropped
    GAP = "gap"  # u skipped: dropped, book invalid until the next snapshot
    NOT_READY = "not_ready"  # no valid book (never loaded, or awaiting resync): dropped

    @property
    def needs_resync(self) -> bool:
        return self in (DeltaOutcome.GAP, DeltaOutcome.CROSSED, DeltaOutcome.NOT_READY)


@dataclass
class LevelEvents:
    """What one applied delta did to the levels (docs/features.md §6.2)."""

    bid_inserts: int = 0
    bid_updates: int = 0
    bid_deletes: int = 0
    ask_inserts: int = 0
    ask_updates: int = 0
    ask_deletes: int = 0
    lifetimes_s: list[float] = field(default_factory=list)  # of deleted levels whose insertion time is known


class _Side:
    __slots__ = ("inserted_at", "keys", "sign", "sizes")

    def __init__(self, is_bid: bool) -> None:
        self.sign = -1.0 if is_bid else 1.0  # keys ascending = best first on both sides
        self.sizes: dict[float, float] = {}
        self.inserted_at: dict[float, int | None] = {}  # ms of the inserting delta; None = from a snapshot
        self.keys: list[float] = []

    def load(self, levels: Iterable[Level]) -> None:
        self.sizes = {p: s for p, s in levels if s > 0}
        self.inserted_at = dict.fromkeys(self.sizes)
        self.keys = sorted(p * self.sign for p in self.sizes)

    def clear(self) -> None:
        self.sizes.clear()
        self.inserted_at.clear()
        self.keys.clear()

    def best(self) -> Level | None:
        if not self.keys:
            return None
        price = self.keys[0] * self.sign
        return price, self.sizes[price]

    def top(self, n: int) -> list[Level]:
        sizes, sign = self.sizes, self.sign
        return [(k * sign, sizes[k * sign]) for k in self.keys[:n]]


class LocalOrderBook:
    """Snapshot/delta book with `u` sequencing, crossed-book detection and level lifetimes."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._bids = _Side(is_bid=True)
        self._asks = _Side(is_bid=False)
        self.last_u: int | None = None
        self.valid = False
        self.last_ts: int | None = None

    # -- messages ------------------------------------------------------------------------------------

    def load_snapshot(self, bids: Iterable[Level], asks: Iterable[Level], u: int, ts: int) -> None:
        """Replace the book (first snapshot, a re-sent one, or `u` = 1 after a service restart)."""
        self._bids.load(bids)
        self._asks.load(asks)
        self.last_u = u
        self.last_ts = ts
        self.valid = not self.is_crossed()

    def apply_delta(
        self, bids: Sequence[Level], asks: Sequence[Level], u: int, ts: int, events: LevelEvents | None = None
    ) -> DeltaOutcome:
        """Apply one delta if it is the next in sequence; count its level events into `events`."""
        if not self.valid or self.last_u is None:
            return DeltaOutcome.NOT_READY
        if u <= self.last_u:
            return DeltaOutcome.DUPLICATE
        if u != self.last_u + 1:
            self.invalidate()
            return DeltaOutcome.GAP
        ev = events if events is not None else LevelEvents()
        ins, upd, dele = self._apply_side(self._bids, bids, ts, ev)
        ev.bid_inserts += ins
        ev.bid_updates += upd
        ev.bid_deletes += dele
        ins, upd, dele = self._apply_side(self._asks, asks, ts, ev)
        ev.ask_inserts += ins
        ev.ask_updates += upd
        ev.ask_deletes += dele
        self.last_u = u
        self.last_ts = ts
        if self.is_crossed():
            self.valid = False
            return DeltaOutcome.CROSSED
        return DeltaOutcome.APPLIED

    @staticmethod
    def _apply_side(side: _Side, levels: Sequence[Level], ts: int, ev: LevelEvents) -> tuple[int, int, int]:
        inserts = updates = deletes = 0
        sizes, inserted_at, keys, sign = side.sizes, side.inserted_at, side.keys, side.sign
        for price, size in levels:
            if size == 0.0:
                if price in sizes:  # a delete of an absent level is no event
                    del sizes[price]
                    del keys[bisect_left(keys, price * sign)]
                    born = inserted_at.pop(price)
                    if born is not None:
                        ev.lifetimes_s.append((ts - born) / 1000.0)
                    deletes += 1
            elif price in sizes:
                sizes[price] = size  # sizes are absolute; a repeated size still counts as an update
                updates += 1
            else:
                sizes[price] = size
                inserted_at[price] = ts
                insort(keys, price * sign)
                inserts += 1
        return inserts, updates, deletes

    def invalidate(self) -> None:
        """Mark the book unusable until the next snapshot (gap, crossed book, reconnect)."""
        self.valid = False
        self._bids.clear()
        self._asks.clear()

    # -- views ---------------------------------------------------------------------------------------

    def is_crossed(self) -> bool:
        bid, ask = self._bids.best(), self._asks.best()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def bbo(self) -> Bbo:
        """(Pb, Qb, Pa, Qa), or None unless the book is valid and two-sided."""
        if not self.valid:
            return None
        bid, ask = self._bids.best(), self._asks.best()
        if bid is None or ask is None:
            return None
        return bid[0], bid[1], ask[0], ask[1]

    def best_bid(self) -> Level | None:
        return self._bids.best() if self.valid else None

    def best_ask(self) -> Level | None:
        return self._asks.best() if self.valid else None

    def mid(self) -> float | None:
        bbo = self.bbo()
        return None if bbo is None else (bbo[0] + bbo[2]) / 2

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """Best `n` levels per side, best first (empty while invalid)."""
        if not self.valid:
            return [], []
        return self._bids.top(n), self._asks.top(n)

    def top_arrays(self, n: int) -> tuple[npt.NDArray[np.float64], ...]:
        """(bid_prices, bid_sizes, ask_prices, ask_sizes), each float64 of length `n`, zero-padded."""
        out = np.zeros((4, n), dtype=np.float64)
        bids, asks = self.top(n)
        if bids:
            out[0:2, : len(bids)] = np.array(bids, dtype=np.float64).T
        if asks:
            out[2:4, : len(asks)] = np.array(asks, dtype=np.float64).T
        return out[0], out[1], out[2], out[3]

    def depth(self) -> tuple[int, int]:
        return len(self._bids.keys), len(self._asks.keys)
