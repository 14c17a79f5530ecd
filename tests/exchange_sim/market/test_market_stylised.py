"""Short-run stylised facts and predictability (S1, S2, S3, S6, P1, P3) and the scheduled shift (R2).

Bands are loose on purpose: one hour of one symbol is a small sample (the bench reports longer runs).
"""

from __future__ import annotations

import numpy as np
import pytest

from exchange_sim.market import ManipulationParams, MarketConfig, ShiftParams, SyntheticMarket
from exchange_sim.market.background import ASK, BID
from testkit import market_checks as C

from .conftest import T0, Clock, make_engine  # type: ignore[import-not-found]


@pytest.fixture(scope="module")
def btc_hour() -> tuple[SyntheticMarket, C.Samples]:
    engine = make_engine(Clock())
    config = MarketConfig(manipulation=ManipulationParams(enabled=False))
    market = SyntheticMarket(engine, ["BTCUSDT"], seed=42, config=config)
    samples = C.sample(market, T0, 3600)
    return market, samples["BTCUSDT"]


@pytest.mark.slow
def test_s1_one_tick_spread_most_of_the_time(btc_hour: tuple[SyntheticMarket, C.Samples]) -> None:
    market, samples = btc_hour
    mk = market.market("BTCUSDT")
    assert mk.time_one_tick / mk.time_total >= 0.95
    assert np.mean(samples.array("spread") == 1) >= 0.95


@pytest.mark.slow
def test_s2_s3_s6_returns_and_depth(btc_hour: tuple[SyntheticMarket, C.Samples]) -> None:
    market, samples = btc_hour
    mid = samples.array("mid")
    assert 0.35 <= C.share_unchanged(mid) <= 0.65  # S3 (real BTC 0.47)
    assert C.excess_kurtosis(C.log_returns(mid)) > 3  # S2, 1 s returns
    mk, book = market.market("BTCUSDT"), market.engine.books["BTCUSDT"]
    assert mk.depth.occupied(BID, book.best_bid()) >= 900  # type: ignore[arg-type]
    assert mk.depth.occupied(ASK, book.best_ask()) >= 900  # type: ignore[arg-type]


@pytest.mark.slow
def test_p1_touch_imbalance_leads_the_mid_modestly(btc_hour: tuple[SyntheticMarket, C.Samples]) -> None:
    _, samples = btc_hour
    mid, imbalance = samples.array("mid"), samples.array("imbalance")
    p1 = C.predictability(mid, imbalance, 10)
    assert 0.53 <= p1 <= 0.70  # design band 0.55-0.65, widened for one hour of data
    past = np.concatenate([np.zeros(10), mid[10:] - mid[:-10]])
    assert 0.42 <= C.predictability(mid, past, 10) <= 0.58  # P3: no momentum free lunch


@pytest.mark.slow
def test_r2_scheduled_shift_moves_depth_and_trade_rate() -> None:
    engine = make_engine(Clock())
    shift_at = T0 + 600_000
    config = MarketConfig(
        fixed_regime="calm", shift=ShiftParams(at_ms=shift_at), manipulation=ManipulationParams(enabled=False)
    )
    market = SyntheticMarket(engine, ["BTCUSDT"], seed=8, config=config)
    s = C.sample(market, T0, 1200)["BTCUSDT"]
    depth, trades = s.array("depth_touch"), s.array("trades")
    before, after = slice(0, 600), slice(630, 1200)  # skip the 30 s in which queues relax to new targets
    assert C.ks_statistic(depth[before], depth[after]) > 0.3
    assert np.mean(depth[after]) < 0.75 * np.mean(depth[before])
    assert C.ks_statistic(trades[before], trades[after]) > 0.2
    assert np.mean(trades[after]) > 1.3 * np.mean(trades[before])
    control = C.ks_statistic(depth[0:300], depth[300:600])
    assert control < C.ks_statistic(depth[before], depth[after])
