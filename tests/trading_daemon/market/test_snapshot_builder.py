from __future__ import annotations

import math

import pytest

from schemas.snapshot import RawSnapshotRow
from trading_daemon.market.orderbook import DeltaOutcome
from trading_daemon.market.snapshot_builder import RawSnapshotBuilder

T = 1_767_225_600_000  # a multiple of 1000
BIDS = [(100.0, 1.0), (99.9, 2.0)]
ASKS = [(100.1, 1.5), (100.2, 2.5)]


def _builder(**kw: object) -> RawSnapshotBuilder:
    return RawSnapshotBuilder("BTCUSDT", interval_ms=1000, grace_ms=250, **kw)  # type: ignore[arg-type]


def test_first_row_boundary_interval_and_reset() -> None:
    b = _builder()
    assert b.on_book_snapshot(BIDS, ASKS, u=5, ts=T + 300) == []
    assert b.on_other_message(T + 1000) == []  # ts = R belongs to row R
    (row,) = b.on_trade(T + 1001, "Buy", 100.1, 0.5)  # the clock passes R
    assert row.ts == T + 1000 and row.interval_ms == 700 and row.book_reset
    assert row.n_book_msgs == 1 and row.n_bbo_changes == 1  # loading a book after none is a change
    assert (row.n_bid_levels, row.n_ask_levels) == (2, 2)
    assert row.bid_prices[:3] == [100.0, 99.9, 0.0] and row.ask_sizes[:2] == [1.5, 2.5]
    assert row.last_trade_price == 0.0 and row.book_update_id == 5
    (row2,) = b.on_other_message(T + 2500)
    assert row2.ts == T + 2000 and row2.interval_ms == 1000 and not row2.book_reset
    assert row2.n_buy_trades == 1 and row2.buy_volume == 0.5 and row2.last_trade_price == 100.1
    assert row2.buy_notional == pytest.approx(50.05)
    # mid 100.05 when the trade was processed
    assert row2.eff_spread_wsum == pytest.approx(0.5 * 0.05 / 100.05) and row2.eff_spread_volume == 0.5


def test_a_message_exactly_on_a_multiple_opens_the_first_row_there() -> None:
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T)
    (row,) = b.on_other_message(T + 1)
    assert row.ts == T and row.interval_ms == 0


def test_clock_jump_emits_every_boundary() -> None:
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 10)
    rows = b.on_other_message(T + 3500)
    assert [r.ts for r in rows] == [T + 1000, T + 2000, T + 3000]
    assert [r.n_book_msgs for r in rows] == [1, 0, 0] and [r.book_reset for r in rows] == [True, False, False]


def test_grace_timer_and_late_messages() -> None:
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 100)
    assert b.on_timer(T + 1249) == []
    (row,) = b.on_timer(T + 1250)
    assert row.ts == T + 1000 and row.late_messages == 0
    rows, outcome = b.on_book_delta([(100.0, 3.0)], [], u=2, ts=T + 990)  # belongs to the emitted row: late
    assert rows == [] and outcome is DeltaOutcome.APPLIED
    (row2,) = b.on_other_message(T + 2001)
    assert row2.late_messages == 1 and row2.bid_updates == 1 and row2.n_book_msgs == 1
    assert row2.n_bbo_changes == 1  # Qb changed


def test_block_trades_left_out_and_side_checked() -> None:
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 1)
    b.on_trade(T + 2, "Sell", 100.0, 4.0, block_trade=True)
    b.on_trade(T + 3, "Sell", 100.0, 1.0)
    (row,) = b.on_other_message(T + 1001)
    assert (row.n_sell_trades, row.sell_volume, row.last_trade_price) == (1, 1.0, 100.0)
    with pytest.raises(ValueError, match="taker side must be Buy or Sell"):
        b.on_trade(T + 1002, "buy", 1.0, 1.0)


def test_gap_gives_invalid_rows_until_a_fresh_snapshot() -> None:
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 1)
    b.on_other_message(T + 1001)
    _, outcome = b.on_book_delta([(100.0, 2.0)], [], u=3, ts=T + 1100)
    assert outcome is DeltaOutcome.GAP and outcome.needs_resync
    _, dropped = b.on_book_delta([(100.0, 2.0)], [], u=4, ts=T + 1200)
    assert dropped is DeltaOutcome.NOT_READY
    (invalid,) = b.on_other_message(T + 2001)
    assert invalid.book_reset and invalid.n_bid_levels == 0 and invalid.bid_prices == [0.0] * 50
    assert invalid.n_book_msgs == 0  # neither the gapped nor the dropped delta counts
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 2100)
    (fresh,) = b.on_other_message(T + 3001)
    assert fresh.book_reset and fresh.n_bid_levels == 2 and fresh.n_bbo_changes == 1
    (steady,) = b.on_other_message(T + 4001)
    assert not steady.book_reset


def test_level_lifetimes_go_to_the_row_of_the_deleting_message() -> None:
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 1)
    b.on_book_delta([(99.95, 1.0)], [], u=2, ts=T + 500)
    (r0,) = b.on_other_message(T + 1001)
    (r1,), _ = b.on_book_delta(
        [(99.95, 0.0), (99.9, 0.0)], [], u=3, ts=T + 2500
    )  # 99.9 came from the snapshot
    (r2,) = b.on_other_message(T + 3001)
    assert (r0.ttl_count, r1.ttl_count, r2.ttl_count) == (0, 0, 1)
    assert r2.ttl_sum_s == 2.0 and r2.ttl_sumsq_s2 == 4.0 and r2.bid_deletes == 2


def test_candle_pin_and_bad_settings() -> None:
    pin = {"v": -1}
    b = _builder(candle_pin=lambda: pin["v"])
    b.on_other_message(T + 1)
    pin["v"] = T - 60_000
    (row,) = b.on_other_message(T + 1001)
    assert row.last_candle_start_ms == T - 60_000
    with pytest.raises(ValueError, match="SNAPSHOT_INTERVAL_MS"):
        RawSnapshotBuilder("X", interval_ms=0, grace_ms=250)


# ---- a row that cannot be built never stops the rows (hostile input, issue 9) ---------------------------


def _assert_invalid_book_row(row: RawSnapshotRow, ts: int) -> None:
    assert row.ts == ts and row.book_reset
    assert (row.n_bid_levels, row.n_ask_levels) == (0, 0) and row.bid_sizes == [0.0] * 50


@pytest.mark.parametrize(
    "level", [(99.95, -1.0), (99.95, math.inf), (math.nan, 1.0)], ids=["size -1", "size inf", "price NaN"]
)
def test_a_level_the_book_cannot_hold_gives_a_flagged_row_on_time_not_a_wedge(
    level: tuple[float, float],
) -> None:
    """The builder takes floats as given (the feed refuses such a level before it gets here): a row built
    from that book would fail validation or `top` would raise KeyError: nan, and used to wedge the symbol."""
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 1)
    b.on_book_delta([level], [], u=2, ts=T + 500)
    (row,) = b.on_other_message(T + 1001)
    _assert_invalid_book_row(row, T + 1000)
    assert row.n_book_msgs == 2  # the interval's aggregates are kept when they are valid
    assert not b.book.valid and b.pop_degraded_rows() == 1 and b.pop_degraded_rows() == 0
    # The symbol goes on: a trade, rows on time, and a fresh snapshot heals the book.
    assert b.on_trade(T + 1100, "Buy", 100.1, 0.5) == []
    (after,) = b.on_timer(T + 2250)
    _assert_invalid_book_row(after, T + 2000)
    assert after.n_buy_trades == 1 and b.pop_degraded_rows() == 0  # an invalid book is no failure
    b.on_book_snapshot(BIDS, ASKS, u=10, ts=T + 2100)
    (fresh,) = b.on_other_message(T + 3001)
    assert fresh.n_bid_levels == 2 and fresh.book_reset and b.rows_degraded == 1


def test_aggregates_that_are_no_row_are_dropped_from_the_flagged_row() -> None:
    """A notional that overflows to inf, or a level lifetime from message times that went backwards, makes
    the interval's aggregates invalid: the row still comes, on time, without them."""
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 1)
    b.on_trade(T + 2, "Buy", 1e200, 1e200)  # each finite, the notional is not
    (row,) = b.on_other_message(T + 1001)
    _assert_invalid_book_row(row, T + 1000)
    assert row.n_buy_trades == 0 and row.buy_notional == 0.0 and b.pop_degraded_rows() == 1
    b.on_book_snapshot(BIDS, ASKS, u=5, ts=T + 1100)
    b.on_book_delta([(99.95, 1.0)], [], u=6, ts=T + 1900)
    b.on_book_delta([(99.95, 0.0)], [], u=7, ts=T + 1200)  # deleted "before" it was inserted
    (row2,) = b.on_other_message(T + 2001)
    _assert_invalid_book_row(row2, T + 2000)
    assert row2.ttl_count == 0 and b.pop_degraded_rows() == 1
    (row3,) = b.on_other_message(T + 3001)
    assert row3.ts == T + 3000  # and the rows go on


def test_trades_that_are_no_trades_are_refused_before_anything_changes() -> None:
    b = _builder()
    b.on_book_snapshot(BIDS, ASKS, u=1, ts=T + 1)
    for price, size in ((math.nan, 1.0), (100.0, 0.0), (100.0, -1.0), (math.inf, 1.0)):
        with pytest.raises(ValueError, match="price and size must be finite and > 0"):
            b.on_trade(T + 5000, "Buy", price, size)
    assert b.clock == T + 1 and b.last_trade_price == 0.0  # nothing of them was applied, not even the clock
