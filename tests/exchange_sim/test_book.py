"""The price-level order book: price-time priority, aggregation, exports and the no-cross invariant."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.book import BUY, SELL, BookError, OrderBook
from exchange_sim.instruments import BTCUSDT


@pytest.fixture
def book() -> OrderBook:
    return OrderBook(BTCUSDT)


def test_best_prices_and_aggregation(book: OrderBook) -> None:
    book.add("b1", "mm", BUY, 639_999, 5)
    book.add("b2", "mm", BUY, 640_000, 3)
    book.add("b3", "u", BUY, 640_000, 2)
    book.add("a1", "mm", SELL, 640_002, 7)
    assert (book.best_bid(), book.best_ask()) == (640_000, 640_002)
    assert book.depth(BUY, 5) == [(640_000, 5), (639_999, 5)]
    assert book.depth(SELL, 5) == [(640_002, 7)]
    assert len(book) == 4 and "b3" in book
    book.check_invariants()


def test_fifo_within_a_level(book: OrderBook) -> None:
    for i in range(3):
        book.add(f"o{i}", "mm", SELL, 640_001, 1 + i)
    level = book.asks.best()
    assert level is not None
    assert [o.order_id for o in level.orders.values()] == ["o0", "o1", "o2"]
    assert book.queue_ahead("o2") == 3
    with pytest.raises(BookError, match="front"):
        book.fill(book.get("o1"), 1)  # type: ignore[arg-type]
    assert book.fill(level.front(), 1) is True
    assert book.asks.best().front().order_id == "o1"  # type: ignore[union-attr]
    book.check_invariants()


def test_partial_fill_keeps_place(book: OrderBook) -> None:
    book.add("o1", "mm", SELL, 640_001, 5)
    book.add("o2", "mm", SELL, 640_001, 5)
    assert book.fill(book.get("o1"), 2) is False  # type: ignore[arg-type]
    assert book.asks.best().front().order_id == "o1"  # type: ignore[union-attr]
    assert book.depth(SELL, 1) == [(640_001, 8)]


def test_add_refuses_to_cross(book: OrderBook) -> None:
    book.add("a", "mm", SELL, 640_001, 1)
    with pytest.raises(BookError, match="would cross"):
        book.add("b", "mm", BUY, 640_001, 1)
    with pytest.raises(BookError, match="already resting"):
        book.add("a", "mm", SELL, 640_005, 1)
    with pytest.raises(BookError, match="positive"):
        book.add("c", "mm", BUY, 639_000, 0)
    assert book.would_cross(BUY, 640_002) and not book.would_cross(BUY, 640_000)
    assert not book.would_cross(SELL, 640_000)


def test_remove_drops_empty_levels(book: OrderBook) -> None:
    book.add("a", "mm", SELL, 640_001, 1)
    book.add("b", "mm", SELL, 640_003, 1)
    book.remove("a")
    assert book.best_ask() == 640_003
    with pytest.raises(BookError, match="not resting"):
        book.remove("a")
    book.check_invariants()


def test_reduce_keeps_priority_and_requeue_loses_it(book: OrderBook) -> None:
    book.add("a", "mm", BUY, 640_000, 5)
    book.add("b", "mm", BUY, 640_000, 5)
    book.reduce("a", 2)
    assert book.bids.best().front().order_id == "a"  # type: ignore[union-attr]
    assert book.depth(BUY, 1) == [(640_000, 7)]
    with pytest.raises(BookError, match="reduce"):
        book.reduce("a", 3)
    book.requeue("a", 640_000, 4)
    assert [o.order_id for o in book.bids.best().orders.values()] == ["b", "a"]  # type: ignore[union-attr]
    book.requeue("b", 639_990, 5)
    assert book.depth(BUY, 2) == [(640_000, 4), (639_990, 5)]
    book.check_invariants()


def test_snapshot_checksum_export_and_changes(book: OrderBook) -> None:
    book.add("a", "mm", SELL, 640_001, 912)
    book.add("b", "u", BUY, 639_999, 1204)
    snap = book.snapshot(50)
    assert snap.bids == ((D("63999.90"), D("1.204")),)
    assert snap.asks == ((D("64000.10"), D("0.912")),)
    assert str(snap.bids[0][0]) == "63999.90" and str(snap.asks[0][1]) == "0.912"
    first = book.checksum()
    assert first == OrderBook.checksum(book)  # deterministic
    assert book.export() == {BUY: [(639_999, [("b", "u", 1204)])], SELL: [(640_001, [("a", "mm", 912)])]}
    assert book.drain_changes() == {BUY: {639_999: 1204}, SELL: {640_001: 912}}
    book.remove("a")
    assert book.checksum() != first
    assert book.drain_changes() == {BUY: {}, SELL: {640_001: 0}}
    assert book.drain_changes() == {BUY: {}, SELL: {}}


def test_seq_is_monotonic(book: OrderBook) -> None:
    seqs = [book.seq]
    book.add("a", "mm", SELL, 640_001, 1)
    seqs.append(book.seq)
    book.reduce("a", 1)
    seqs.append(book.seq)
    book.remove("a")
    seqs.append(book.seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


# -- property: the book against a naive model -------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from([BUY, SELL]), st.integers(0, 12), st.integers(1, 9)),
    st.tuples(st.just("remove"), st.integers(0, 400)),
    st.tuples(st.just("reduce"), st.integers(0, 400), st.integers(1, 9)),
    st.tuples(st.just("requeue"), st.integers(0, 400), st.integers(0, 12), st.integers(1, 9)),
    st.tuples(st.just("take"), st.sampled_from([BUY, SELL]), st.integers(1, 30)),
)


@settings(max_examples=120, deadline=None)
@given(ops=st.lists(_op, max_size=80))
def test_book_matches_a_naive_model(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Random adds/cancels/reduces/requeues/takes: levels, FIFO and totals equal a list-based model."""
    book = OrderBook(BTCUSDT)
    model: list[list] = []  # type: ignore[type-arg]  # [id, side, price, lots, rank] in arrival order
    rank = 0
    next_id = 0
    mid = 640_000
    for op in ops:
        live = [m for m in model if m[3] > 0]
        if op[0] == "add":
            _, side, dist, lots = op
            price = mid - 1 - dist if side == BUY else mid + 1 + dist
            if book.would_cross(side, price):
                with pytest.raises(BookError):
                    book.add(f"o{next_id}", "p", side, price, lots)
                continue
            book.add(f"o{next_id}", "p", side, price, lots)
            rank += 1
            model.append([f"o{next_id}", side, price, lots, rank])
            next_id += 1
        elif op[0] == "remove" and live:
            target = live[op[1] % len(live)]
            book.remove(target[0])
            target[3] = 0
        elif op[0] == "reduce" and live:
            target = live[op[1] % len(live)]
            new = min(op[2], target[3])
            book.reduce(target[0], new)
            target[3] = new
        elif op[0] == "requeue" and live:
            target = live[op[1] % len(live)]
            price = mid - 1 - op[2] if target[1] == BUY else mid + 1 + op[2]
            book.requeue(target[0], price, op[3])
            rank += 1
            target[2], target[3], target[4] = price, op[3], rank
        elif op[0] == "take":
            # A taker sweeping `qty` lots from the opposite side, front to back, best price first.
            _, taker_side, qty = op
            maker_side = SELL if taker_side == BUY else BUY
            queue = sorted(
                (m for m in live if m[1] == maker_side),
                key=lambda m: (m[2] if maker_side == SELL else -m[2], m[4]),
            )
            for m in queue:
                if not qty:
                    break
                level = book.side(maker_side).best()
                assert level is not None and level.front().order_id == m[0]
                n = min(qty, m[3])
                book.fill(level.front(), n)
                m[3] -= n
                qty -= n
        book.check_invariants()
        for side in (BUY, SELL):
            expected: dict[int, list[tuple[int, str]]] = {}
            for m in model:
                if m[3] > 0 and m[1] == side:
                    expected.setdefault(m[2], []).append((m[4], m[0]))
            got = {price: [oid for oid, _, _ in orders] for price, orders in book.export()[side]}
            assert got == {p: [oid for _, oid in sorted(v)] for p, v in expected.items()}
            prices = [p for p, _ in book.depth(side, 1000)]
            assert prices == sorted(prices, reverse=side == BUY)
