"""The SuperTrend strategy: the band recursion on a hand-computed series, entries after a flip, stops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from schemas.enums import Side, SignalAction
from testkit.strategies import candle_path, ohlc_candles, position, quote, strategy_config
from trading_daemon.strategies import SuperTrendStrategy, candle_arrays
from trading_daemon.strategies.supertrend import supertrend

CONFIG = strategy_config().supertrend  # ATR 10 × 3, trade 3 candles after a flip, volume >= 1.0 x, taker


def test_band_recursion_by_hand() -> None:
    # ATR(1) is the true range. Candle 1: TR 2, hl2 10 -> bands 12 / 8, up-trend, line 8. Candle 2: same
    # bands, neither loosens, line 8. Candle 3 (10 10.5 6 7): TR 4.5, basic bands 12.75 / 3.75 do not
    # tighten, so 12 / 8 stay; the close 7 < 8 flips the trend down: line 12. Candle 4 (7 15 7 14): TR 8,
    # basic 19 / 3; the upper stays 12, the lower resets to 3 (the previous close 7 was under 8); the
    # close 14 > 12 flips it up: line 3.
    k = candle_arrays(
        ohlc_candles(
            [
                (10, 11, 9, 10, 1),
                (10, 11, 9, 10, 1),
                (10, 11, 9, 10, 1),
                (10, 10.5, 6, 7, 1),
                (7, 15, 7, 14, 1),
            ]
        )
    )
    line, trend, atr = supertrend(k, period=1, multiplier=1.0)
    assert trend.tolist() == [0, 1, 1, -1, 1]
    np.testing.assert_array_equal(line[1:], [8.0, 8.0, 12.0, 3.0])
    np.testing.assert_array_equal(atr[1:], [2.0, 2.0, 4.5, 8.0])


def falling_then_jump(
    *, jump_volume: float = 30.0, after: int = 0, step: float = 0.2, jump: float = 3.0
) -> list:
    closes = [106 - step * i for i in range(30)]
    closes.append(closes[-1] + jump)
    closes += [closes[-1]] * after
    volumes = [10.0] * 30 + [jump_volume] + [10.0] * after
    return candle_path(closes, volumes=volumes)


def test_flip_up_on_volume_buys_with_the_line_as_stop() -> None:
    s = SuperTrendStrategy(CONFIG)
    candles = falling_then_jump()
    ind = s.indicators("BTCUSDT", candles)
    assert (ind.trend, ind.bars_since_flip) == (1, 0) and ind.roc_pct > 0
    assert ind.flip_volume_ratio == pytest.approx(30 / 11)  # SMA 20 of volume: (19·10 + 30)/20
    mid = candles[-1].close
    signal = s.analyze(quote(mid - 0.01, mid + 0.01), candles, None)
    assert signal is not None and signal.action is SignalAction.BUY
    ctx = signal.context or {}
    assert ctx["stop_loss"] == pytest.approx(ind.line) and ind.line < mid
    assert ctx["take_profit"] == pytest.approx(mid + 4.0 * ind.atr)
    # still a signal two candles later, not a third (SUPERTREND_SIGNAL_BARS = 3)
    assert s.analyze(quote(mid - 0.01, mid + 0.01), falling_then_jump(after=2), None) is not None
    assert s.analyze(quote(mid - 0.01, mid + 0.01), falling_then_jump(after=3), None) is None


def test_quiet_without_volume_or_momentum() -> None:
    s = SuperTrendStrategy(CONFIG)
    thin = falling_then_jump(jump_volume=5.0)  # 5 / 9.75 of the average
    mid = thin[-1].close
    assert s.indicators("BTCUSDT", thin).bars_since_flip == 0
    assert s.analyze(quote(mid - 0.01, mid + 0.01), thin, None) is None
    # a steeper fall: the jump flips the trend but closes below the close ten candles back (ROC < 0)
    steep = falling_then_jump(step=0.5, jump=2.5)
    ind = s.indicators("BTCUSDT", steep)
    assert (ind.trend, ind.bars_since_flip) == (1, 0) and ind.roc_pct < 0
    assert s.analyze(quote(steep[-1].close - 0.01, steep[-1].close + 0.01), steep, None) is None
    # the volume filter off: the thin flip is traded
    loose = SuperTrendStrategy(dataclasses.replace(CONFIG, volume_mult=0.0))
    assert loose.analyze(quote(mid - 0.01, mid + 0.01), thin, None) is not None


def test_adaptive_and_trailing_stops_and_reversal() -> None:
    s = SuperTrendStrategy(CONFIG)
    rising = candle_path([100 + 0.5 * i for i in range(31)])  # up-trend, last close 115
    ind = s.indicators("BTCUSDT", rising)
    assert ind.trend == 1
    now = rising[-1].end_ms
    # entered at 114.8 (less than one ATR in profit): the stop is the line
    fresh = position(Side.BUY, 114.8, take_profit=200.0, opened_ms=rising[-1].start_ms)
    assert s.stop_loss_price(quote(114.99, 115.01, ts=now), rising, fresh) == (ind.line, "adaptive_stop")
    # entered at 105 ten candles back, best close since 115: the trailing stop 115 - 2 ATR is tighter
    early = position(Side.BUY, 105.0, take_profit=200.0, opened_ms=rising[10].start_ms)
    trailing = 115.0 - 2.0 * ind.atr
    assert trailing > ind.line
    assert s.stop_loss_price(quote(114.99, 115.01, ts=now), rising, early) == (
        pytest.approx(trailing),
        "trailing_stop",
    )
    assert s.exit_signal(quote(114.99, 115.01, ts=now), rising, early) is None
    below = trailing - 0.05
    hit = s.exit_signal(quote(below - 0.01, below + 0.01, ts=now), rising, early)
    assert (
        hit is not None and (hit.context or {})["rule"] == "trailing_stop" and hit.action is SignalAction.SELL
    )
    below_line = ind.line - 0.05
    hit = s.exit_signal(quote(below_line - 0.01, below_line + 0.01, ts=now), rising, fresh)
    assert hit is not None and (hit.context or {})["rule"] == "adaptive_stop"
    # a short under an up-trend: the trend is against it
    short = position(Side.SELL, 114.0, stop_loss=130.0, take_profit=90.0, opened_ms=rising[-1].start_ms)
    reversal = s.exit_signal(quote(114.99, 115.01, ts=now), rising, short)
    assert reversal is not None and (reversal.context or {})["rule"] == "reversal"
