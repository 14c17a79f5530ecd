"""The strategies over 30 minutes of the paper exchange's synthetic market (recorded offline): each fires a
sane number of times, the cost filter stops what does not pay, and a consensus costs little time.

The synthetic market's book leads its mid by about a second (docs/exchange_sim_market.md §2), a move of a
few bps: the imbalance strategy finds it, and the measured outcomes say it is smaller than the 7.5 bps a
maker round trip costs, so nothing of it is sent at the default MIN_EXPECTED_EDGE_BPS.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import Counter

import msgspec
import pytest

from schemas.market import Candle
from testkit.strategies import analyzer_config, strategy_config
from tests.fixtures.recorded import recorded_market
from trading_daemon.analysis import MarketAnalyzer
from trading_daemon.strategies import ConsensusResult, StrategyManager

SYMBOL = "BTCUSDT"


def run(manager: StrategyManager) -> tuple[list[ConsensusResult], list[float]]:
    """Rows through the analyzer and the manager, each row with the candles its pin names (as the feed's
    CandleStore gives them: the newest 200, oldest first)."""
    rec = recorded_market()
    by_start = {c.start_ms: c for c in rec.candles[SYMBOL]}
    starts = sorted(by_start)
    analyzer = MarketAnalyzer(analyzer_config())
    results, seconds = [], []
    for row in rec.rows[SYMBOL]:
        pinned = [by_start[s] for s in starts if s <= row.last_candle_start_ms][-200:]
        analyzer.submit_candles(pinned[-1:])
        analyzer.submit_rows([row])
        analysis = analyzer.latest(SYMBOL)
        assert analysis is not None
        t0 = time.perf_counter()
        results.append(manager.evaluate(SYMBOL, analysis, pinned, None))
        seconds.append(time.perf_counter() - t0)
    return results, seconds


def test_imbalance_fires_and_the_cost_filter_stops_what_does_not_pay() -> None:
    manager = StrategyManager(strategy_config(min_strategies=1))
    results, seconds = run(manager)
    new = Counter(v.strategy for r in results for v in r.votes if v.new)
    imbalance = manager.statistics()["imbalance"]
    assert 50 <= new["imbalance"] <= 900  # of 1 800 rows: it reacts to the book, not to every row
    assert imbalance.signals_below_cost == new["imbalance"] and imbalance.signals == 0
    assert imbalance.measured > 0.9 * new["imbalance"]  # followed whether sent or not
    mean = imbalance.measured_mean_bps
    assert mean is not None and abs(mean) < 7.5  # smaller than a maker round trip
    for r in results:  # every vote and consensus obeys the filter
        for v in r.votes:
            assert v.sent == ((v.signal.context or {})["expected_edge_bps"] >= 0)
        if r.signal is not None:
            assert r.expected_edge_bps is not None and r.expected_edge_bps >= 0
    assert statistics.median(seconds) < 0.005 and max(seconds) < 0.05  # the spec: consensus < 50 ms

    config = strategy_config(min_strategies=1)
    free = StrategyManager(
        dataclasses.replace(config, costs=dataclasses.replace(config.costs, min_expected_edge_bps=-1e9))
    )
    results, _ = run(free)
    stats = free.statistics()["imbalance"]
    assert stats.signals == new["imbalance"] and stats.signals_below_cost == 0
    assert sum(1 for r in results if r.signal is not None and r.is_new) > 0


def test_candle_strategies_fire_at_a_sane_rate_over_the_recorded_candles() -> None:
    """Each candle strategy, at every close of the recording's 230 one-minute candles (200 of history and
    the live ones), against the book as it was at the end of the recording."""
    rec = recorded_market()
    candles: list[Candle] = rec.candles[SYMBOL]
    analyzer = MarketAnalyzer(analyzer_config())
    analyzer.submit_candles(candles)
    analyzer.submit_rows(rec.rows[SYMBOL][-61:])
    book = analyzer.latest(SYMBOL)
    assert book is not None
    config = strategy_config(
        enabled=("momentum", "sar_wave", "supertrend", "volume_profile"), min_strategies=1
    )
    manager = StrategyManager(
        dataclasses.replace(config, costs=dataclasses.replace(config.costs, min_expected_edge_bps=-1e9))
    )
    new: Counter[str] = Counter()
    evaluated = 0
    for i in range(60, len(candles)):
        window = candles[max(0, i - 199) : i + 1]
        close = window[-1].close
        analysis = msgspec.structs.replace(
            book,
            ts=window[-1].end_ms,
            mid=close,
            best_bid=close - 0.05,
            best_ask=close + 0.05,
            last_price=close,
        )
        result = manager.evaluate(SYMBOL, analysis, window, None)
        new.update(v.strategy for v in result.votes if v.new)
        evaluated += 1
    assert evaluated == len(candles) - 60
    for name in ("momentum", "sar_wave", "supertrend", "volume_profile"):
        assert 1 <= new[name] <= evaluated // 4, (name, dict(new))


@pytest.mark.parametrize("mode", ["majority", "weighted", "unanimous"])
def test_consensus_modes_agree_with_their_votes(mode: str) -> None:
    config = strategy_config(min_strategies=1, consensus_mode=mode)
    manager = StrategyManager(
        dataclasses.replace(config, costs=dataclasses.replace(config.costs, min_expected_edge_bps=-1e9))
    )
    results, _ = run(manager)
    for r in results:
        if r.signal is None:
            continue
        actions = {v.signal.action for v in r.votes if v.sent}
        assert r.signal.action in actions
        if mode == "unanimous":
            assert actions == {r.signal.action}
