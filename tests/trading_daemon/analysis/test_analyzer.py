"""The market analyzer on crafted books and candles (values derived by hand), and on a recorded stream
against the batch feature pipeline (the same numbers: the analyzer reuses ml.features)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.features.pipeline import compute_feature_matrix
from schemas.arrow import candles_to_table, raw_rows_to_table
from schemas.features import FEATURE_NAMES
from schemas.market import CANDLE_INTERVAL_MS
from testkit.rows import T0_MS
from testkit.strategies import analysis_of, analyzer_config, book_row, candle_path, ohlc_candles
from tests.fixtures.recorded import recorded_market
from trading_daemon.analysis import MarketAnalysis, MarketAnalyzer
from trading_daemon.analysis.analyzer import DAY_MS

BIDS = [(100.0, 150.0), (99.9, 10.0), (99.8, 120.0), (99.7, 5.0), (99.6, 5.0), (99.5, 10.0)]
ASKS = [(100.1, 20.0), (100.2, 30.0), (100.3, 200.0), (100.4, 5.0), (100.5, 5.0)]


def test_imbalances_spread_and_clusters_of_a_crafted_book() -> None:
    a = analysis_of(BIDS, ASKS, min_cluster_volume=10_000)
    assert a.valid and a.best_bid == 100.0 and a.best_ask == 100.1
    assert a.mid == pytest.approx(100.05) and a.spread == pytest.approx(0.1)
    assert a.spread_bps == pytest.approx(1e4 * 0.1 / 100.05)
    assert a.imbalance_1 == pytest.approx(150 / 170)
    assert a.imbalance_5 == pytest.approx(290 / 550)  # bids 150+10+120+5+5, asks 20+30+200+5+5
    assert a.imbalance_10 == a.imbalance_20 == a.imbalance_total == pytest.approx(300 / 560)
    assert a.imbalance(5) == a.imbalance_5 and a.imbalance(50) == a.imbalance_total
    with pytest.raises(ValueError, match="depths"):
        a.imbalance(3)
    # clusters: levels of at least 10 000 USDT, nearest the touch first
    assert [(c.price, c.size) for c in a.bid_clusters] == [(100.0, 150.0), (99.8, 120.0)]
    assert [(c.price, c.size) for c in a.ask_clusters] == [(100.3, 200.0)]
    assert a.bid_clusters[1].notional == pytest.approx(11_976)
    assert a.bid_clusters[0].distance_bps == pytest.approx(1e4 * 0.05 / 100.05)
    assert a.ask_clusters[0].distance_bps == pytest.approx(1e4 * 0.25 / 100.05)
    assert a.bid_cluster_notional == pytest.approx(15_000 + 11_976)
    assert a.ask_cluster_notional == pytest.approx(20_060)
    assert a.depth_bid_5 == pytest.approx(290) and a.depth_ask_5 == pytest.approx(260)
    # a higher bar leaves only the largest level
    assert [c.price for c in analysis_of(BIDS, ASKS, min_cluster_volume=16_000).bid_clusters] == []


def test_a_one_sided_book_is_not_valid() -> None:
    a = analysis_of([(100.0, 1.0)], [])
    assert not a.valid and a.mid == 100.0 and a.spread == 0.0 and a.best_ask == 0.0


def test_trades_of_the_last_minute_and_of_the_last_day() -> None:
    analyzer = MarketAnalyzer(analyzer_config())
    book = ([(100.0, 1.0)], [(100.1, 1.0)])
    analyzer.submit_rows([book_row(*book, ts=T0_MS, buys=[(100.1, 2.0)] * 5)])
    analyzer.submit_rows([book_row(*book, ts=T0_MS + 1000, sells=[(100.0, 1.0)] * 3)])
    a = analyzer.latest("BTCUSDT")
    assert a is not None
    assert (a.trades_1m, a.volume_1m) == (8, pytest.approx(13.0))
    assert a.turnover_1m == pytest.approx(5 * 2 * 100.1 + 3 * 100.0)
    assert (a.trades_24h, a.trades_window_s) == (8, 1)
    later = T0_MS + DAY_MS + CANDLE_INTERVAL_MS  # the first two rows' minute has left the day
    analyzer.submit_rows([book_row(*book, ts=later, buys=[(100.1, 1.0)] * 2)])
    a = analyzer.latest("BTCUSDT")
    assert a is not None and (a.trades_24h, a.trades_window_s) == (2, 86_400)


def test_screener_columns_from_the_day_of_candles() -> None:
    candles = ohlc_candles(
        [(100, 102, 99, 101, 10), (101, 103, 100, 102, 20), (102, 104, 101, 103, 30)], start_ms=T0_MS
    )
    pin = candles[-1].start_ms
    old = ohlc_candles([(50, 60, 40, 55, 1000)], start_ms=pin - DAY_MS)  # exactly a day before: outside
    analyzer = MarketAnalyzer(analyzer_config())
    analyzer.submit_candles([*old, *candles])
    analyzer.submit_rows(
        [book_row([(103.9, 1.0)], [(104.1, 1.0)], ts=pin + 60_000, pin=pin, buys=[(104.0, 1.0)])]
    )
    a = analyzer.latest("BTCUSDT")
    assert a is not None and a.last_price == 104.0
    assert a.change_24h_pct == pytest.approx(4.0)  # 104 against the oldest open, 100
    assert (a.high_24h, a.low_24h) == (104.0, 99.0)
    assert a.volume_24h == pytest.approx(60)
    assert a.turnover_24h == pytest.approx(10 * 100.5 + 20 * 101.5 + 30 * 102.5)
    assert a.window_24h_s == 180
    returns = [math.log(102 / 101), math.log(103 / 102)]
    assert a.volatility_24h_pct == pytest.approx(float(np.std(returns)) * math.sqrt(1440) * 100)
    assert a.volatility_1m_bps == 0.0  # #64 needs 21 candles


def test_realized_volatility_is_candle_feature_64() -> None:
    # closes alternate 100 and 100.1: every log return is ±ln(1.001), so the root mean square is ln(1.001)
    closes = [100.0 if i % 2 == 0 else 100.1 for i in range(22)]
    candles = candle_path(closes)
    a = analysis_of([(100.0, 1.0)], [(100.1, 1.0)], ts=candles[-1].end_ms, candles=candles)
    assert a.volatility_1m_bps == pytest.approx(math.log(1.001) * 1e4)


def test_bad_rows_are_counted_and_listeners_cannot_stop_the_analyzer() -> None:
    analyzer = MarketAnalyzer(analyzer_config())
    seen: list[MarketAnalysis] = []

    def broken(_: MarketAnalysis) -> None:
        raise RuntimeError("listener bug")

    analyzer.add_listener(broken)
    analyzer.add_listener(seen.append)
    book = ([(100.0, 1.0)], [(100.1, 1.0)])
    analyzer.submit_rows([book_row(*book, ts=T0_MS + 1000)])
    analyzer.submit_rows([book_row(*book, ts=T0_MS)])  # out of time order: refused, counted
    analyzer.submit_rows([book_row(*book, ts=T0_MS + 2000, symbol="ETHUSDT")])  # not analysed: ignored
    assert analyzer.rows_failed == {"BTCUSDT": 1}
    assert [a.ts for a in seen] == [T0_MS + 1000]
    assert analyzer.latest("BTCUSDT") is seen[0]
    assert set(analyzer.all_latest()) == {"BTCUSDT"}
    with pytest.raises(KeyError, match="ETHUSDT"):
        analyzer.latest("ETHUSDT")


def test_recorded_stream_analysis_equals_the_batch_features() -> None:
    rec = recorded_market()  # 30 minutes of BTCUSDT from the paper exchange's synthetic market
    rows, candles = rec.rows["BTCUSDT"], rec.candles["BTCUSDT"]
    analyzer = MarketAnalyzer(analyzer_config())
    analyzer.submit_candles(candles)
    got: list[MarketAnalysis] = []
    analyzer.add_listener(got.append)
    analyzer.submit_rows(rows)
    _, _, features = compute_feature_matrix(raw_rows_to_table(rows), candles_to_table(candles))
    column = {name: features[:, FEATURE_NAMES.index(name)] for name in FEATURE_NAMES}
    for field, feature in (
        ("imbalance_5", "imbalance_5"),
        ("imbalance_10", "imbalance_10"),
        ("imbalance_total", "imbalance_total"),
        ("spread_bps", "bid_ask_spread_rel"),
        ("mid", "mid_price"),
        ("order_flow_imbalance", "order_flow_imbalance"),
        ("buy_sell_ratio", "buy_sell_ratio"),
        ("volatility_1s_bps", "orderbook_volatility"),  # 1 s rows: per row is per second
        ("volatility_1m_bps", "realized_volatility"),
    ):
        values = np.array([getattr(a, field) for a in got])
        expected = column[feature] * (1e4 if feature == "realized_volatility" else 1.0)
        np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9, err_msg=field)
    assert len(got) == len(rows) and all(a.valid for a in got[1:])
    assert got[-1].window_24h_s > 3 * 3600 and got[-1].volume_24h > 0  # history candles reach hours back
