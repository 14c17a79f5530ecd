"""Anonymous segments in the engine's book (docs/exchange_sim_market.md §11) and checks U1, U2 at the engine level."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.accounts import AccountRegistry
from exchange_sim.book import ANON_OWNER, BUY, SELL, BookError
from exchange_sim.events import FILLED, PARTIALLY_FILLED, IdFactory
from exchange_sim.instruments import DEFAULT_INSTRUMENTS
from exchange_sim.matching import MatchingEngine, OrderRequest

SYM = "BTCUSDT"


def limit(side: str, qty: str, price: str) -> OrderRequest:
    return OrderRequest(SYM, side, "Limit", D(qty), D(price))


def entries(engine: MatchingEngine, side: str, ticks: int) -> list[tuple[str, int]]:
    level = engine.books[SYM].side(side).get(ticks)
    return [] if level is None else [(o.owner, o.leaves) for o in level.orders.values()]


def test_anonymous_adds_merge_into_the_last_segment_and_queue_behind_tracked_orders(
    engine: MatchingEngine,
) -> None:
    book = engine.books[SYM]
    book.add_anonymous(BUY, 640_000, 30)
    book.add_anonymous(BUY, 640_000, 20)
    assert entries(engine, BUY, 640_000) == [(ANON_OWNER, 50)]
    engine.submit("alice", limit(BUY, "0.010", "64000.0"))
    book.add_anonymous(BUY, 640_000, 7)
    book.add_anonymous(BUY, 640_000, 3)
    assert entries(engine, BUY, 640_000) == [(ANON_OWNER, 50), ("alice", 10), (ANON_OWNER, 10)]
    book.check_invariants()


def test_anonymous_add_refuses_to_cross(engine: MatchingEngine) -> None:
    book = engine.books[SYM]
    book.add_anonymous(SELL, 640_010, 5)
    with pytest.raises(BookError, match="would cross"):
        book.add_anonymous(BUY, 640_010, 5)
    with pytest.raises(BookError, match="positive"):
        book.add_anonymous(BUY, 640_000, 0)


def test_cancels_split_in_proportion_and_never_grow_the_volume_ahead(engine: MatchingEngine) -> None:
    book = engine.books[SYM]
    book.add_anonymous(BUY, 640_000, 60)
    order = engine.submit("alice", limit(BUY, "0.010", "64000.0")).order
    assert order is not None
    book.add_anonymous(BUY, 640_000, 30)
    assert book.queue_ahead(order.order_id) == 60
    assert book.cancel_anonymous(BUY, 640_000, 45) == 45
    # 45 split 2:1 over 60 and 30 lots: 30 from the front, 15 from the back.
    assert entries(engine, BUY, 640_000) == [(ANON_OWNER, 30), ("alice", 10), (ANON_OWNER, 15)]
    assert book.cancel_anonymous(BUY, 640_000, 1000) == 45  # capped at the anonymous volume
    assert entries(engine, BUY, 640_000) == [("alice", 10)]
    assert book.cancel_anonymous(BUY, 640_000, 5) == 0  # tracked volume is never cancelled anonymously
    book.check_invariants()


def test_anonymous_market_order_respects_price_time_priority(engine: MatchingEngine) -> None:
    """U2: a user bid behind X anonymous lots fills only after those X lots traded."""
    book = engine.books[SYM]
    hook: list[tuple[str, str, int, int]] = []
    engine.anonymous_fill_hook = lambda *args: hook.append(args)
    book.add_anonymous(SELL, 640_001, 100)
    book.add_anonymous(BUY, 640_000, 40)
    order = engine.submit("alice", limit(BUY, "0.020", "64000.0")).order
    assert order is not None
    book.add_anonymous(BUY, 640_000, 25)
    first = engine.market_anonymous(SYM, SELL, 30, 639_000, ts=1)
    assert [t.qty for t in first.trades] == [D("0.030")] and not first.executions
    second = engine.market_anonymous(SYM, SELL, 15, 639_000, ts=2)
    # 10 lots finish the segment ahead, then 5 lots fill alice as maker at the level's price.
    assert [t.qty for t in second.trades] == [D("0.010"), D("0.005")]
    fills = [e for e in second.executions if e.owner == "alice"]
    assert len(fills) == 1 and fills[0].is_maker and fills[0].exec_price == D("64000.0")
    assert [u.order_status for u in second.order_updates if u.owner == "alice"] == [PARTIALLY_FILLED]
    third = engine.market_anonymous(SYM, SELL, 40, 639_000, ts=3)
    assert [t.qty for t in third.trades] == [D("0.015"), D("0.025")]
    assert [u.order_status for u in third.order_updates if u.owner == "alice"] == [FILLED]
    assert hook == [("BTCUSDT", BUY, 640_000, n) for n in (30, 10, 25)]
    assert book.best_bid() is None
    book.check_invariants()


def test_user_taker_consumes_anonymous_volume_and_reports_it(engine: MatchingEngine) -> None:
    book = engine.books[SYM]
    hook: list[tuple[str, str, int, int]] = []
    engine.anonymous_fill_hook = lambda *args: hook.append(args)
    book.add_anonymous(SELL, 640_001, 8)
    book.add_anonymous(SELL, 640_003, 8)
    result = engine.submit("bob", OrderRequest(SYM, BUY, "Market", D("0.012")))
    assert result.order is not None and result.order.order_status == FILLED
    taker = [e for e in result.executions if e.owner == "bob"]
    assert [(e.exec_price, e.exec_qty, e.is_maker) for e in taker] == [
        (D("64000.1"), D("0.008"), False),
        (D("64000.3"), D("0.004"), False),
    ]
    assert hook == [("BTCUSDT", SELL, 640_001, 8), ("BTCUSDT", SELL, 640_003, 4)]
    assert engine.accounts.get("bob").position(SYM).qty == D("0.012")  # type: ignore[union-attr]


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["anon_add", "anon_cancel", "user_limit", "anon_market", "user_market", "user_cancel"]
        ),
        st.sampled_from([BUY, SELL]),
        st.integers(0, 6),  # distance from the touch in ticks
        st.integers(1, 40),  # lots
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_u1_conservation_no_cross_and_consistent_segments(ops: list[tuple[str, str, int, int]]) -> None:
    """U1: fills equal consumed volume, the book never crosses, anonymous totals match the mirror."""
    registry = AccountRegistry(dict(DEFAULT_INSTRUMENTS), lambda: 0)
    registry.open("alice", D("10000000"))
    registry.open("bob", D("10000000"))
    engine = MatchingEngine(registry, ids=IdFactory(seed=1))
    book = engine.books[SYM]
    mirror: dict[tuple[str, int], int] = {}

    def on_fill(symbol: str, side: str, ticks: int, lots: int) -> None:
        mirror[(side, ticks)] -= lots

    engine.anonymous_fill_hook = on_fill
    for side, price in ((BUY, 640_000), (SELL, 640_001)):
        book.add_anonymous(side, price, 50)
        mirror[(side, price)] = 50
    for kind, side, dist, lots in ops:
        bid, ask = book.best_bid() or 639_990, book.best_ask() or 640_010
        price = bid - dist if side == BUY else ask + dist
        before = sum(lvl.total for s in (BUY, SELL) for lvl in book.side(s).levels())
        result = None
        if kind == "anon_add":
            book.add_anonymous(side, price, lots)
            mirror[(side, price)] = mirror.get((side, price), 0) + lots
        elif kind == "anon_cancel":
            mirror[(side, price)] = mirror.get((side, price), 0) - book.cancel_anonymous(side, price, lots)
        elif kind == "user_limit":
            qty = engine.instruments[SYM].lots_to_qty(lots)
            result = engine.submit("alice", OrderRequest(SYM, side, "Limit", qty, D(price) / 10))
        elif kind == "anon_market":
            result = engine.market_anonymous(SYM, side, lots, 650_000 if side == BUY else 630_000, ts=0)
        elif kind == "user_market":
            qty = engine.instruments[SYM].lots_to_qty(lots)
            result = engine.submit("bob", OrderRequest(SYM, side, "Market", qty))
        else:
            for order in engine.open_orders("alice", SYM)[:1]:
                result = engine.cancel("alice", SYM, order_id=order.order_id)
        book.check_invariants()
        after = sum(lvl.total for s in (BUY, SELL) for lvl in book.side(s).levels())
        if kind in ("anon_market", "user_market") and result is not None:
            traded = sum(engine.instruments[SYM].qty_to_lots(t.qty) for t in result.trades)
            assert before - after == traded  # every lot printed left the book, nothing else did
        for (s, ticks), lots_left in mirror.items():
            assert book.anonymous_lots(s, ticks) == lots_left
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask
