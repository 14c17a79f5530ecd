"""The order-book channel (#1–50) against docs/features.md §8.1 examples 1–7 and the §8.2 properties."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.features.finite import NON_FINITE_REPLACED
from ml.features.orderbook import OrderBookParams, orderbook_features
from ml.features.rows import RowBuffer, RowColumns, RowWindow, row_m_star
from schemas.arrow import raw_rows_to_table
from schemas.features import FEATURE_NAMES, FEATURE_UNITS, Unit
from schemas.snapshot import RawSnapshotRow, pad_levels
from testkit.rows import snapshot_rows

IDX = {name: i for i, name in enumerate(FEATURE_NAMES[:50])}


def make_row(
    ts: int,
    bids: Sequence[tuple[float, float]] = (),
    asks: Sequence[tuple[float, float]] = (),
    *,
    book_reset: bool = False,
    interval_ms: int = 1000,
    **aggregates: Any,
) -> RawSnapshotRow:
    fields: dict[str, Any] = {
        "n_book_msgs": 0,
        "n_bbo_changes": 0,
        "bid_inserts": 0,
        "bid_updates": 0,
        "bid_deletes": 0,
        "ask_inserts": 0,
        "ask_updates": 0,
        "ask_deletes": 0,
        "ttl_count": 0,
        "ttl_sum_s": 0.0,
        "ttl_sumsq_s2": 0.0,
        "n_buy_trades": 0,
        "n_sell_trades": 0,
        "buy_volume": 0.0,
        "sell_volume": 0.0,
        "buy_notional": 0.0,
        "sell_notional": 0.0,
        "eff_spread_wsum": 0.0,
        "eff_spread_volume": 0.0,
        "last_trade_price": 0.0,
        "late_messages": 0,
        "last_candle_start_ms": -1,
    }
    fields.update(aggregates)
    return RawSnapshotRow(
        symbol="BTCUSDT",
        ts=ts,
        interval_ms=interval_ms,
        book_reset=book_reset,
        n_bid_levels=len(bids),
        n_ask_levels=len(asks),
        bid_prices=pad_levels([p for p, _ in bids]),
        bid_sizes=pad_levels([q for _, q in bids]),
        ask_prices=pad_levels([p for p, _ in asks]),
        ask_sizes=pad_levels([q for _, q in asks]),
        **fields,
    )


def features_at_end(rows: Sequence[RawSnapshotRow], **params: Any) -> dict[str, float]:
    window = RowColumns.from_rows(rows).window(-1)
    values = orderbook_features(window, OrderBookParams(**params))
    return dict(zip(FEATURE_NAMES[:50], values.tolist(), strict=True))


def approx(expected: float) -> Any:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


ROW_A = make_row(
    1000,
    [(100.0, 2), (99.9, 1), (99.8, 150)],
    [(100.1, 1), (100.2, 3), (100.3, 120)],
    book_reset=True,
)
ROW_B = make_row(
    2000,
    [(100.0, 3), (99.9, 1), (99.8, 150)],
    [(100.2, 2), (100.3, 120), (100.4, 4)],
    n_buy_trades=3,
    n_sell_trades=1,
    buy_volume=4.0,
    sell_volume=1.0,
    buy_notional=400.7,
    sell_notional=100.0,
    eff_spread_wsum=2 * 0.05 / 100.05 + 3 * 0.1 / 100.1,
    eff_spread_volume=5.0,
    last_trade_price=100.2,
)


def test_example_1_book_features_of_row_b() -> None:
    f = features_at_end([ROW_A, ROW_B])
    expected = {
        "bid_ask_spread_abs": 0.2,
        "mid_price": 100.1,
        "bid_ask_spread_rel": 19.98001998001998,
        "micro_price": 100.12,
        "price_pressure": 1.998001998001998,
        "vwap_bid_5": 15369.9 / 154,
        "vwap_ask_5": 12638 / 126,
        "vwap_bid_10": 15369.9 / 154,
        "vwap_ask_10": 12638 / 126,
        "depth_bid_5": 154,
        "depth_ask_5": 126,
        "depth_bid_10": 154,
        "depth_ask_10": 126,
        "total_bid_volume": 154,
        "total_ask_volume": 126,
        "imbalance_5": 0.55,
        "imbalance_10": 0.55,
        "imbalance_total": 0.55,
        "book_depth_ratio": 154 / 126,
        "depth_imbalance_ratio": 321 / 701,
        "liquidity_bid_5": 15369.9,
        "liquidity_ask_5": 12638,
        "liquidity_asymmetry": 2731.9 / 28007.9,
    }
    assert {k: f[k] for k in expected} == {k: approx(v) for k, v in expected.items()}
    assert f["vwap_bid_5"] == approx(99.80454545454545) and f["vwap_ask_5"] == approx(100.30158730158730)
    assert f["depth_imbalance_ratio"] == approx(0.4579172610556348)
    assert f["liquidity_asymmetry"] == approx(0.09754033683)


def test_example_2_flow_between_a_and_b() -> None:
    f = features_at_end([ROW_A, ROW_B])
    assert f["order_flow_imbalance"] == approx(2.0)
    assert f["volume_delta_5"] == approx(-1.0)


def test_example_3_clusters_of_row_b() -> None:
    f = features_at_end([ROW_A, ROW_B])
    assert (f["largest_bid_cluster_price"], f["largest_bid_cluster_volume"], f["num_bid_clusters"]) == (
        approx(99.8),
        approx(150),
        1,
    )
    assert (f["largest_ask_cluster_price"], f["largest_ask_cluster_volume"], f["num_ask_clusters"]) == (
        approx(100.3),
        approx(120),
        1,
    )
    assert (f["support_level_1"], f["resistance_level_1"]) == (approx(99.8), approx(100.3))
    assert f["distance_to_support"] == approx(29.97002997002997)
    assert f["distance_to_resistance"] == approx(19.98001998001998)


def test_example_3_adjacent_big_levels_merge_into_one_cluster() -> None:
    bids = [(1000.0, 2), (999.5, 1), (999.0, 40), (998.5, 60), (998.0, 1), (997.5, 2)]
    f = features_at_end([make_row(1000, bids, [(1000.5, 1)], book_reset=True)])
    assert f["num_bid_clusters"] == 1
    assert f["largest_bid_cluster_volume"] == approx(100)
    assert f["largest_bid_cluster_price"] == approx(998.7)
    assert f["support_level_1"] == approx(998.7)
    # one ask level: fewer than 3 levels, no cluster; the defaults of #28, #33
    assert (f["num_ask_clusters"], f["largest_ask_cluster_price"], f["resistance_level_1"]) == (
        0,
        1000.5,
        1000.5,
    )


def test_clusters_split_by_a_small_level_and_ties_go_to_the_touch() -> None:
    # median size 1 → threshold 3; notional ≥ 10 000 at these prices for sizes ≥ 3.
    bids = [(5000.0, 1), (4999.0, 4), (4998.0, 1), (4997.0, 2), (4996.0, 2), (4995.0, 1), (4994.0, 1)]
    f = features_at_end([make_row(1000, bids, [(5001.0, 1)], book_reset=True)])
    assert f["num_bid_clusters"] == 1 and f["largest_bid_cluster_volume"] == 4
    bids = [(5000.0, 1), (4999.0, 4), (4998.0, 1), (4997.0, 4), (4996.0, 1), (4995.0, 1), (4994.0, 1)]
    f = features_at_end([make_row(1000, bids, [(5001.0, 1)], book_reset=True)])
    assert f["num_bid_clusters"] == 2
    assert f["largest_bid_cluster_price"] == 4999.0 and f["support_level_1"] == 4999.0
    # no cluster: support is the lowest visible bid
    bids = [(5000.0, 1), (4999.0, 1), (4998.0, 1)]
    f = features_at_end([make_row(1000, bids, [(5001.0, 1)], book_reset=True)])
    assert (f["num_bid_clusters"], f["largest_bid_cluster_price"], f["support_level_1"]) == (
        0,
        5000.0,
        4998.0,
    )


def test_example_4_trade_features_at_b() -> None:
    f = features_at_end([ROW_A, ROW_B])
    assert f["buy_sell_ratio"] == approx(0.8)
    assert f["smart_money_index"] == approx(1 / 7)
    assert f["effective_spread"] == approx(15.98601299)
    assert f["effective_spread"] == approx(1e4 * 2 * 0.00399650324688 / 5)
    assert f["trade_arrival_rate"] == approx(4.0)


EXAMPLE_5 = [
    (99.99, 100.01, 0, 0),
    (100.01, 100.03, 30_000, 10_000),
    (100.00, 100.02, 5_000, 15_000),
    (100.03, 100.07, 45_000, 5_000),
    (100.03, 100.05, 0, 5_000),
    (100.07, 100.09, 35_000, 5_000),
]


def example_5_rows() -> list[RawSnapshotRow]:
    return [
        make_row(
            1000 * (i + 1),
            [(bid, 1)],
            [(ask, 1)],
            book_reset=i == 0,
            buy_notional=float(buy),
            sell_notional=float(sell),
        )
        for i, (bid, ask, buy, sell) in enumerate(EXAMPLE_5)
    ]


def test_example_5_mid_return_estimators() -> None:
    rows = example_5_rows()
    f = features_at_end(rows, min_pairs=5)
    assert f["kyle_lambda"] == approx(113.1159408)
    assert f["amihud_illiquidity"] == approx(77.39098167)
    assert f["amihud_illiquidity"] == approx(11.99560216 / 0.155)
    assert f["orderbook_volatility"] == approx(2.244079132)
    assert f["spread_volatility"] == approx(0.7448346679)
    assert features_at_end(rows)["kyle_lambda"] == 0.0  # default MIN_PAIRS = 10: only 5 pairs


def test_example_5_returns_are_logs_of_mid_ratios() -> None:
    mids = [(b + a) / 2 for b, a, _, _ in EXAMPLE_5]
    r = [1e4 * math.log(m1 / m0) for m0, m1 in itertools.pairwise(mids)]
    assert r == [approx(x) for x in (1.9998000267, -0.9998500233, 3.9988004132, -0.9995502032, 3.9976014924)]
    assert features_at_end(example_5_rows())["orderbook_volatility"] == approx(float(np.std(r)))


def test_example_6_roll_spread() -> None:
    prices = [100.00, 100.02, 100.00, 100.02, 100.02, 100.00, 100.02]
    rows = [
        make_row(1000 * (i + 1), [(99.0, 1)], [(101.0, 1)], book_reset=i == 0, last_trade_price=p)
        for i, p in enumerate(prices)
    ]
    assert features_at_end(rows, min_pairs=5)["roll_spread"] == approx(3.098076880)
    assert features_at_end(rows)["roll_spread"] == 0.0


def test_example_7_level_lifetimes() -> None:
    book = ([(100.0, 1)], [(100.1, 1)])
    rows = [
        make_row(12_000, *book, book_reset=True),
        make_row(13_000, *book, ttl_count=2, ttl_sum_s=3.0, ttl_sumsq_s2=6.5),
        make_row(14_000, *book, ttl_count=1, ttl_sum_s=4.0, ttl_sumsq_s2=16.0),
    ]
    f = features_at_end(rows)
    assert f["level_ttl_avg"] == approx(7 / 3)
    assert f["level_ttl_std"] == approx(1.433720878)


# ---- segments and windows ------------------------------------------------------------------------


def busy_row(ts: int, rng: random.Random, *, book_reset: bool = False, n: int = 20) -> RawSnapshotRow:
    mid = 1000 + rng.uniform(-5, 5)
    return make_row(
        ts,
        [(round(mid - 0.5 - i, 2), rng.uniform(0.1, 40)) for i in range(n)],
        [(round(mid + 0.5 + i, 2), rng.uniform(0.1, 40)) for i in range(n)],
        book_reset=book_reset,
        n_book_msgs=rng.randint(0, 50),
        n_bbo_changes=rng.randint(0, 20),
        bid_inserts=rng.randint(0, 9),
        bid_updates=rng.randint(0, 9),
        bid_deletes=rng.randint(0, 9),
        ask_inserts=rng.randint(0, 9),
        ask_updates=rng.randint(0, 9),
        ask_deletes=rng.randint(0, 9),
        ttl_count=2,
        ttl_sum_s=rng.uniform(0, 5),
        ttl_sumsq_s2=25.0,
        n_buy_trades=rng.randint(1, 5),
        n_sell_trades=rng.randint(1, 5),
        buy_volume=rng.uniform(0.1, 3),
        sell_volume=rng.uniform(0.1, 3),
        buy_notional=rng.uniform(100, 3000),
        sell_notional=rng.uniform(100, 3000),
        eff_spread_wsum=rng.uniform(0, 1e-3),
        eff_spread_volume=rng.uniform(0.1, 6),
        last_trade_price=mid + rng.choice((-0.5, 0.5)),
    )


def test_windows_never_cross_a_book_reset() -> None:
    rng = random.Random(1)
    rows = [busy_row(1000 * (i + 1), rng, book_reset=i == 0) for i in range(100)]
    rows[70] = msgspec.structs.replace(rows[70], book_reset=True)
    cols = RowColumns.from_rows(rows)
    for i in (70, 75, 99):
        w = cols.window(i)
        assert len(w) == i - 69 and w.starts_segment and w.ts[0] == rows[70].ts
    assert len(cols.window(69)) == 61 and not cols.window(69).starts_segment
    # Rows before the reset do not matter: the same features as a stream that starts at the reset.
    other = [busy_row(1000 * (i + 1), random.Random(99)) for i in range(70)]
    alone = RowColumns.from_rows(rows[70:])
    changed = RowColumns.from_rows(other + rows[70:])
    for i in range(70, 100):
        expected = orderbook_features(alone.window(i - 70))
        assert np.array_equal(orderbook_features(cols.window(i)), expected)
        assert np.array_equal(orderbook_features(changed.window(i)), expected)


def test_rates_leave_out_the_first_row_of_the_segment() -> None:
    rng = random.Random(2)
    rows = [busy_row(1000 * (i + 1), rng, book_reset=i == 0) for i in range(30)]
    rows[0] = msgspec.structs.replace(rows[0], interval_ms=300)
    cols = RowColumns.from_rows(rows)
    first = orderbook_features(cols.window(0))
    for name in (
        "bid_intensity",
        "ask_intensity",
        "update_frequency",
        "quote_intensity",
        "trade_arrival_rate",
    ):
        assert first[IDX[name]] == 0.0
    for t in (1, 5, 9, 10, 11, 29):
        f = orderbook_features(cols.window(t))
        rate_rows = rows[max(t - 9, 1) : t + 1]  # W_SHORT = 10 rows, row 0 (the segment's first) left out
        secs = sum(r.interval_ms / 1000 for r in rate_rows)
        trades = sum(r.n_buy_trades + r.n_sell_trades for r in rate_rows)
        msgs = sum(r.n_book_msgs for r in rate_rows)
        bid_events = sum(r.bid_inserts + r.bid_updates + r.bid_deletes for r in rate_rows)
        assert f[IDX["trade_arrival_rate"]] == approx(trades / secs)
        assert f[IDX["update_frequency"]] == approx(msgs / secs)
        assert f[IDX["bid_intensity"]] == approx(bid_events / secs)
        # other window sums keep the first row: buy_sell_ratio over the last 10 rows, row 0 included
        short = rows[max(t - 9, 0) : t + 1]
        buy = sum(r.buy_volume for r in short)
        assert f[IDX["buy_sell_ratio"]] == approx(buy / sum(r.buy_volume + r.sell_volume for r in short))


def test_zero_seconds_give_a_zero_rate() -> None:
    rows = [make_row(1000, book_reset=True), make_row(2000, interval_ms=0, n_book_msgs=5)]
    assert features_at_end(rows)["update_frequency"] == 0.0


def test_no_look_ahead_in_batch() -> None:
    rows = list(snapshot_rows(150, seed=11))
    rng = random.Random(5)
    perturbed = rows[:90] + [busy_row(r.ts, rng, book_reset=rng.random() < 0.2) for r in rows[90:]]
    a, b = RowColumns.from_rows(rows), RowColumns.from_rows(perturbed)
    for i in range(90):
        assert np.array_equal(orderbook_features(a.window(i)), orderbook_features(b.window(i)))
    assert not np.array_equal(orderbook_features(a.window(120)), orderbook_features(b.window(120)))


def test_table_and_rows_build_the_same_windows() -> None:
    rows = list(snapshot_rows(200, seed=3))
    a, b = RowColumns.from_rows(rows), RowColumns.from_table(raw_rows_to_table(rows))
    for i in range(0, 200, 7):
        wa, wb = a.window(i), b.window(i)
        assert wa.starts_segment == wb.starts_segment
        for field in RowWindow.__slots__:
            assert np.array_equal(getattr(wa, field), getattr(wb, field)), field


def test_live_buffer_gives_the_batch_windows_across_compaction() -> None:
    rows = list(snapshot_rows(700, seed=4))
    for i in (130, 131, 400, 455):
        rows[i] = msgspec.structs.replace(rows[i], book_reset=True)
    batch = RowColumns.from_rows(rows)
    live = RowBuffer(max_rows=61, capacity=128)  # compacts every 67 rows
    for i, row in enumerate(rows):
        w, expected = live.append(row), batch.window(i)
        assert len(w) == len(expected) and w.starts_segment == expected.starts_segment, i
        assert np.array_equal(orderbook_features(w), orderbook_features(expected)), i
    with pytest.raises(ValueError, match="strictly increasing ts"):
        live.append(rows[-1])


def test_window_that_neither_starts_a_segment_nor_is_full_is_refused() -> None:
    cols = RowColumns.from_rows(list(snapshot_rows(80)))
    w = cols.window(70)
    short = RowWindow(
        **{f: getattr(w, f)[-20:] for f in RowWindow.__slots__ if f != "starts_segment"}, starts_segment=False
    )
    with pytest.raises(ValueError, match="start t's segment"):
        orderbook_features(short)


def test_bad_tables_are_refused_with_the_field_named() -> None:
    rows = list(snapshot_rows(5))
    table = raw_rows_to_table(rows)
    with pytest.raises(ValueError, match="strictly increasing ts"):
        RowColumns.from_table(table.take([0, 2, 1, 3, 4]))
    with pytest.raises(ValueError, match="missing columns"):
        RowColumns.from_table(table.drop_columns(["ttl_sum_s"]))
    bad = table.set_column(
        table.schema.get_field_index("buy_volume"), "buy_volume", [[1.0, -1.0, 0.0, 0.0, 0.0]]
    )
    with pytest.raises(ValueError, match=r"row 1 .*buy_volume must be finite and >= 0"):
        RowColumns.from_table(bad)


# ---- realistic rows: finite, no replacement ------------------------------------------------------


def test_no_non_finite_replacement_on_realistic_rows() -> None:
    NON_FINITE_REPLACED.clear()
    rows = list(snapshot_rows(400, seed=21))
    cols = RowColumns.from_rows(rows)
    values = np.array([orderbook_features(cols.window(i)) for i in range(len(rows))])
    assert np.isfinite(values).all()
    assert not any(NON_FINITE_REPLACED[name] for name in FEATURE_NAMES[:50])
    # the realistic stream exercises the estimators, not only their defaults
    for name in (
        "kyle_lambda",
        "amihud_illiquidity",
        "roll_spread",
        "orderbook_volatility",
        "order_flow_imbalance",
    ):
        assert np.count_nonzero(values[:, IDX[name]]) > 100, name


# ---- adversarial rows (hypothesis) ---------------------------------------------------------------

PRICE = st.floats(min_value=1e-8, max_value=1e7, allow_nan=False, allow_infinity=False)
SIZE = st.floats(min_value=1e-8, max_value=1e7, allow_nan=False, allow_infinity=False)
AMOUNT = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))


@st.composite
def adversarial_row(draw: st.DrawFn, ts: int, reset: bool) -> RawSnapshotRow:
    nb = draw(st.sampled_from((0, 0, 1, 2, 3, 50)))
    na = draw(st.sampled_from((0, 0, 1, 2, 3, 50)))
    bids = [(draw(PRICE), draw(SIZE)) for _ in range(nb)]
    asks = [(draw(PRICE), draw(SIZE)) for _ in range(na)]
    counts = {
        name: draw(st.integers(0, 3))
        for name in (
            "n_book_msgs",
            "n_bbo_changes",
            "bid_inserts",
            "ask_deletes",
            "ttl_count",
            "n_buy_trades",
            "n_sell_trades",
        )
    }
    return make_row(
        ts,
        sorted(bids, reverse=True),
        sorted(asks),
        book_reset=reset,
        interval_ms=draw(st.sampled_from((0, 1, 1000))),
        buy_volume=draw(AMOUNT),
        sell_volume=draw(AMOUNT),
        buy_notional=draw(AMOUNT),
        sell_notional=draw(AMOUNT),
        eff_spread_wsum=draw(AMOUNT),
        eff_spread_volume=draw(AMOUNT),
        ttl_sum_s=draw(AMOUNT),
        ttl_sumsq_s2=draw(AMOUNT),
        last_trade_price=draw(st.one_of(st.just(0.0), PRICE)),
        **counts,
    )


@st.composite
def adversarial_stream(draw: st.DrawFn) -> list[RawSnapshotRow]:
    n = draw(st.integers(1, 70))
    every_reset = draw(st.booleans())
    return [
        draw(adversarial_row(1000 * (i + 1), every_reset or i == 0 or draw(st.booleans()))) for i in range(n)
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(adversarial_stream())
def test_adversarial_rows_give_finite_values_and_the_defaults(rows: list[RawSnapshotRow]) -> None:
    cols = RowColumns.from_rows(rows)
    for i, row in enumerate(rows):
        w = cols.window(i)
        f = dict(zip(FEATURE_NAMES[:50], orderbook_features(w).tolist(), strict=True))
        assert all(math.isfinite(v) for v in f.values())
        ms = w.m_star()
        assert f["mid_price"] == ms
        nb, na = row.n_bid_levels, row.n_ask_levels
        if not (nb and na):
            assert f["bid_ask_spread_abs"] == f["bid_ask_spread_rel"] == f["price_pressure"] == 0.0
            assert f["micro_price"] == ms
        if nb == 0:
            assert f["vwap_bid_5"] == f["vwap_bid_10"] == f["largest_bid_cluster_price"] == ms
            assert f["support_level_1"] == ms and f["depth_bid_5"] == f["total_bid_volume"] == 0.0
        if na == 0:
            assert f["vwap_ask_5"] == f["largest_ask_cluster_price"] == f["resistance_level_1"] == ms
        if nb < 3:
            assert f["num_bid_clusters"] == 0 and f["largest_bid_cluster_volume"] == 0
        if nb == 0 or na == 0:
            assert f["book_depth_ratio"] == 1.0
        if nb == 0 and na == 0:
            assert f["imbalance_5"] == f["imbalance_total"] == f["depth_imbalance_ratio"] == 0.5
            assert f["liquidity_asymmetry"] == 0.0
        if ms == 0.0:
            assert f["distance_to_support"] == f["distance_to_resistance"] == 0.0
        if len(w) == 1:  # t starts its segment: no pairs, no rate
            for name in (
                "volume_delta_5",
                "order_flow_imbalance",
                "bid_intensity",
                "update_frequency",
                "trade_arrival_rate",
                "kyle_lambda",
                "roll_spread",
                "orderbook_volatility",
                "amihud_illiquidity",
                "spread_volatility",
            ):
                assert f[name] == 0.0, name
            if row.buy_volume + row.sell_volume == 0:
                assert f["buy_sell_ratio"] == 0.5
            if row.n_buy_trades == 0 or row.n_sell_trades == 0:
                assert f["smart_money_index"] == 0.0
            if row.eff_spread_volume == 0:
                assert f["effective_spread"] == f["bid_ask_spread_rel"]
            if row.ttl_count == 0:
                assert f["level_ttl_avg"] == f["level_ttl_std"] == 0.0


def test_no_book_and_no_trade_gives_every_default() -> None:
    f = features_at_end([make_row(1000, book_reset=True), make_row(2000)])
    defaults = dict.fromkeys(FEATURE_NAMES[:50], 0.0)
    defaults.update(
        book_depth_ratio=1.0,
        imbalance_5=0.5,
        imbalance_10=0.5,
        imbalance_total=0.5,
        buy_sell_ratio=0.5,
        depth_imbalance_ratio=0.5,
    )
    assert f == defaults


# ---- scale and mirror properties -----------------------------------------------------------------

# How each order-book feature scales with prices (×p) and sizes (×q), from its unit (schemas.features).
_BOOK_UNITS = {name: FEATURE_UNITS[name] for name in FEATURE_NAMES[:50]}
PRICE_FEATURES = {n for n, u in _BOOK_UNITS.items() if u in (Unit.PRICE, Unit.PRICE_DIFF)}  # ×p
BASE_FEATURES = {n for n, u in _BOOK_UNITS.items() if u is Unit.BASE}  # ×q
USDT_FEATURES = {n for n, u in _BOOK_UNITS.items() if u is Unit.USDT}  # ×p·q
INVERSE_FEATURES = {n for n, u in _BOOK_UNITS.items() if u is Unit.BPS_PER_MUSDT}  # ÷(p·q)


def jittered_rows(n: int, seed: int) -> list[RawSnapshotRow]:
    """Fixture rows with continuous sizes, so no size sits exactly on a cluster threshold."""
    rng = random.Random(seed)
    out = []
    for row in snapshot_rows(n, seed=seed):
        bid_sizes = [q * rng.uniform(0.5, 1.5) for q in row.bid_sizes]
        ask_sizes = [q * rng.uniform(0.5, 1.5) for q in row.ask_sizes]
        bid_sizes[3 : row.n_bid_levels : 7] = [q * 9 for q in bid_sizes[3 : row.n_bid_levels : 7]]
        out.append(msgspec.structs.replace(row, bid_sizes=bid_sizes, ask_sizes=ask_sizes))
    return out


def scaled(row: RawSnapshotRow, price: float, size: float) -> RawSnapshotRow:
    return msgspec.structs.replace(
        row,
        bid_prices=[p * price for p in row.bid_prices],
        ask_prices=[p * price for p in row.ask_prices],
        bid_sizes=[q * size for q in row.bid_sizes],
        ask_sizes=[q * size for q in row.ask_sizes],
        buy_volume=row.buy_volume * size,
        sell_volume=row.sell_volume * size,
        buy_notional=row.buy_notional * price * size,
        sell_notional=row.sell_notional * price * size,
        eff_spread_wsum=row.eff_spread_wsum * size,
        eff_spread_volume=row.eff_spread_volume * size,
        last_trade_price=row.last_trade_price * price,
    )


def close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


@pytest.mark.parametrize(("price", "size"), [(0.37, 1.0), (1234.5, 1.0), (1.0, 0.013), (1.0, 77.7)])
def test_price_and_size_scale(price: float, size: float) -> None:
    rows = jittered_rows(150, seed=8)
    base = RowColumns.from_rows(rows)
    other = RowColumns.from_rows([scaled(r, price, size) for r in rows])
    params = OrderBookParams(cluster_min_notional=500.0)
    scaled_params = OrderBookParams(cluster_min_notional=500.0 * price * size)
    n_clusters = 0
    for i in range(0, 150, 3):
        a = dict(zip(FEATURE_NAMES[:50], orderbook_features(base.window(i), params).tolist(), strict=True))
        b = dict(
            zip(FEATURE_NAMES[:50], orderbook_features(other.window(i), scaled_params).tolist(), strict=True)
        )
        n_clusters += int(a["num_bid_clusters"])
        for name, x in a.items():
            factor = 1.0
            if name in PRICE_FEATURES:
                factor = price
            elif name in BASE_FEATURES:
                factor = size
            elif name in USDT_FEATURES:
                factor = price * size
            elif name in INVERSE_FEATURES:
                factor = 1 / (price * size)
            tol = 1e-6 if name in INVERSE_FEATURES else 1e-9
            assert close(x * factor, b[name], tol), (i, name, x * factor, b[name])
    assert n_clusters > 50  # the cluster features were exercised, not only their defaults


def test_mirror() -> None:
    rng = random.Random(4)
    mid, tick = 2500.0, 0.5
    prices_b = [mid - tick / 2 - i * tick for i in range(30)]
    prices_a = [mid + tick / 2 + i * tick for i in range(30)]
    for _ in range(20):
        bq = [rng.uniform(0.01, 20) for _ in range(30)]
        aq = [rng.uniform(0.01, 20) for _ in range(30)]
        f = features_at_end(
            [
                make_row(
                    1000,
                    list(zip(prices_b, bq, strict=True)),
                    list(zip(prices_a, aq, strict=True)),
                    book_reset=True,
                )
            ]
        )
        g = features_at_end(
            [
                make_row(
                    1000,
                    list(zip(prices_b, aq, strict=True)),
                    list(zip(prices_a, bq, strict=True)),
                    book_reset=True,
                )
            ]
        )
        for name in ("imbalance_5", "imbalance_10", "imbalance_total", "depth_imbalance_ratio"):
            assert g[name] == approx(1 - f[name])
        assert g["price_pressure"] == approx(-f["price_pressure"])
        assert g["book_depth_ratio"] == approx(1 / f["book_depth_ratio"])
        # only approximately: the mirrored sizes meet prices up to 5 ticks away (2·5·tick/mid = 2e-3)
        assert g["liquidity_asymmetry"] == pytest.approx(-f["liquidity_asymmetry"], abs=2 * 5 * tick / mid)


# ---- against the independent reference implementation --------------------------------------------


def test_agrees_with_the_pandas_reference_implementation() -> None:
    """§1.6: two implementations agree within 1e-9·max(1, |a|, |b|), 1e-6 for kyle_lambda and amihud."""
    from testkit.feature_reference import reference_orderbook_features, rows_frame

    rows = jittered_rows(260, seed=12)
    rows[150] = msgspec.structs.replace(rows[150], book_reset=True)
    rows[190] = make_row(rows[190].ts, book_reset=True, last_trade_price=64_000.0)  # an invalid book
    df = rows_frame(rows)
    cols = RowColumns.from_rows(rows)
    params = OrderBookParams(cluster_min_notional=500.0)
    mapping = {"W_SHORT": 10, "W_LONG": 60, "MIN_PAIRS": 10, "RATIO_CAP": 100, "CLUSTER_SIZE_MULT": 3.0}
    mapping["CLUSTER_MIN_NOTIONAL"] = 500.0
    checked = 0
    for i in [*range(0, 260, 4), 149, 150, 151, 152, 189, 190, 191, 192, 259]:
        ours = orderbook_features(cols.window(i), params)
        ref = reference_orderbook_features(df, i, mapping)
        for name, a, b in zip(FEATURE_NAMES[:50], ours.tolist(), ref.tolist(), strict=True):
            tol = 1e-6 if name in INVERSE_FEATURES else 1e-9
            assert close(a, b, tol), (i, name, a, b)
        checked += 1
    assert checked > 70


def test_m_star_fallback_chain() -> None:
    cases = [
        (make_row(1000, [(99.0, 1)], [(101.0, 2)], book_reset=True, last_trade_price=7.0), 100.0),
        (make_row(1000, [(99.0, 1)], [], book_reset=True, last_trade_price=7.0), 99.0),
        (make_row(1000, [], [(101.0, 2)], book_reset=True, last_trade_price=7.0), 101.0),
        (make_row(1000, [], [], book_reset=True, last_trade_price=7.0), 7.0),
        (make_row(1000, [], [], book_reset=True), 0.0),
    ]
    for row, expected in cases:
        assert row_m_star(row) == expected
        f = features_at_end([row])
        assert f["mid_price"] == expected
        if not (row.n_bid_levels and row.n_ask_levels):
            assert f["micro_price"] == expected  # the default of #4 is m*
