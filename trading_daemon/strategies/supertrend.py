"""SuperTrend (docs/strategies.md §2.4): follow the trend an ATR band says, entering in the first
SUPERTREND_SIGNAL_BARS candles after a flip that momentum (ROC) and volume confirm.

The SuperTrend line is not a TA-Lib function: its bands are the median price ± SUPERTREND_MULTIPLIER × ATR
(TA-Lib ATR), tightened candle by candle and never loosened while the trend lasts, and the trend flips when
a close crosses the opposite band. That recursion is written here (`supertrend`), over TA-Lib's ATR.

Stops: the line itself (adaptive: it moves with every candle), and, once a trade is one ATR in profit, a
trailing stop SUPERTREND_TRAILING_ATR ATRs behind the best close since the entry (the tighter of the two
counts). Exits: either stop, the take-profit, a flip against the position, the maximum hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import talib

from infra.settings import SuperTrendConfig
from schemas.market import Candle
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.strategies.base import (
    CandleArrays,
    CandleStrategy,
    candles_since,
    clamp01,
    last,
    position_is_long,
)


def supertrend(k: CandleArrays, period: int, multiplier: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line, trend (+1 up, -1 down, 0 before the ATR exists), ATR) per candle.

    Bands: hl2 ± multiplier·ATR. The final lower band only rises while the trend is up (it resets when the
    previous close fell below it), the final upper band only falls; an up-trend flips down when a close
    falls below the final lower band, a down-trend up when a close rises above the final upper band. The
    first candle with an ATR starts up-trend.
    """
    n = len(k)
    atr = talib.ATR(k.high, k.low, k.close, period)
    line = np.full(n, np.nan)
    trend = np.zeros(n, np.int64)
    valid = np.flatnonzero(np.isfinite(atr))
    if not len(valid):
        return line, trend, atr
    hl2 = (k.high + k.low) / 2
    upper_basic = (hl2 + multiplier * atr).tolist()
    lower_basic = (hl2 - multiplier * atr).tolist()
    close = k.close.tolist()
    first = int(valid[0])
    upper, lower, up = upper_basic[first], lower_basic[first], True
    line[first], trend[first] = lower, 1
    for i in range(first + 1, n):
        prev_close = close[i - 1]
        upper = upper_basic[i] if upper_basic[i] < upper or prev_close > upper else upper
        lower = lower_basic[i] if lower_basic[i] > lower or prev_close < lower else lower
        if up and close[i] < lower:
            up = False
        elif not up and close[i] > upper:
            up = True
        line[i], trend[i] = (lower, 1) if up else (upper, -1)
    return line, trend, atr


@dataclass(frozen=True, slots=True)
class SuperTrendIndicators:
    line: float
    trend: int  # +1 up, -1 down, 0 unknown
    atr: float
    bars_since_flip: int  # 0: the newest candle flipped the trend
    flip_volume_ratio: float  # the flip candle's volume / its average
    roc_pct: float

    @property
    def ready(self) -> bool:
        return self.trend != 0 and math.isfinite(self.line) and math.isfinite(self.atr) and self.atr > 0


def supertrend_indicators(k: CandleArrays, c: SuperTrendConfig) -> SuperTrendIndicators:
    if len(k) < max(c.atr_period + 2, c.volume_period, c.roc_period + 1):
        return SuperTrendIndicators(math.nan, 0, math.nan, 0, math.nan, math.nan)
    line, trend, atr = supertrend(k, c.atr_period, c.multiplier)
    changed = np.flatnonzero((trend[1:] != trend[:-1]) & (trend[:-1] != 0)) + 1
    flip = int(changed[-1]) if len(changed) else 0
    average = talib.SMA(k.volume, c.volume_period)
    ratio = (
        float(k.volume[flip] / average[flip]) if math.isfinite(average[flip]) and average[flip] > 0 else 0.0
    )
    return SuperTrendIndicators(
        line=last(line),
        trend=int(trend[-1]),
        atr=last(atr),
        bars_since_flip=len(k) - 1 - flip if len(changed) else len(k),
        flip_volume_ratio=ratio,
        roc_pct=last(talib.ROC(k.close, c.roc_period)),
    )


