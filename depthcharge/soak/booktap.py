"""The exchange's side of the book comparison: what `orderbook.50.<symbol>` held at each update id `u`.

The paper exchange publishes each depth topic as a diff of its top levels (exchange_sim/server/book_feed.py):
after every push the topic's published state is exactly the book a client holds at that `u`. The tap wraps
the feed's `broadcast` (every delta and every reset snapshot) and its `snapshot_message` (the snapshot a
new or resyncing subscriber gets, which may carry a `u` no broadcast had: an idle topic refreshes on read),
and keeps a digest of the published top 50 per (symbol, u) — integer ticks and lots, so nothing is lost
to float rounding. The daemon records the update id of the book under every raw snapshot row
(`book_update_id`); `measures.book_mismatches` turns the row's prices and sizes back into ticks and lots
and compares digests.

A topic reset (`u` back to 1) makes earlier ids ambiguous: the tap then forgets the symbol's older ids,
and rows naming them count as unverified rather than as matches.
"""

from __future__ import annotations

from typing import Any

from exchange_sim.server.app import SimServer

DEPTH = 50
Digest = int
Levels = tuple[tuple[int, int], ...]


def book_digest(bids: Levels, asks: Levels) -> Digest:
    """One number for a book: bids best first, asks best first, as (ticks, lots) pairs."""
    return hash((bids, asks))


class BookTap:
    """Digests of the published `orderbook.50` state by (symbol, u), from a running in-process exchange."""

    def __init__(self, server: SimServer) -> None:
        feed = server.state.public.feed
        if DEPTH not in feed.depths:
            raise ValueError(f"the paper exchange does not publish orderbook.{DEPTH}")
        self._feed = feed
        self.digests: dict[tuple[str, int], Digest] = {}
        self.resets = 0
        self._last_u: dict[str, int] = {}
        broadcast, snapshot_message = feed.broadcast, feed.snapshot_message

        def tapped_broadcast(topic: str, message: dict[str, Any], is_delta: bool) -> None:
            self._note(topic)
            broadcast(topic, message, is_delta)

        def tapped_snapshot(topic: str) -> dict[str, Any]:
            message = snapshot_message(topic)  # refreshes an idle topic first, possibly to a new u
            self._note(topic)
            return message

        feed.broadcast = tapped_broadcast
        # An instance attribute over the method: every caller (the hub's subscribe, `reset`) goes through it.
        setattr(feed, "snapshot_message", tapped_snapshot)  # noqa: B010
        self._broadcast = broadcast

    def close(self) -> None:
        """Stop tapping (the digests stay)."""
        self._feed.broadcast = self._broadcast
        vars(self._feed).pop("snapshot_message", None)

    def _note(self, topic: str) -> None:
        state = self._feed.topics.get(topic)
        if state is None or state.depth != DEPTH:
            return
        symbol, u = state.symbol, state.u
        if u < self._last_u.get(symbol, 0):  # the topic restarted at u = 1: older ids are ambiguous now
            self.resets += 1
            for key in [k for k in self.digests if k[0] == symbol]:
                del self.digests[key]
        self._last_u[symbol] = u
        bids = tuple(sorted(state.bids.items(), reverse=True))
        asks = tuple(sorted(state.asks.items()))
        self.digests[(symbol, u)] = book_digest(bids, asks)


def instrument_steps(server: SimServer) -> dict[str, tuple[float, float]]:
    """Each symbol's (tick size, quantity step), to turn a row's floats back into ticks and lots."""
    return {
        symbol: (float(spec.tick_size), float(spec.qty_step))
        for symbol, spec in server.venue.instruments.items()
    }
