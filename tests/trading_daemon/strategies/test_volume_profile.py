"""The volume profile (by hand) and the volume profile strategy: value-area rejection, breakout, exits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from schemas.enums import Side, SignalAction
from testkit.strategies import ohlc_candles, position, quote, strategy_config
from trading_daemon.analysis.volume_profile import VolumeProfile, volume_profile
from trading_daemon.strategies import VolumeProfileStrategy, candle_arrays

CONFIG = strategy_config().volume_profile  # 120 candles, 70 % value area, stop 1 ATR beyond it, maker
BINS_30 = dataclasses.replace(CONFIG, bins=30)  # bins of 0.1 over the crafted 3-point ranges


def profile_of(bars: list[tuple[float, float, float, float, float]], bins: int) -> VolumeProfile | None:
    k = candle_arrays(ohlc_candles(bars))
    return volume_profile(k.high, k.low, k.volume, bins=bins, value_area=0.7, hvn_mult=1.5, lvn_mult=0.5)


def test_profile_by_hand() -> None:
    # bins [100,101) [101,102) [102,103]: 10 over 100-102 gives 5 + 5, 20 over 101-103 gives 10 + 10, 30 over
    # 100-101 gives 30: [35, 15, 10]. POC 100.5; the value area grows from bin 0 up (70 % of 60 = 42): 50.
    p = profile_of([(101, 102, 100, 101, 10), (102, 103, 101, 102, 20), (100.5, 101, 100, 100.5, 30)], bins=3)
    assert p is not None
    np.testing.assert_allclose(p.volume, [35, 15, 10])
    assert (p.poc, p.value_area_low, p.value_area_high) == (100.5, 100.0, 102.0)
    assert p.hvn == (100.5,) and p.lvn == (102.5,)  # >= 1.5 x and <= 0.5 x the mean bin (20)
    assert p.bin_of(102.5) == 2 and p.bin_of(103.0) == 2 and p.bin_of(99.0) is None


def test_flat_candles_fall_in_their_bin_and_no_range_is_no_profile() -> None:
    p = profile_of([(101, 103, 100, 102, 30), (100.5, 100.5, 100.5, 100.5, 7)], bins=3)
    assert p is not None
    np.testing.assert_allclose(p.volume, [17, 10, 10])
    assert profile_of([(100, 100, 100, 100, 5)] * 3, bins=3) is None


# Rejection. 59 candles over 99-101 (29.5 per 0.1 bin), 60 over 99.8-100.2 (150 per bin), and the last,
# 98-100 closing at 99.5 (0.5 per bin), in 30 bins over 98-101. Bins: [98,99) 0.5; [99,99.8) 30;
# [99.8,100) 180; [100,100.2) 179.5; [100.2,101] 29.5 — 1 200 in all. POC: the first 180 bin, 99.85. The
# value area (840) takes 99.8-100.2 (719), then 30s below until 869: VAL 99.3, VAH 100.2.
WIDE, CORE = (100, 101, 99, 100, 10), (100, 100.2, 99.8, 100, 10)
REJECTION = ohlc_candles([WIDE] * 59 + [CORE] * 60 + [(99.2, 100, 98, 99.5, 10)])
# Wilder's ATR: 2 over the wide candles, 0.4 + 1.6·(13/14)^60 after the core ones, then the last TR of 2.
ATR = ((0.4 + 1.6 * (13 / 14) ** 60) * 13 + 2) / 14


def test_rejection_below_the_value_area_buys_toward_the_poc() -> None:
    s30 = VolumeProfileStrategy(BINS_30)
    ind = s30.indicators("BTCUSDT", REJECTION)
    p = ind.profile
    assert p is not None
    assert (p.poc, p.value_area_low, p.value_area_high) == (
        pytest.approx(99.85),
        pytest.approx(99.3),
        pytest.approx(100.2),
    )
    assert ind.atr == pytest.approx(ATR, abs=1e-9)
    signal = s30.analyze(quote(99.49, 99.51), REJECTION, None)
    assert signal is not None and signal.action is SignalAction.BUY and signal.source == "volume_profile"
    ctx = signal.context or {}
    assert ctx["take_profit"] == pytest.approx(99.85) and ctx["stop_loss"] == pytest.approx(99.3 - ATR)
    assert signal.confidence == 1.0  # the wick reached 1.3 below VAL: more than an ATR
    assert signal.strength == pytest.approx((99.85 - 99.49) / 0.9)
    # above the POC there is nothing to revert to
    assert s30.analyze(quote(99.9, 99.92), REJECTION, None) is None


# Breakout. 119 candles over 99-101 and a last one 100-102 closing at 101.4 on 30 (2.7 x the average), 30
# bins over 99-102: [99,100) 59.5, [100,101) 61, [101,102] 1.5. POC 100.05, value area 99.5-101.0; the close
# broke above VAH into bins of 1.5 (mean 40.7). No high-volume node above: target VAH + width/2 = 101.75.
BREAKOUT = ohlc_candles([WIDE] * 119 + [(100, 102, 100, 101.4, 30)])


def test_breakout_above_the_value_area_on_volume_buys() -> None:
    s = VolumeProfileStrategy(BINS_30)
    ind = s.indicators("BTCUSDT", BREAKOUT)
    p = ind.profile
    assert p is not None and (p.value_area_low, p.value_area_high) == (
        pytest.approx(99.5),
        pytest.approx(101.0),
    )
    assert ind.atr == pytest.approx(2.0) and ind.volume_ratio == pytest.approx(30 / 11)
    signal = s.analyze(quote(101.39, 101.41), BREAKOUT, None)
    assert signal is not None and signal.action is SignalAction.BUY
    ctx = signal.context or {}
    assert ctx["take_profit"] == pytest.approx(101.75) and ctx["stop_loss"] == pytest.approx(101.0 - 2.0)
    assert signal.confidence == pytest.approx(0.5 + 0.5 * (30 / 11 - 1.5) / 1.5)
    # the same close on ordinary volume is no breakout
    quiet = ohlc_candles([WIDE] * 119 + [(100, 102, 100, 101.4, 10)])
    assert s.analyze(quote(101.39, 101.41), quiet, None) is None


def test_exits_without_levels_use_the_profile() -> None:
    s = VolumeProfileStrategy(BINS_30)
    long = position(Side.BUY, 99.49, opened_ms=REJECTION[-1].end_ms)
    now = REJECTION[-1].end_ms + 1_000
    assert s.exit_signal(quote(99.5, 99.52, ts=now), REJECTION, long) is None
    target = s.exit_signal(quote(99.86, 99.88, ts=now), REJECTION, long)  # the POC, 99.85
    assert target is not None and (target.context or {})["rule"] == "take_profit"
    stop = s.exit_signal(quote(98.7, 98.72, ts=now), REJECTION, long)  # under VAL - ATR = 98.77
    assert stop is not None and (stop.context or {})["rule"] == "stop_loss"
    expired = s.exit_signal(quote(99.5, 99.52, ts=now + 1_800_000), REJECTION, long)
    assert expired is not None and (expired.context or {})["rule"] == "max_hold"
