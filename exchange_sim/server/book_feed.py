"""Order-book publication: ``orderbook.{depth}.{symbol}`` snapshots and deltas (docs/exchange_protocol.md §5.3).

For each symbol and depth the feed keeps the top-``depth`` levels it last published and the topic's
``u``. At each push interval of **exchange time** (10/20/100/200 ms for depths 1/50/200/1000, as Bybit
pushes them) it diffs the live book's top ``depth`` against that state and publishes one delta with
exactly the changed levels (levels that left the window with size ``"0"``), ``u`` + 1 and the engine's
``seq``: changes between two pushes are conflated into one delta; nothing changed, nothing sent. Depth
1 sends snapshots only, re-sent unchanged with the same ``u`` every 3 s. A subscriber's first message
is a snapshot of the published state, so the deltas that follow apply to it exactly. A reset (fault
injection or admin) restarts a topic at ``u`` = 1 with a snapshot, as Bybit does after a service
restart.

The push clock is exchange time (the venue's clock by default; ``clock_ms`` injects another, e.g. the
virtual clock of an offline recording, ``depthcharge/offline_recording/``). The venue's driver steps
every 10 ms of exchange time and calls :meth:`BookFeed.tick` after each step, so at any ``--speed`` a
client sees one push per interval of exchange time; a process that cannot keep the requested speed
slows the exchange clock instead of thinning the pushes (see ``exchange_sim/clock.py``). It reads
integer milliseconds so that a 20 ms cadence is exact, not float-rounded.

A topic nobody subscribes to is not diffed at its interval (``has_subscribers``): it is brought up to
date, with ``u`` + 1 if the book changed, when it is next read (a subscription's snapshot, the REST
order book), so an idle depth costs nothing and its stream stays consistent for the next subscriber.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from exchange_sim import wire
from exchange_sim.book import BUY, SELL
from exchange_sim.server.faults import FaultInjector
from exchange_sim.venue import Venue

PUSH_INTERVAL_MS = {1: 10, 50: 20, 200: 100, 1000: 200}
DEPTHS = tuple(PUSH_INTERVAL_MS)
LEVEL1_REPEAT_MS = 3_000

# Exchange time in ms (the venue's clock, or an offline recording's virtual clock).
PushClock = Callable[[], float]

# (topic, message, is_delta) → delivered to the topic's subscribers by the public WebSocket hub.
Broadcast = Callable[[str, dict[str, Any], bool], None]


class _TopicState:
    __slots__ = ("asks", "bids", "depth", "idle", "last_push", "last_send", "seq", "symbol", "topic", "u")

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.topic = f"orderbook.{depth}.{symbol}"
        self.u = 0
        self.seq = 0
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.last_push = -math.inf  # ms on the feed's push clock; the first tick pushes
        self.last_send = -math.inf
        self.idle = False  # skipped at a push for want of subscribers: refresh before it is read


class BookFeed:
    """Publishes every depth topic of every symbol; ``broadcast`` delivers the messages.

    ``depths`` narrows the published depths (an offline recording needs only 50), ``clock_ms`` is the
    push clock in exchange milliseconds (default: the venue's clock), ``has_subscribers`` tells whether
    a topic has anyone to push to (default: always, every topic is pushed at its interval).
    """

    def __init__(
        self,
        venue: Venue,
        faults: FaultInjector,
        broadcast: Broadcast,
        *,
        depths: Iterable[int] = DEPTHS,
        clock_ms: PushClock | None = None,
        has_subscribers: Callable[[str], bool] | None = None,
    ) -> None:
        self.venue = venue
        self.faults = faults
        self.broadcast = broadcast
        self.depths = tuple(depths)
        unknown = [d for d in self.depths if d not in PUSH_INTERVAL_MS]
        if unknown or not self.depths:
            raise ValueError(f"book depths must be a non-empty subset of {DEPTHS}, got {self.depths}")
        self.clock_ms: PushClock = clock_ms if clock_ms is not None else venue.clock.now
        self.has_subscribers = has_subscribers
        self.topics: dict[str, _TopicState] = {}
        for symbol in venue.instruments:
            for depth in self.depths:
                state = _TopicState(symbol, depth)
                self._load(state)
                state.u = 1
                self.topics[state.topic] = state

    # -- reading -------------------------------------------------------------------------------------

    def snapshot_data(self, symbol: str, depth: int, limit: int | None = None) -> dict[str, Any]:
        """The published state of ``orderbook.{depth}.{symbol}`` as snapshot ``data`` (best first)."""
        state = self.topics[f"orderbook.{depth}.{symbol}"]
        if state.idle:
            self._refresh(state)
        spec = self.venue.instruments[symbol]
        bids = sorted(state.bids.items(), reverse=True)[:limit]
        asks = sorted(state.asks.items())[:limit]
        return {
            "s": symbol,
            "b": [[str(spec.ticks_to_price(p)), wire.qty(spec, spec.lots_to_qty(q))] for p, q in bids],
            "a": [[str(spec.ticks_to_price(p)), wire.qty(spec, spec.lots_to_qty(q))] for p, q in asks],
            "u": state.u,
            "seq": state.seq,
        }

    def snapshot_message(self, topic: str) -> dict[str, Any]:
        """A snapshot message of ``topic`` at its current ``u`` (sent right after a subscribe ack)."""
        state = self.topics[topic]
        return self._message(state, "snapshot", self.snapshot_data(state.symbol, state.depth))

    # -- publishing ----------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Push every topic whose interval of exchange time has elapsed (called after each venue step)."""
        wall = self.clock_ms()
        has_subscribers = self.has_subscribers
        for state in self.topics.values():
            if wall - state.last_push < PUSH_INTERVAL_MS[state.depth]:
                continue
            state.last_push = wall
            if has_subscribers is not None and not has_subscribers(state.topic):
                state.idle = True
                continue
            if state.idle:
                self._refresh(state)
            if self.faults.book_reset():
                self.reset(state.symbol, depths=(state.depth,))
                continue
            if state.depth == 1:
                self._push_level1(state, wall)
            else:
                self._push_delta(state)

    def reset(self, symbol: str, depths: tuple[int, ...] | None = None) -> None:
        """Restart the topics of ``symbol`` at ``u`` = 1 and send each a fresh snapshot."""
        for depth in self.depths if depths is None else depths:
            state = self.topics[f"orderbook.{depth}.{symbol}"]
            self._load(state)
            state.u = 1
            state.idle = False
            state.last_send = self.clock_ms()
            self.broadcast(state.topic, self.snapshot_message(state.topic), False)

    def _refresh(self, state: _TopicState) -> None:
        """Bring an idle topic's published state up to date without sending (nobody was listening)."""
        state.idle = False
        book = self.venue.engine.books[state.symbol]
        if book.seq == state.seq:
            return
        old = (state.bids, state.asks)
        self._load(state)
        if (state.bids, state.asks) != old:
            state.u += 1

    def _push_level1(self, state: _TopicState, wall: float) -> None:
        old = (state.bids, state.asks)
        self._load(state)
        if (state.bids, state.asks) != old:
            state.u += 1
        elif wall - state.last_send < LEVEL1_REPEAT_MS:
            return
        state.last_send = wall
        self.broadcast(state.topic, self.snapshot_message(state.topic), False)

    def _push_delta(self, state: _TopicState) -> None:
        book = self.venue.engine.books[state.symbol]
        if book.seq == state.seq:
            return
        old_bids, old_asks = state.bids, state.asks
        self._load(state)
        spec = self.venue.instruments[state.symbol]

        def diff(old: dict[int, int], new: dict[int, int], descending: bool) -> list[list[str]]:
            changed = {p: q for p, q in new.items() if old.get(p) != q}
            changed.update({p: 0 for p in old if p not in new})
            return [
                [str(spec.ticks_to_price(p)), wire.qty(spec, spec.lots_to_qty(q)) if q else "0"]
                for p, q in sorted(changed.items(), reverse=descending)
            ]

        b = diff(old_bids, state.bids, True)
        a = diff(old_asks, state.asks, False)
        if not b and not a:
            return  # the change was outside this depth's window: Bybit never sends an empty delta
        state.u += 1
        data = {"s": state.symbol, "b": b, "a": a, "u": state.u, "seq": state.seq}
        state.last_send = self.clock_ms()
        self.broadcast(state.topic, self._message(state, "delta", data), True)

    def _load(self, state: _TopicState) -> None:
        book = self.venue.engine.books[state.symbol]
        state.bids = dict(book.depth(BUY, state.depth))
        state.asks = dict(book.depth(SELL, state.depth))
        state.seq = book.seq

    def _message(self, state: _TopicState, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        now = self.venue.clock.now()
        return {"topic": state.topic, "type": kind, "ts": now, "data": data, "cts": now}
