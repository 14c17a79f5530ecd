"""The momentum strategy on crafted candles: fires, stays quiet, exits.

The crafted paths step +0.3, -0.2 (or the mirror) from 100: ten candles gain 0.5, so ROC(10) is about
0.49 %; Wilder's RSI settles near 100·0.15/(0.15 + 0.10) = 60 (40 for the mirror); every range is its
body plus 0.1, so ATR(14) settles near 0.35.
"""

from __future__ import annotations

import pytest

from schemas.enums import Side, SignalAction
from testkit.strategies import candle_path, position, quote, strategy_config
from trading_daemon.strategies import MomentumStrategy

CONFIG = strategy_config().momentum  # ROC 10 >= 0.15 %, RSI 14 in (30, 70), volume >= 1.2 x average, taker


def path(up: float, down: float, *, last_volume: float, n: int = 40) -> list:
    closes = [100.0]
    for i in range(1, n):
        closes.append(closes[-1] + (up if i % 2 else -down))
    return candle_path(closes, volumes=[10.0] * (n - 1) + [last_volume])


RISING = path(0.3, 0.2, last_volume=15.0)  # last close 102.2, ten candles before 101.7
FALLING = path(-0.3, -0.2, last_volume=15.0)  # last close 97.8


def test_rising_momentum_on_volume_buys() -> None:
    s = MomentumStrategy(CONFIG)
    ind = s.indicators("BTCUSDT", RISING)
    assert ind.roc_pct == pytest.approx(100 * (102.2 / 101.7 - 1))
    assert 55 < ind.rsi < 65 and ind.atr == pytest.approx(0.35, abs=0.01)
    assert ind.volume_ratio == pytest.approx(15 / 10.25)  # (19·10 + 15)/20 = 10.25
    signal = s.analyze(quote(102.19, 102.21, ts=RISING[-1].end_ms), RISING, None)
    assert signal is not None and signal.action is SignalAction.BUY and signal.source == "momentum"
    volume_excess = (15 / 10.25 - 1.2) / 1.2
    assert signal.confidence == pytest.approx(0.5 + 0.25 + 0.25 * volume_excess)  # ROC excess saturates
    ctx = signal.context or {}
    price = float(signal.price or 0)
    assert price == pytest.approx(102.2) and ctx["entry_style"] == "taker"
    assert ctx["stop_loss"] == pytest.approx(price - 1.5 * ind.atr)
    assert ctx["take_profit"] == pytest.approx(price + 3.0 * ind.atr)


def test_falling_momentum_sells() -> None:
    signal = MomentumStrategy(CONFIG).analyze(quote(97.79, 97.81), FALLING, None)
    assert signal is not None and signal.action is SignalAction.SELL
    ctx = signal.context or {}
    assert ctx["stop_loss"] > 97.8 > ctx["take_profit"]


@pytest.mark.parametrize(
    ("candles", "why"),
    [
        (path(0.3, 0.2, last_volume=10.0), "volume 1.0 x average, below 1.2"),
        (
            candle_path([100 + 0.1 * i for i in range(40)], volumes=[10.0] * 39 + [30.0]),
            "RSI 100: overbought",
        ),
        (candle_path([100 - 0.1 * i for i in range(40)], volumes=[10.0] * 39 + [30.0]), "RSI 0: oversold"),
        (path(0.3, 0.2, last_volume=15.0, n=12), "too few candles for RSI and the volume average"),
        (path(0.06, 0.05, last_volume=30.0), "ten candles gain 0.05: ROC 0.05 %, below 0.15 %"),
    ],
)
def test_stays_quiet(candles: list, why: str) -> None:
    mid = candles[-1].close
    assert MomentumStrategy(CONFIG).analyze(quote(mid - 0.01, mid + 0.01), candles, None) is None, why


def test_exits() -> None:
    s = MomentumStrategy(CONFIG)
    atr = s.indicators("BTCUSDT", RISING).atr
    long = position(Side.BUY, 102.2, opened_ms=RISING[-1].end_ms)
    now = RISING[-1].end_ms + 1_000
    assert s.exit_signal(quote(102.19, 102.21, ts=now), RISING, long) is None
    # no levels on the position: the stop is 1.5 ATR under the entry, the target 3 ATR above it
    stop = s.exit_signal(quote(102.2 - 1.6 * atr - 0.01, 102.2 - 1.6 * atr + 0.01, ts=now), RISING, long)
    assert stop is not None and (stop.context or {})["rule"] == "stop_loss"
    target = s.exit_signal(quote(102.2 + 3.1 * atr - 0.01, 102.2 + 3.1 * atr + 0.01, ts=now), RISING, long)
    assert target is not None and (target.context or {})["rule"] == "take_profit"
    # ROC turned negative under a long whose own levels are far away
    wide = position(Side.BUY, 97.8, stop_loss=90.0, take_profit=110.0, opened_ms=FALLING[-1].end_ms)
    reversal = s.exit_signal(quote(97.79, 97.81, ts=now), FALLING, wide)
    assert reversal is not None and (reversal.context or {})["rule"] == "reversal"
    assert reversal.action is SignalAction.SELL
    late = position(Side.BUY, 102.2, stop_loss=90.0, take_profit=110.0, opened_ms=now - 1_800_000)
    expired = s.exit_signal(quote(102.19, 102.21, ts=now), RISING, late)
    assert expired is not None and (expired.context or {})["rule"] == "max_hold"
