"""The SAR wave strategy: swing points and waves by hand, Fibonacci entries, the SAR and ADX filters, exits."""

from __future__ import annotations

import dataclasses

import pytest

from schemas.enums import Side, SignalAction
from testkit.strategies import candle_path, ohlc_candles, position, quote, strategy_config
from trading_daemon.strategies import SarWaveStrategy, candle_arrays
from trading_daemon.strategies.sar_wave import last_wave, swing_points

CONFIG = strategy_config().sar_wave  # SAR 0.02/0.2, ADX 14 >= 25, swings of 3, Fibonacci 0.382-0.618, maker
SLOW_SAR = dataclasses.replace(CONFIG, acceleration=0.001, max_acceleration=0.002)


def test_swing_points_and_the_last_wave() -> None:
    highs = [10, 12, 11, 13, 12, 14, 13]
    lows = [9, 11, 10, 12, 11, 13, 12]
    k = candle_arrays(
        ohlc_candles([(lo + 0.5, h, lo, lo + 0.5, 1) for h, lo in zip(highs, lows, strict=True)])
    )
    swing_highs, swing_lows = swing_points(k, order=1)
    assert swing_highs.tolist() == [1, 3, 5] and swing_lows.tolist() == [2, 4]
    wave = last_wave(k, order=1)  # the newest swing is the high at 5: up from the low at 4
    assert wave is not None and (wave.start, wave.end, wave.up) == (11.0, 14.0, True)
    assert wave.retracement(12.5) == pytest.approx(0.5)


# Up 20 candles from 100, dip 3, up 13 to 130, pull back to 124. With wicks of 0.05 the dip's low is
# 116.95 and the top's high 130.05 (swing points of 3 candles each side): the wave is 116.95 -> 130.05, and
# its 0.382-0.618 retracement zone is 121.95-125.05.
CLOSES = (
    [100.0 + i for i in range(21)]
    + [119.0, 118.0, 117.0]
    + [118.0 + i for i in range(13)]
    + [128.0, 126.0, 124.0]
)
CANDLES = candle_path(CLOSES)
L, H = 116.95, 130.05


def test_pullback_into_the_golden_zone_of_an_up_wave_buys() -> None:
    s = SarWaveStrategy(SLOW_SAR)
    ind = s.indicators("BTCUSDT", CANDLES)
    assert ind.wave is not None and (ind.wave.start, ind.wave.end) == (pytest.approx(L), pytest.approx(H))
    assert ind.adx > 25 and ind.sar < 124  # a strong trend; the slow SAR lags far below
    signal = s.analyze(quote(123.99, 124.01), CANDLES, None)
    assert signal is not None and signal.action is SignalAction.BUY and signal.source == "sar_wave"
    ctx = signal.context or {}
    assert float(signal.price or 0) == 123.99  # maker: the best bid
    assert ctx["indicators"]["retracement"] == pytest.approx((H - 123.99) / (H - L))
    assert ctx["stop_loss"] == pytest.approx(L)  # the wave's start (the SAR is further away)
    assert ctx["take_profit"] == pytest.approx(H)  # the wave's end
    assert signal.confidence == pytest.approx(0.5 + 0.5 * min(1.0, (ind.adx - 25) / 25))


@pytest.mark.parametrize(
    ("price", "why"), [(128.0, "retraced 0.16, not yet 0.382"), (118.0, "retraced 0.92")]
)
def test_outside_the_zone_stays_quiet(price: float, why: str) -> None:
    assert SarWaveStrategy(SLOW_SAR).analyze(quote(price - 0.01, price + 0.01), CANDLES, None) is None, why


def test_a_pullback_through_the_sar_is_no_up_trend() -> None:
    s = SarWaveStrategy(CONFIG)  # the default SAR accelerates to 0.2 and trails a few points under the top
    ind = s.indicators("BTCUSDT", CANDLES)
    assert ind.sar > ind.close  # the pull-back crossed it: the SAR flipped above the price
    assert s.analyze(quote(123.99, 124.01), CANDLES, None) is None


def test_a_weak_trend_stays_quiet() -> None:
    strict = SarWaveStrategy(dataclasses.replace(SLOW_SAR, adx_threshold=99.9))
    assert strict.indicators("BTCUSDT", CANDLES).adx < 99.9
    assert strict.analyze(quote(123.99, 124.01), CANDLES, None) is None


def test_exits() -> None:
    slow, default = SarWaveStrategy(SLOW_SAR), SarWaveStrategy(CONFIG)
    long = position(Side.BUY, 123.99, stop_loss=L, take_profit=H, opened_ms=CANDLES[-1].end_ms)
    now = CANDLES[-1].end_ms + 1_000
    assert slow.exit_signal(quote(123.99, 124.01, ts=now), CANDLES, long) is None
    target = slow.exit_signal(quote(130.1, 130.2, ts=now), CANDLES, long)
    assert target is not None and (target.context or {})["rule"] == "take_profit"
    stop = slow.exit_signal(quote(116.8, 116.9, ts=now), CANDLES, long)
    assert stop is not None and (stop.context or {})["rule"] == "stop_loss"
    flip = default.exit_signal(quote(123.99, 124.01, ts=now), CANDLES, long)
    assert (
        flip is not None and (flip.context or {})["rule"] == "sar_flip" and flip.action is SignalAction.SELL
    )
