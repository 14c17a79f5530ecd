"""Price-level limit order book of one symbol, with price-time priority.

The book holds every resting order, the synthetic participants' and the accounts' alike; whose order it is
matters to the matching engine and the accounts, not here. Each price level is a FIFO queue of orders
(an insertion-ordered ``dict`` keyed by order id: O(1) append, O(1) removal of any order on cancel, O(1)
access to the front), and each side keeps its occupied prices in a sorted list so the best level and the top N are
cheap.

Prices are integer ticks and quantities integer lots (multiples of ``qtyStep``). That is exact, as
``Decimal`` would be, but integer arithmetic and hashing are several times faster in the inner matching
loop, and a price key can never differ by representation (``Decimal("64000.0")`` vs ``"64000.00"``).
Decimals are produced only by the export functions, at the protocol edge.

The book refuses to become crossed: :meth:`OrderBook.add` raises if the new order would cross the
opposite best, so matching must happen before resting (the engine's job), and the invariant "best bid
below best ask after any operation" holds by construction.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat

from exchange_sim.instruments import Instrument

BUY = "Buy"
SELL = "Sell"
SIDES = (BUY, SELL)
# Owner of aggregated anonymous volume (the synthetic market's segments, docs/exchange_sim_market.md §11). Such a
# ``BookOrder`` is not one participant's order but the merged volume of many between tracked orders.
ANON_OWNER = "~anon"


class BookError(ValueError):
    """An operation that would corrupt the book (crossing add, unknown or duplicate order id, bad size)."""


@dataclass(slots=True, eq=False)
class BookOrder:
    """A resting order as the book sees it: who, which side, where, how much is left, queue rank."""

    order_id: str
    owner: str
    side: str
    price: int  # ticks
    leaves: int  # lots
    priority: int  # arrival rank; lower = earlier. Re-issued when the order loses its queue place.


class PriceLevel:
    """All resting orders at one price on one side, in time priority (front = oldest)."""

    __slots__ = ("orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.total = 0
        # A plain dict keeps insertion order too, at a third of an OrderedDict's size: a book holds
        # thousands of levels, and the synthetic market's batches touch them all over memory.
        self.orders: dict[str, BookOrder] = {}

    def front(self) -> BookOrder:
        """The order first in line at this price."""
        return next(iter(self.orders.values()))

    def __len__(self) -> int:
        return len(self.orders)


class BookSide:
    """One side of the book: price levels keyed by ticks, plus their prices sorted best first."""

    __slots__ = ("_keys", "_levels", "_sign", "side")

    def __init__(self, side: str) -> None:
        self.side = side
        # Bids are stored under the key -price so that, on both sides, ascending key = better price.
        self._sign = -1 if side == BUY else 1
        self._keys: list[int] = []
        self._levels: dict[int, PriceLevel] = {}

    def best(self) -> PriceLevel | None:
        """The best (highest bid / lowest ask) level, or ``None`` if the side is empty."""
        return self._levels[self._keys[0] * self._sign] if self._keys else None

    def best_price(self) -> int | None:
        """Ticks of the best level, or ``None``."""
        return self._keys[0] * self._sign if self._keys else None

    def get(self, price: int) -> PriceLevel | None:
        """The level at ``price`` ticks, if occupied."""
        return self._levels.get(price)

    def levels(self) -> Iterator[PriceLevel]:
        """Occupied levels from best to worst."""
        sign = self._sign
        for key in list(self._keys):
            level = self._levels.get(key * sign)
            if level is not None:
                yield level

    def _level_for_insert(self, price: int) -> PriceLevel:
        level = self._levels.get(price)
        if level is None:
            level = PriceLevel(price)
            self._levels[price] = level
            insort(self._keys, price * self._sign)
        return level

    def _drop_level(self, price: int) -> None:
        del self._levels[price]
        key = price * self._sign
        del self._keys[bisect_left(self._keys, key)]

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Top-N aggregated levels as wire-ready Decimals, best first, with the book's sequence number."""

    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    seq: int


