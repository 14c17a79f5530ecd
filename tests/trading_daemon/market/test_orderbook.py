from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trading_daemon.market.orderbook import DeltaOutcome, LevelEvents, LocalOrderBook

BIDS = [(100.0, 1.0), (99.9, 2.0), (99.8, 3.0)]
ASKS = [(100.1, 1.5), (100.2, 2.5)]


def _book() -> LocalOrderBook:
    book = LocalOrderBook("BTCUSDT")
    book.load_snapshot(BIDS, ASKS, u=10, ts=1_000)
    return book


def test_snapshot_loads_sorted_best_first() -> None:
    book = LocalOrderBook("BTCUSDT")
    book.load_snapshot(list(reversed(BIDS)), list(reversed(ASKS)), u=10, ts=1_000)
    assert book.top(2) == (BIDS[:2], ASKS[:2])
    assert book.bbo() == (100.0, 1.0, 100.1, 1.5) and book.mid() == 100.05


def test_delta_level_events_and_lifetimes() -> None:
    book = _book()
    ev = LevelEvents()
    assert book.apply_delta(
        [(99.95, 0.5), (99.9, 2.0), (99.7, 0.0)], [(100.1, 0.0)], u=11, ts=2_000, events=ev
    ) is (DeltaOutcome.APPLIED)
    # insert 99.95; 99.9 repeats its size: still an update; 99.7 absent: no event; 100.1 deleted (from snapshot: no lifetime)
    assert (ev.bid_inserts, ev.bid_updates, ev.bid_deletes) == (1, 1, 0)
    assert (ev.ask_inserts, ev.ask_updates, ev.ask_deletes) == (0, 0, 1)
    assert ev.lifetimes_s == []
    book.apply_delta([(99.95, 0.7)], [], u=12, ts=2_500, events=ev)  # update keeps the insertion time
    book.apply_delta([(99.95, 0.0)], [], u=13, ts=4_250, events=ev)
    assert ev.lifetimes_s == [2.25]
    assert book.top(1) == ([(100.0, 1.0)], [(100.2, 2.5)])


def test_duplicates_dropped_gap_invalidates_until_snapshot() -> None:
    book = _book()
    assert book.apply_delta([(100.0, 9.0)], [], u=10, ts=1_100) is DeltaOutcome.DUPLICATE
    assert book.bbo() == (100.0, 1.0, 100.1, 1.5)
    outcome = book.apply_delta([(100.0, 9.0)], [], u=12, ts=1_200)
    assert outcome is DeltaOutcome.GAP and outcome.needs_resync
    assert not book.valid and book.bbo() is None and book.top(5) == ([], [])
    assert book.apply_delta([], [(100.3, 1.0)], u=13, ts=1_300) is DeltaOutcome.NOT_READY
    book.load_snapshot(BIDS, ASKS, u=1, ts=1_400)  # a u=1 snapshot: the service restarted
    assert book.valid and book.apply_delta([(100.0, 5.0)], [], u=2, ts=1_500) is DeltaOutcome.APPLIED


def test_crossed_delta_is_applied_then_invalid() -> None:
    book = _book()
    ev = LevelEvents()
    assert book.apply_delta([(100.2, 1.0)], [], u=11, ts=1_100, events=ev) is DeltaOutcome.CROSSED
    assert ev.bid_inserts == 1 and not book.valid and book.bbo() is None


def test_top_arrays_zero_padded() -> None:
    bp, bs, ap, as_ = _book().top_arrays(5)
    assert bp.tolist() == [100.0, 99.9, 99.8, 0.0, 0.0] and as_.tolist() == [1.5, 2.5, 0.0, 0.0, 0.0]
    assert bp.dtype.name == "float64" and len(ap) == 5 and bs[3] == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 60), st.sampled_from([0.0, 0.001, 0.5, 1.0, 7.25])),
        max_size=300,
    )
)
def test_matches_a_plain_dict_model(ops: list[tuple[bool, int, float]]) -> None:
    book = LocalOrderBook("X")
    book.load_snapshot([], [], u=0, ts=0)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for i, (is_bid, tick, size) in enumerate(ops, start=1):
        # bids below 100, asks above: never crossed
        price = round(100 - tick * 0.1, 1) if is_bid else round(100 + tick * 0.1, 1)
        side = bids if is_bid else asks
        if size == 0.0:
            side.pop(price, None)
        else:
            side[price] = size
        levels = [(price, size)]
        assert (
            book.apply_delta(levels if is_bid else [], [] if is_bid else levels, u=i, ts=i)
            is DeltaOutcome.APPLIED
        )
    got_bids, got_asks = book.top(60)
    assert got_bids == sorted(bids.items(), reverse=True)
    assert got_asks == sorted(asks.items())
