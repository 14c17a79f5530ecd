"""Large single orders followed through the order-book stream: what spoofing and layering are made of.

The public book is anonymous, but a large order still shows: one message raises one price level by
far more than a typical level holds, and later one message takes it away again. `LargeOrderTracker`
keeps a copy of one symbol's top 50 from every applied book message (`BookSink` of the feed, 20 ms
pushes on Bybit) and the trades, and follows each such jump:

* **placed**: a level strictly behind the touch (before and after the message: the touch queue's own
  growth is honest liquidity) rises in one message by `size` >= `min_notional_usdt` / price and >=
  `min_size_multiple` x the typical level (the median size of levels 2-10 of that side: the larger of
  its 30 s average and its size now less the large orders already followed there), and the level
  is within `max_level` levels of the touch (rank 1: right behind it);
* **gone**: a later message leaves less than `base + size / 2` at that price (`base` being what the
  level held before the jump), or takes at least 80 % of `size` from the level at once (others may
  have joined the level since), or deletes it; the touch moving through the price ends it too;
* **traded**: trades at its price whose taker hit its side are counted, also during `settle_ms` after it
  is gone (trades and book pushes are separate streams, either may come first);
* **lost**: a level that leaves the 50-level window, or an order whose level a snapshot (after a
  resync) no longer shows, is neither cancelled nor filled as far as anyone can tell: dropped.

A finished order carries its lifetime, the share of it that left without trading (`cancelled_share`),
its multiple of the typical level and where it sat. Deciding what a pattern of such orders means is
the detectors' business (`spoofing.py`, `layering.py`).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.enums import Side

Level = tuple[float, float]

WINDOW_LEVELS = 50  # the book topic's depth: a level deleted at the far end may just have left the window
WINDOW_EDGE = 45  # a side holding at least this many levels is treated as full for that rule
HIDDEN_TTL_MS = 60_000  # an order out of the window this long is given up (lost)
CANCEL_DROP = 0.8  # a drop of this share of an order's size in one push is the order leaving
TYPICAL_TAU_MS = 30_000.0  # time constant of the typical level's running average


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerParams:
    """What makes a jump a large order (the detectors derive these from `DetectionConfig`)."""

    min_notional_usdt: float
    min_size_multiple: float
    max_level: int
    settle_ms: int


@dataclass(slots=True, kw_only=True, eq=False)  # identity: two orders of equal fields are still two
class LargeOrder:
    """One large order as the book showed it. `side` is the book side (Buy: a bid)."""

    order_id: int
    symbol: str
    side: Side
    price: float
    size: float  # the jump (base units)
    base: float  # the level's size just before the jump
    typical: float  # median size of levels 2-10 of the side at placement
    rank: int  # levels strictly better on its side at placement (0 would be the touch)
    distance_ticks: float  # price steps from its side's touch at placement (inf while the step is unknown)
    placed_ms: int
    ended_ms: int | None = None
    traded: float = 0.0  # volume traded at its price against its side while it rested (and settling)
    abrupt: bool = False  # gone in one message (a cancel), rather than worn down
    touch_through: bool = False  # the opposite touch reached its price (it was traded or pulled in time)
    lost: bool = False
    hidden_ms: int | None = None  # when it left the 50-level window, while out of view

    @property
    def notional(self) -> float:
        return self.size * self.price

    @property
    def multiple(self) -> float:
        return self.size / self.typical if self.typical > 0 else math.inf

    @property
    def lifetime_ms(self) -> int:
        return (self.ended_ms if self.ended_ms is not None else self.placed_ms) - self.placed_ms

    @property
    def filled(self) -> float:
        return min(self.size, self.traded)

    @property
    def cancelled_share(self) -> float:
        """Share of the order that left the book without trading (1: cancelled untouched)."""
        return 1.0 - self.filled / self.size

    def evidence(self) -> dict[str, float | int | bool]:
        return {
            "price": self.price,
            "size": round(self.size, 10),
            "notional_usdt": round(self.notional, 2),
            "multiple": round(self.multiple, 3) if math.isfinite(self.multiple) else -1.0,
            "rank": self.rank,
            "distance_ticks": self.distance_ticks if math.isfinite(self.distance_ticks) else -1.0,
            "placed_ms": self.placed_ms,
            "ended_ms": self.ended_ms if self.ended_ms is not None else -1,
            "lifetime_ms": self.lifetime_ms,
            "cancelled_share": round(self.cancelled_share, 4),
            "abrupt": self.abrupt,
        }


@dataclass(slots=True)
class _Side:
    """One side of the book copy: price -> size, and the prices sorted best first."""

    is_bid: bool
    levels: dict[float, float] = field(default_factory=dict)
    _keys: list[float] = field(default_factory=list)  # ascending key: -price for bids, price for asks

    def _key(self, price: float) -> float:
        return -price if self.is_bid else price

    tick: float = math.inf  # the smallest gap seen between two levels: the instrument's tick size, in effect
    # The median size of levels 2-10 averaged over about TYPICAL_TAU_MS: a book thinned for a moment by a
    # sweep does not make ordinary orders look large.
    typical: float = 0.0
    _typical_ts: int | None = None

    def load(self, levels: Sequence[Level]) -> None:
        self.levels = {p: q for p, q in levels if q > 0}
        self._keys = sorted(self._key(p) for p in self.levels)
        for a, b in zip(self._keys, self._keys[1:], strict=False):
            self._saw_gap(b - a)

    def _saw_gap(self, gap: float) -> None:
        gap = float(f"{gap:.9g}")  # 64000.1 - 64000.0 is 0.1 plus float noise
        if 0 < gap < self.tick:
            self.tick = gap

    def set(self, price: float, size: float) -> float:
        """Set a level (0 deletes it); returns its previous size."""
        old = self.levels.get(price, 0.0)
        if size > 0:
            if old == 0.0:
                key = self._key(price)
                index = bisect.bisect_left(self._keys, key)
                if index > 0:
                    self._saw_gap(key - self._keys[index - 1])
                if index < len(self._keys):
                    self._saw_gap(self._keys[index] - key)
                self._keys.insert(index, key)
            self.levels[price] = size
        elif old > 0:
            del self.levels[price]
            index = bisect.bisect_left(self._keys, self._key(price))
            del self._keys[index]
        return old

    def best(self) -> float | None:
        return self.price_at(0)

    def price_at(self, rank: int) -> float | None:
        if rank >= len(self._keys):
            return None
        key = self._keys[rank]
        return -key if self.is_bid else key

    def worst(self) -> float | None:
        return self.price_at(len(self._keys) - 1) if self._keys else None

    def rank(self, price: float) -> int:
        """How many held levels are strictly better than `price`."""
        return bisect.bisect_left(self._keys, self._key(price))

    def behind(self, price: float, reference: float | None) -> bool:
        """Whether `price` lies strictly behind `reference` (a touch) on this side."""
        if reference is None:
            return False
        return price < reference if self.is_bid else price > reference

    def typical_now(self, tracked: dict[float, float] | None = None) -> float:
        """Median size of the levels ranked 2-10 at this moment, less the large orders `tracked` there
        (price -> size)."""
        sizes = []
        for key in self._keys[1:10]:
            price = -key if self.is_bid else key
            sizes.append(self.levels[price] - (tracked.get(price, 0.0) if tracked else 0.0))
        return statistics.median(sizes) if sizes else 0.0

    def observe_typical(self, ts: int, tracked: dict[float, float] | None = None) -> None:
        """Fold the current typical level (less the large orders `tracked`) into its running average (time
        constant TYPICAL_TAU_MS)."""
        now = self.typical_now(tracked)
        if self._typical_ts is None or now <= 0:
            self.typical, self._typical_ts = (now, ts) if now > 0 else (self.typical, self._typical_ts)
            return
        weight = 1.0 - math.exp(-max(ts - self._typical_ts, 0) / TYPICAL_TAU_MS)
        self.typical += weight * (now - self.typical)
        self._typical_ts = ts

    def __len__(self) -> int:
        return len(self._keys)


class LargeOrderTracker:
    """Follows the large orders of one symbol (see the module docstring)."""

    def __init__(self, symbol: str, params: TrackerParams) -> None:
        self.symbol = symbol
        self.params = params
        self.bids = _Side(is_bid=True)
        self.asks = _Side(is_bid=False)
        self.live: dict[tuple[bool, float], LargeOrder] = {}  # (is_bid, price) -> the order resting there
        self.hidden: dict[tuple[bool, float], LargeOrder] = {}  # out of the 50-level window for now
        self.settling: list[LargeOrder] = []
        self.placed: list[LargeOrder] = []  # placed since the last `pop_placed`
        self.loaded = False
        self.last_ts = 0
        self._next_id = 0

    @property
    def tick(self) -> float:
        """The price step of the symbol as the book shows it (inf until two adjacent levels were seen)."""
        return min(self.bids.tick, self.asks.tick)

    # -- input ---------------------------------------------------------------------------------------

    def on_book(self, ts: int, bids: Sequence[Level], asks: Sequence[Level], *, snapshot: bool) -> None:
        """One applied book message (the feed's `BookSink` call)."""
        self.last_ts = max(self.last_ts, ts)
        if snapshot or not self.loaded:
            self._load(ts, bids, asks)
            return
        touch_bid, touch_ask = self.bids.best(), self.asks.best()
        changes: list[tuple[_Side, float, float, float]] = []
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                old = side.set(price, size)
                changes.append((side, price, old, size))
        for side, price, old, size in changes:
            if size > old:
                if old == 0.0 and self.hidden and self._reappear(side, price, size):
                    continue
                self._maybe_place(ts, side, price, old, size, touch_bid, touch_ask)
            elif size < old:
                self._maybe_end(ts, side, price, old, size)
        self._touch_through(ts)
        self.bids.observe_typical(ts, self._tracked(True))
        self.asks.observe_typical(ts, self._tracked(False))
        if self.hidden:
            self._expire_hidden(ts)

    def on_trade(self, ts: int, price: float, size: float, taker: Side) -> None:
        """A public trade: a Sell taker hits bids, a Buy taker lifts asks."""
        self.last_ts = max(self.last_ts, ts)
        key = (taker is Side.SELL, price)
        order = self.live.get(key)
        if order is not None:
            order.traded += size
            return
        for settling in self.settling:  # a trade reported after the push that showed the level gone
            if (
                (settling.side is Side.BUY) == key[0]
                and settling.price == price
                and ts <= (settling.ended_ms or 0)
            ):
                settling.traded += size
                return

    # -- output --------------------------------------------------------------------------------------

    def pop_placed(self) -> list[LargeOrder]:
        placed, self.placed = self.placed, []
        return placed

    def pop_finished(self, now_ms: int) -> list[LargeOrder]:
        """Orders gone at least `settle_ms` before `now_ms` (their late trades counted), oldest first."""
        if not self.settling:
            return []
        cutoff = now_ms - self.params.settle_ms
        done = [o for o in self.settling if o.ended_ms is not None and o.ended_ms <= cutoff]
        if done:
            self.settling = [
                o for o in self.settling if not (o.ended_ms is not None and o.ended_ms <= cutoff)
            ]
        return done

    def resting(self) -> list[LargeOrder]:
        return list(self.live.values())

    # -- internals -----------------------------------------------------------------------------------

    def _load(self, ts: int, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        self.bids.load(bids)
        self.asks.load(asks)
        self.bids.observe_typical(ts)
        self.asks.observe_typical(ts)
        self.loaded = True
        for key, order in list(self.live.items()):
            side = self.bids if order.side is Side.BUY else self.asks
            if side.levels.get(order.price, 0.0) < order.base + order.size / 2:
                del self.live[key]  # gone while the book was out of sync: cause unknown
                order.lost = True

    def _maybe_place(
        self,
        ts: int,
        side: _Side,
        price: float,
        old: float,
        size: float,
        touch_bid: float | None,
        touch_ask: float | None,
    ) -> None:
        jump = size - old
        params = self.params
        if jump * price < params.min_notional_usdt or (side.is_bid, price) in self.live:
            return
        touch_before = touch_bid if side.is_bid else touch_ask
        if not (side.behind(price, touch_before) and side.behind(price, side.best())):
            return
        rank = side.rank(price)
        if rank > params.max_level:
            return
        if old == 0.0 and len(side) >= WINDOW_EDGE and side.worst() == price:
            return  # entered the 50-level window from beyond: an old level, not a new order
        # The larger of the book's usual typical level and this moment's, less the large orders followed
        # there (a layer being built is no yardstick for its own next order).
        typical = max(side.typical, side.typical_now(self._tracked(side.is_bid)))
        if typical > 0 and jump < params.min_size_multiple * typical:
            return
        self._next_id += 1
        order = LargeOrder(
            order_id=self._next_id,
            symbol=self.symbol,
            side=Side.BUY if side.is_bid else Side.SELL,
            price=price,
            size=jump,
            base=old,
            typical=typical,
            rank=rank,
            distance_ticks=self._distance(side, price),
            placed_ms=ts,
        )
        self.live[(side.is_bid, price)] = order
        self.placed.append(order)

    def _tracked(self, is_bid: bool) -> dict[float, float]:
        """price -> size of the large orders followed on one side."""
        return {p: o.size for (bid, p), o in self.live.items() if bid == is_bid}

    def _distance(self, side: _Side, price: float) -> float:
        best, tick = side.best(), self.tick
        if best is None or not math.isfinite(tick):
            return math.inf
        return round(abs(best - price) / tick, 3)

    def _maybe_end(self, ts: int, side: _Side, price: float, old: float, size: float) -> None:
        order = self.live.get((side.is_bid, price))
        if order is None:
            return
        # Gone when the level cannot hold it any more, or when one push took (almost) its size at once
        # even though others' volume has since joined the level.
        if size >= order.base + order.size / 2 and old - size < CANCEL_DROP * order.size:
            return
        del self.live[(side.is_bid, price)]
        if size == 0.0 and len(side) >= WINDOW_EDGE and side.rank(price) >= len(side):
            # Deleted beyond the worst held level: it left the window (the price ran away from it). It
            # may come back into view still resting; until then nobody can tell what became of it.
            order.hidden_ms = ts
            self.hidden[(side.is_bid, price)] = order
            return
        order.ended_ms = ts
        order.abrupt = old - size >= order.size / 2  # a cancel; liquidity worn down leaves in small steps
        self.settling.append(order)

    def _reappear(self, side: _Side, price: float, size: float) -> bool:
        """A level re-entering the window where an order was hidden: the same order, if it still fits."""
        order = self.hidden.pop((side.is_bid, price), None)
        if order is None:
            return False
        if size < order.base + order.size / 2:
            order.lost = True
            return False
        order.hidden_ms = None
        self.live[(side.is_bid, price)] = order
        return True

    def _expire_hidden(self, ts: int) -> None:
        for key, order in list(self.hidden.items()):
            if order.hidden_ms is not None and ts - order.hidden_ms > HIDDEN_TTL_MS:
                del self.hidden[key]
                order.lost = True

    def _touch_through(self, ts: int) -> None:
        """End orders whose price the opposite touch reached (the level cannot rest there any more)."""
        if not self.live:
            return
        best_bid, best_ask = self.bids.best(), self.asks.best()
        for key, order in list(self.live.items()):
            is_bid, price = key
            reached = (
                (best_ask is not None and best_ask <= price)
                if is_bid
                else (best_bid is not None and best_bid >= price)
            )
            if reached:
                del self.live[key]
                order.ended_ms = ts
                order.touch_through = True
                self.settling.append(order)