class SuperTrendStrategy(CandleStrategy[SuperTrendConfig, SuperTrendIndicators]):
    """ATR × multiplier trend following with adaptive and trailing stops."""

    name = "supertrend"

    def compute_indicators(self, k: CandleArrays) -> SuperTrendIndicators:
        return supertrend_indicators(k, self.config)

    def vote(self, analysis: MarketAnalysis, ind: SuperTrendIndicators) -> Signal | None:
        c = self.config
        if ind.bars_since_flip >= c.signal_bars:
            return None
        buy = ind.trend > 0
        if ind.flip_volume_ratio < c.volume_mult or (ind.roc_pct <= 0 if buy else ind.roc_pct >= 0):
            return None
        price = self.entry_price(analysis, buy)
        sign = 1 if buy else -1
        distance = sign * (price - ind.line) / ind.atr  # ATRs between the price and the line, > 0 on its side
        if distance <= 0:
            return None
        volume_excess = (ind.flip_volume_ratio - c.volume_mult) / max(c.volume_mult, 1.0)
        return self.entry(
            analysis,
            buy,
            strength=clamp01(distance / c.multiplier),
            confidence=0.5
            + 0.25 * clamp01(volume_excess)
            + 0.25 * clamp01(1 - ind.bars_since_flip / c.signal_bars),
            stop_loss=ind.line,
            take_profit=price + sign * c.take_profit_atr * ind.atr,
            reason=(
                f"SuperTrend flipped {'up' if buy else 'down'} {ind.bars_since_flip} candle(s) ago "
                f"(line {ind.line:.6g}, ATR {ind.atr:.6g}), ROC {ind.roc_pct:+.3f}%, "
                f"flip volume {ind.flip_volume_ratio:.2f}x"
            ),
            indicators={
                "line": ind.line,
                "atr": ind.atr,
                "bars_since_flip": float(ind.bars_since_flip),
                "flip_volume_ratio": ind.flip_volume_ratio,
                "roc_pct": ind.roc_pct,
            },
        )

    def stop_loss_price(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> tuple[float, str] | None:
        """The position's stop now and which one it is: the line ("adaptive_stop") or the trailing stop
        ("trailing_stop"), whichever is nearer the price; None while the indicators are not ready or the
        trend is against the position (the line is then on the wrong side: the reversal exit applies)."""
        ind = self.indicators(analysis.symbol, candles)
        long = position_is_long(position)
        if not ind.ready or ind.trend != (1 if long else -1):
            return None
        entry = float(position.entry_price)
        closes = [k.close for k in candles_since(candles, position.opened_ms)] + [analysis.mid]
        best = max(closes) if long else min(closes)
        stop, rule = ind.line, "adaptive_stop"
        if (best - entry if long else entry - best) >= ind.atr:  # one ATR in profit: the trailing stop arms
            trailing = (
                best - self.config.trailing_atr * ind.atr
                if long
                else best + self.config.trailing_atr * ind.atr
            )
            if trailing > stop if long else trailing < stop:
                stop, rule = trailing, "trailing_stop"
        return stop, rule

    def exit_signal(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> Signal | None:
        ind = self.indicators(analysis.symbol, candles)
        long = position_is_long(position)
        if analysis.valid:
            target = float(position.take_profit) if position.take_profit else None
            if target is None and ind.ready:
                sign = 1 if long else -1
                target = float(position.entry_price) + sign * self.config.take_profit_atr * ind.atr
            stop = self.stop_loss_price(analysis, candles, position)
            mid = analysis.mid
            if stop is not None and (mid <= stop[0] if long else mid >= stop[0]):
                return self.exit(
                    analysis,
                    position,
                    stop[1],
                    f"mid {mid} crossed the {stop[1].replace('_', ' ')} {stop[0]:.6g}",
                    stop=stop[0],
                )
            exit_ = self.price_exit(analysis, position, None, target)
            if exit_ is not None:
                return exit_
        if ind.ready and ind.trend != (1 if long else -1):
            return self.exit(
                analysis,
                position,
                "reversal",
                f"SuperTrend flipped against the {'long' if long else 'short'}",
                line=ind.line,
            )
        return self.max_hold_exit(analysis, position)
