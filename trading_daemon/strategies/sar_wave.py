"""SAR wave (docs/strategies.md §2.3): in a strong trend (Parabolic SAR on the trend's side, ADX above
SAR_ADX_THRESHOLD), buy the pull-back of the last up-wave into its Fibonacci retracement zone (sell the
bounce of a down-wave likewise).

Waves run between swing points: a swing high is the highest high of SAR_SWING_ORDER candles on either side
(TA-Lib MAX over 2·order + 1 candles, read at the centre), a swing low the mirror. SAR, ADX and ATR are
TA-Lib's. The stop is the wave's start or the SAR, whichever is nearer; the target the wave's end. Exits:
the stop and target, the SAR flipping to the other side of the price, the maximum hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import talib

from infra.settings import SarWaveConfig
from schemas.market import Candle
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.strategies.base import CandleArrays, CandleStrategy, clamp01, last, position_is_long


@dataclass(frozen=True, slots=True)
class Wave:
    """The last completed move between two swing points: from `start` to `end` (up when end > start)."""

    start: float
    end: float
    start_ms: int
    end_ms: int

    @property
    def up(self) -> bool:
        return self.end > self.start

    @property
    def size(self) -> float:
        return abs(self.end - self.start)

    def retracement(self, price: float) -> float:
        """How much of the wave `price` has given back: 0 at its end, 1 at its start."""
        return (self.end - price) / (self.end - self.start)


@dataclass(frozen=True, slots=True)
class SarWaveIndicators:
    sar: float
    close: float
    adx: float
    atr: float
    wave: Wave | None

    @property
    def ready(self) -> bool:
        return all(math.isfinite(v) for v in (self.sar, self.adx, self.atr)) and self.atr > 0


def swing_points(k: CandleArrays, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the swing highs and swing lows: extremes of the `order` candles on each side."""
    span = 2 * order + 1
    if len(k) < span:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    highest = talib.MAX(k.high, span)[span - 1 :]  # window ending at j covers centre j - order
    lowest = talib.MIN(k.low, span)[span - 1 :]
    centres = np.arange(order, len(k) - order)
    return centres[k.high[centres] >= highest], centres[k.low[centres] <= lowest]


def last_wave(k: CandleArrays, order: int) -> Wave | None:
    """The move from the swing point before the newest one to the newest one (None with too few swings)."""
    highs, lows = swing_points(k, order)
    if not len(highs) or not len(lows):
        return None
    ih, il = int(highs[-1]), int(lows[-1])
    if ih > il:  # the newest swing is a high: the last wave went up from the low before it
        before = lows[lows < ih]
        if not len(before):
            return None
        i0 = int(before[-1])
        return Wave(float(k.low[i0]), float(k.high[ih]), int(k.start_ms[i0]), int(k.start_ms[ih]))
    if il > ih:
        before = highs[highs < il]
        if not len(before):
            return None
        i0 = int(before[-1])
        return Wave(float(k.high[i0]), float(k.low[il]), int(k.start_ms[i0]), int(k.start_ms[il]))
    return None  # one candle is both (an outside bar): no direction


def sar_wave_indicators(k: CandleArrays, c: SarWaveConfig) -> SarWaveIndicators:
    if len(k) < max(2 * c.adx_period, c.atr_period + 1, 2 * c.swing_order + 2):
        return SarWaveIndicators(math.nan, math.nan, math.nan, math.nan, None)
    return SarWaveIndicators(
        sar=last(talib.SAR(k.high, k.low, acceleration=c.acceleration, maximum=c.max_acceleration)),
        close=float(k.close[-1]),
        adx=last(talib.ADX(k.high, k.low, k.close, c.adx_period)),
        atr=last(talib.ATR(k.high, k.low, k.close, c.atr_period)),
        wave=last_wave(k, c.swing_order),
    )


class SarWaveStrategy(CandleStrategy[SarWaveConfig, SarWaveIndicators]):
    """Parabolic SAR trend, ADX filter, Fibonacci retracement entries on the last wave."""

    name = "sar_wave"

    def compute_indicators(self, k: CandleArrays) -> SarWaveIndicators:
        return sar_wave_indicators(k, self.config)

    def vote(self, analysis: MarketAnalysis, ind: SarWaveIndicators) -> Signal | None:
        c = self.config
        wave = ind.wave
        if wave is None or ind.adx < c.adx_threshold:
            return None
        buy = wave.up
        trend_up = ind.close > ind.sar
        if buy != trend_up or wave.size < c.min_wave_atr * ind.atr:
            return None
        price = self.entry_price(analysis, buy)
        retracement = wave.retracement(price)
        if not c.fib_min <= retracement <= c.fib_max or (price <= ind.sar if buy else price >= ind.sar):
            return None
        stop = max(wave.start, ind.sar) if buy else min(wave.start, ind.sar)
        return self.entry(
            analysis,
            buy,
            strength=clamp01(ind.adx / 50),
            confidence=0.5 + 0.5 * clamp01((ind.adx - c.adx_threshold) / c.adx_threshold),
            stop_loss=stop,
            take_profit=wave.end,
            reason=(
                f"{'up' if buy else 'down'}trend (SAR {ind.sar:.6g}, ADX {ind.adx:.1f}), "
                f"{retracement:.3f} retracement of the wave {wave.start:.6g} -> {wave.end:.6g}"
            ),
            indicators={
                "sar": ind.sar,
                "adx": ind.adx,
                "atr": ind.atr,
                "wave_start": wave.start,
                "wave_end": wave.end,
                "retracement": retracement,
            },
        )

    def exit_signal(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> Signal | None:
        ind = self.indicators(analysis.symbol, candles)
        long = position_is_long(position)
        stop = float(position.stop_loss) if position.stop_loss else None
        target = float(position.take_profit) if position.take_profit else None
        if analysis.valid:
            exit_ = self.price_exit(analysis, position, stop, target)
            if exit_ is not None:
                return exit_
        if ind.ready and (ind.close < ind.sar if long else ind.close > ind.sar):
            return self.exit(
                analysis,
                position,
                "sar_flip",
                f"Parabolic SAR {ind.sar:.6g} flipped to the other side of the close {ind.close:.6g}",
                sar=ind.sar,
            )
        return self.max_hold_exit(analysis, position)