class OrderBook:
    """The limit order book of one instrument (integer ticks and lots, price-time priority)."""

    def __init__(self, instrument: Instrument, *, track_changes: bool = True) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.bids = BookSide(BUY)
        self.asks = BookSide(SELL)
        self._orders: dict[str, BookOrder] = {}
        self._next_priority = 0
        self._anon_seq = 0  # ids of anonymous segments ("~a<n>"), unique within this book
        # Cross sequence: bumped on every mutation, like Bybit's `seq` (monotonic, not contiguous per topic).
        self.seq = 0
        # Levels touched since the last drain (drain_changes), kept only with track_changes: the engine's
        # books do without (the book feed diffs the top levels), a book used for measurement keeps them.
        self.track_changes = track_changes
        self._changed: set[tuple[str, int]] = set()

    # -- queries -----------------------------------------------------------------------------------

    def side(self, side: str) -> BookSide:
        """The :class:`BookSide` for ``Buy`` (bids) or ``Sell`` (asks)."""
        if side == BUY:
            return self.bids
        if side == SELL:
            return self.asks
        raise BookError(f"side must be Buy or Sell, got {side!r}")

    def best_bid(self) -> int | None:
        """Best bid in ticks, or ``None``."""
        return self.bids.best_price()

    def best_ask(self) -> int | None:
        """Best ask in ticks, or ``None``."""
        return self.asks.best_price()

    def get(self, order_id: str) -> BookOrder | None:
        """The resting order ``order_id``, or ``None`` if it is not in the book."""
        return self._orders.get(order_id)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)

    def would_cross(self, side: str, price: int) -> bool:
        """Whether a ``side`` order at ``price`` ticks would trade against the opposite best."""
        if side == BUY:
            ask = self.asks.best_price()
            return ask is not None and price >= ask
        bid = self.bids.best_price()
        return bid is not None and price <= bid

    def queue_ahead(self, order_id: str) -> int:
        """Lots resting ahead of ``order_id`` at its price (what must trade or cancel before it fills)."""
        order = self._require(order_id)
        ahead = 0
        for other in self.side(order.side)._levels[order.price].orders.values():
            if other is order:
                return ahead
            ahead += other.leaves
        raise BookError(f"order {order_id} missing from its level {order.price}")  # pragma: no cover

    def depth(self, side: str, levels: int) -> list[tuple[int, int]]:
        """Up to ``levels`` aggregated ``(ticks, lots)`` pairs of ``side``, best first."""
        out: list[tuple[int, int]] = []
        for level in self.side(side).levels():
            if len(out) >= levels:
                break
            out.append((level.price, level.total))
        return out

    def snapshot(self, depth: int) -> BookSnapshot:
        """Top ``depth`` levels per side as ``(price, size)`` Decimals, as the orderbook topics send."""
        spec = self.instrument

        def convert(side: str) -> tuple[tuple[Decimal, Decimal], ...]:
            return tuple((spec.ticks_to_price(p), spec.lots_to_qty(q)) for p, q in self.depth(side, depth))

        return BookSnapshot(self.symbol, convert(BUY), convert(SELL), self.seq)

    def checksum(self, depth: int = 50) -> int:
        """CRC32 of the top ``depth`` levels in Bybit's string formatting.

        Bybit v5 publishes no book checksum; this is the project's own, so that a test can compare the
        book a client rebuilt from the stream with the true book in one number. The text hashed is
        ``b:<price>:<size>|…|a:<price>:<size>|…`` with the padded wire strings.
        """
        snap = self.snapshot(depth)
        text = "|".join([f"b:{p}:{q}" for p, q in snap.bids] + [f"a:{p}:{q}" for p, q in snap.asks])
        return zlib.crc32(text.encode("ascii"))

    def export(self) -> dict[str, list[tuple[int, list[tuple[str, str, int]]]]]:
        """The true book, order by order: per side, levels best first, each ``(ticks, [(id, owner, lots)])``."""
        return {
            side: [
                (level.price, [(o.order_id, o.owner, o.leaves) for o in level.orders.values()])
                for level in self.side(side).levels()
            ]
            for side in SIDES
        }

    def drain_changes(self) -> dict[str, dict[int, int]]:
        """Levels changed since the last call, per side, mapped to their new total lots (0 = gone).

        Only while ``track_changes`` is on (the default of a book built alone; the engine's books are
        built without it).
        """
        out: dict[str, dict[int, int]] = {BUY: {}, SELL: {}}
        for side, price in self._changed:
            level = self.side(side).get(price)
            out[side][price] = level.total if level is not None else 0
        self._changed.clear()
        return out

    # -- mutations ---------------------------------------------------------------------------------

    def add(self, order_id: str, owner: str, side: str, price: int, lots: int) -> BookOrder:
        """Rest a new order at the back of its level's queue.

        Raises :class:`BookError` if the id is already resting, the size is not positive, or the order
        would cross the opposite side (it must be matched first).
        """
        if order_id in self._orders:
            raise BookError(f"order {order_id} is already resting in the {self.symbol} book")
        if lots <= 0:
            raise BookError(f"order {order_id}: resting size must be positive, got {lots} lots")
        if price <= 0:
            raise BookError(f"order {order_id}: price must be positive, got {price} ticks")
        book_side = self.side(side)
        if self.would_cross(side, price):
            raise BookError(
                f"order {order_id} ({side} at {price} ticks) would cross the {self.symbol} book "
                f"(bid {self.best_bid()}, ask {self.best_ask()}); match it before resting"
            )
        order = BookOrder(order_id, owner, side, price, lots, self._take_priority())
        level = book_side._level_for_insert(price)
        level.orders[order_id] = order
        level.total += lots
        self._orders[order_id] = order
        self._touch(side, price)
        return order

    def remove(self, order_id: str) -> BookOrder:
        """Take ``order_id`` out of the book (cancel) and return it."""
        order = self._require(order_id)
        self._unlink(order)
        self._touch(order.side, order.price)
        return order

    def reduce(self, order_id: str, new_leaves: int) -> BookOrder:
        """Lower the remaining size of a resting order in place; it keeps its queue position."""
        order = self._require(order_id)
        if not 0 < new_leaves <= order.leaves:
            raise BookError(
                f"order {order_id}: reduce to {new_leaves} lots needs 0 < new size <= {order.leaves}"
            )
        level = self.side(order.side)._levels[order.price]
        level.total -= order.leaves - new_leaves
        order.leaves = new_leaves
        self._touch(order.side, order.price)
        return order

    def requeue(self, order_id: str, price: int, lots: int) -> BookOrder:
        """Move a resting order to ``price`` with ``lots`` at the back of that queue (loses priority)."""
        order = self._require(order_id)
        if lots <= 0:
            raise BookError(f"order {order_id}: resting size must be positive, got {lots} lots")
        if self.would_cross(order.side, price):
            raise BookError(f"order {order_id}: requeue at {price} ticks would cross the {self.symbol} book")
        self._unlink(order)
        self._touch(order.side, order.price)
        order.price = price
        order.leaves = lots
        order.priority = self._take_priority()
        level = self.side(order.side)._level_for_insert(price)
        level.orders[order_id] = order
        level.total += lots
        self._orders[order_id] = order
        self._touch(order.side, price)
        return order

    def fill(self, order: BookOrder, lots: int) -> bool:
        """Consume ``lots`` of a resting order (a trade); returns ``True`` if it left the book.

        Only the front order of a level may trade: anything else would break time priority.
        """
        level = self.side(order.side)._levels.get(order.price)
        if level is None or level.front() is not order:
            raise BookError(
                f"order {order.order_id} is not at the front of its level; fills go in FIFO order"
            )
        if not 0 < lots <= order.leaves:
            raise BookError(f"order {order.order_id}: fill of {lots} lots needs 0 < lots <= {order.leaves}")
        self._touch(order.side, order.price)
        if lots == order.leaves:
            self._unlink(order)
            order.leaves = 0
            return True
        order.leaves -= lots
        level.total -= lots
        return False

    def check_invariants(self) -> None:
        """Raise :class:`AssertionError` if any structural invariant is broken (used by tests)."""
        seen = 0
        for book_side in (self.bids, self.asks):
            assert book_side._keys == sorted(book_side._keys), "price keys out of order"
            assert len(book_side._keys) == len(set(book_side._keys)) == len(book_side._levels)
            last_priority: dict[int, int] = {}
            for level in book_side._levels.values():
                assert level.orders, f"empty level {level.price} kept"
                assert level.total == sum(o.leaves for o in level.orders.values()), "level total drift"
                for order in level.orders.values():
                    assert order.leaves > 0 and order.price == level.price and order.side == book_side.side
                    assert self._orders.get(order.order_id) is order, "index out of sync"
                    assert order.priority > last_priority.get(level.price, -1), "FIFO order broken"
                    last_priority[level.price] = order.priority
                    seen += 1
        assert seen == len(self._orders), "index holds orders missing from the levels"
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, f"crossed book: bid {bid} >= ask {ask}"

    # -- anonymous segments (synthetic market fast path, docs/exchange_sim_market.md §11) --------------------------

    def add_anonymous(self, side: str, price: int, lots: int) -> None:
        """Add ``lots`` of anonymous volume at the back of the ``price`` queue.

        The volume merges into the level's last entry if that is an anonymous segment; otherwise (the
        level is new, or a tracked order is last) it starts a new segment behind everything resting.
        Tracked orders therefore never lose queue position to anonymous arrivals.
        """
        if lots <= 0:
            raise BookError(f"anonymous add of {lots} lots at {price} ticks: size must be positive")
        book_side = self.bids if side == BUY else self.asks
        level = book_side._levels.get(price)
        if level is not None:
            last = next(reversed(level.orders.values()))
            if last.owner == ANON_OWNER:
                last.leaves += lots
                level.total += lots
                self._touch(side, price)
                return
        elif price <= 0 or self.would_cross(side, price):
            raise BookError(
                f"anonymous {side} volume at {price} ticks would cross or leave the {self.symbol} book "
                f"(bid {self.best_bid()}, ask {self.best_ask()})"
            )
        self._anon_seq += 1
        order_id = f"~a{self._anon_seq}"
        order = BookOrder(order_id, ANON_OWNER, side, price, lots, self._take_priority())
        level = book_side._level_for_insert(price)
        level.orders[order_id] = order
        level.total += lots
        self._orders[order_id] = order
        self._touch(side, price)

    def cancel_anonymous(self, side: str, price: int, lots: int) -> int:
        """Cancel up to ``lots`` of anonymous volume at ``price``; returns the lots actually removed.

        With several anonymous segments (tracked orders in between) the cancel is split in proportion to
        segment size, a uniform position in the queue (hftbacktest's power-probability model with n = 1);
        the rounding remainder comes off the back-most segments, so the volume ahead of any tracked
        order never grows.
        """
        if lots <= 0:
            return 0
        level = (self.bids if side == BUY else self.asks)._levels.get(price)
        if level is None:
            return 0
        if len(level.orders) == 1:  # the common case: one anonymous segment, no tracked order
            order = level.front()
            if order.owner != ANON_OWNER:
                return 0
            if lots >= order.leaves:
                lots = order.leaves
                self._unlink(order)
                order.leaves = 0
            else:
                order.leaves -= lots
                level.total -= lots
            self._touch(side, price)
            return lots
        segments = [o for o in level.orders.values() if o.owner == ANON_OWNER]
        if not segments:
            return 0
        available = sum(o.leaves for o in segments)
        lots = min(lots, available)
        if len(segments) == 1:
            cuts = [lots]
        else:
            cuts = [lots * o.leaves // available for o in segments]
            rest = lots - sum(cuts)
            for i in range(len(segments) - 1, -1, -1):
                if not rest:
                    break
                extra = min(rest, segments[i].leaves - cuts[i])
                cuts[i] += extra
                rest -= extra
        for order, cut in zip(segments, cuts, strict=True):
            if not cut:
                continue
            if cut == order.leaves:
                self._unlink(order)
                order.leaves = 0
            else:
                order.leaves -= cut
                level.total -= cut
        self._touch(side, price)
        return lots

    def apply_anonymous(self, side: str, prices: list[int], deltas: list[int]) -> None:
        """Change anonymous volume at many ``prices`` of ``side`` at once: ``+n`` adds, ``-n`` cancels.

        The same as :meth:`add_anonymous` for each positive and :meth:`cancel_anonymous` for each
        negative delta, in order; the synthetic market's background batch writes about fifty levels per
        side this way, and a level holding a single anonymous segment (the common case) costs a dict
        lookup and two integer updates without a call per level.
        """
        levels = (self.bids if side == BUY else self.asks)._levels
        touched = 0
        for price, delta in zip(prices, deltas, strict=True):
            level = levels.get(price)
            if level is not None and len(level.orders) == 1:
                (order,) = level.orders.values()
                if order.owner == ANON_OWNER and (delta > 0 or order.leaves + delta > 0):
                    order.leaves += delta
                    level.total += delta
                    touched += 1
                    continue
            if delta > 0:
                self.add_anonymous(side, price, delta)
            elif delta < 0:
                self.cancel_anonymous(side, price, -delta)
        self.seq += touched
        if self.track_changes:
            self._changed.update(zip(repeat(side), prices))

    def anonymous_lots(self, side: str, price: int) -> int:
        """Anonymous volume resting at ``price`` (the level's total minus tracked orders)."""
        level = (self.bids if side == BUY else self.asks)._levels.get(price)
        if level is None:
            return 0
        return sum(o.leaves for o in level.orders.values() if o.owner == ANON_OWNER)

    # -- internals ---------------------------------------------------------------------------------

    def _require(self, order_id: str) -> BookOrder:
        order = self._orders.get(order_id)
        if order is None:
            raise BookError(f"order {order_id} is not resting in the {self.symbol} book")
        return order

    def _take_priority(self) -> int:
        self._next_priority += 1
        return self._next_priority

    def _unlink(self, order: BookOrder) -> None:
        book_side = self.side(order.side)
        level = book_side._levels[order.price]
        del level.orders[order.order_id]
        level.total -= order.leaves
        if not level.orders:
            book_side._drop_level(order.price)
        del self._orders[order.order_id]

    def _touch(self, side: str, price: int) -> None:
        self.seq += 1
        if self.track_changes:
            self._changed.add((side, price))
