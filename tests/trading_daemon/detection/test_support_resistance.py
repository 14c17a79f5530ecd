"""Support/resistance on crafted candles: swing points, DBSCAN levels with their strength, breakouts that
need volume to count."""

from __future__ import annotations

import numpy as np

from schemas.detection import DetectionKind, LevelKind
from schemas.enums import Side
from schemas.market import Candle
from tests.trading_daemon.detection.books import SYMBOL, T0, config
from trading_daemon.detection import DetectionService
from trading_daemon.detection.support_resistance import SupportResistanceDetector, swing_points

MINUTE = 60_000


def candle(
    i: int, close: float, *, high: float | None = None, low: float | None = None, volume: float = 100.0
) -> Candle:
    open_ = close
    return Candle(
        symbol=SYMBOL,
        start_ms=T0 + i * MINUTE,
        open=open_,
        high=max(high if high is not None else close + 0.05, open_, close),
        low=min(low if low is not None else close - 0.05, open_, close),
        close=close,
        volume=volume,
        turnover=volume * close,
    )


def ranging(n: int = 120) -> list[Candle]:
    """A market swinging between about 100 and 102 with a 20-minute period: highs near 102, lows near 100."""
    closes = 101 + np.sin(np.arange(n) * 2 * np.pi / 20)
    return [candle(i, round(float(c), 2)) for i, c in enumerate(closes)]


def test_swing_points_are_local_extremes_counted_once() -> None:
    highs = np.array([1, 2, 3, 2, 1, 2, 5, 5, 2, 1, 0.0])
    lows = highs - 0.5
    high_idx, low_idx = swing_points(highs, lows, 2)
    assert high_idx.tolist() == [2, 6]  # the plateau at 6-7 counts once, at its first candle
    assert low_idx.tolist() == [4]


def test_levels_cluster_the_swings_into_support_and_resistance() -> None:
    detector = SupportResistanceDetector(SYMBOL, config())
    history = ranging()
    assert detector.on_candles(history, history[-1].start_ms + MINUTE) == []
    levels = detector.levels()
    support = [lv for lv in levels if lv.kind is LevelKind.SUPPORT]
    resistance = [lv for lv in levels if lv.kind is LevelKind.RESISTANCE]
    assert len(support) == 1 and len(resistance) == 1
    assert abs(support[0].price - 99.95) < 0.06 and abs(resistance[0].price - 102.05) < 0.06
    # highs at minutes 5, 25 ... 105; lows at 15 ... 95 (the low at 115 lacks its 5 candles after)
    assert (support[0].touches, resistance[0].touches) == (5, 6)
    assert 0.5 < resistance[0].strength <= 1.0
    assert resistance[0].price_low <= resistance[0].price <= resistance[0].price_high
    assert detector.nearest(101.0) == (support[0], resistance[0])


def test_strength_grows_with_touches_and_volume() -> None:
    few = SupportResistanceDetector(SYMBOL, config())
    few.on_candles(ranging(45), T0)  # two swings each
    many = SupportResistanceDetector(SYMBOL, config())
    many.on_candles(ranging(120), T0)
    assert max(lv.strength for lv in few.levels()) < min(lv.strength for lv in many.levels())
    heavy = [
        candle(c.start_ms // MINUTE - T0 // MINUTE, c.close, volume=400.0 if i % 20 in (5, 15) else 100.0)
        for i, c in enumerate(ranging(120))
    ]
    loud = SupportResistanceDetector(SYMBOL, config())
    loud.on_candles(heavy, T0)
    assert min(lv.strength for lv in loud.levels()) > max(lv.strength for lv in many.levels())


def test_a_breakout_on_volume_is_detected_once() -> None:
    service = DetectionService(config(), [SYMBOL])
    history = ranging()
    service.submit_candles(history)
    resistance = max(service.levels(SYMBOL), key=lambda lv: lv.price)
    n = len(history)
    # climb back to the resistance, then close well above it on three times the usual volume
    service.submit_candles([candle(n, 101.8), candle(n + 1, 102.0)])
    assert service.detections(SYMBOL) == []
    service.submit_candles([candle(n + 2, 102.6, volume=300.0)])
    [breakout] = service.detections(SYMBOL)
    assert breakout.kind is DetectionKind.BREAKOUT and breakout.side is Side.BUY
    assert breakout.price_low == resistance.price_low and breakout.evidence["volume_ratio"] >= 2.9
    assert service.blocked(SYMBOL, breakout.end_ms) is None  # a breakout is no manipulation
    service.submit_candles([candle(n + 3, 102.4), candle(n + 4, 102.9, volume=300.0)])
    assert len(service.detections(SYMBOL, kind=DetectionKind.BREAKOUT)) == 1  # that zone broke once


def test_a_close_beyond_the_level_on_thin_volume_is_no_breakout() -> None:
    service = DetectionService(config(), [SYMBOL])
    history = ranging()
    service.submit_candles(history)
    n = len(history)
    service.submit_candles([candle(n, 101.8), candle(n + 1, 102.0), candle(n + 2, 102.6, volume=110.0)])
    assert service.detections(SYMBOL) == []
    assert service.status().symbols[SYMBOL].unconfirmed_breakouts == 1


def test_too_few_candles_give_no_levels() -> None:
    detector = SupportResistanceDetector(SYMBOL, config())
    detector.on_candles(ranging(8), T0)
    assert detector.levels() == []
