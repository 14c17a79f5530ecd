"""Momentum (docs/strategies.md §2.2): trade in the direction of a strong rate of change, unless RSI says the
move is already overextended, and only on rising volume.

TA-Lib over the closed one-minute candles: ROC (percent over MOMENTUM_ROC_PERIOD candles), RSI, the volume's
simple average and ATR (stops). Exits: the ATR stop and target, ROC turning against the position, the
maximum hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import talib

from infra.settings import MomentumConfig
from schemas.market import Candle
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.strategies.base import CandleArrays, CandleStrategy, clamp01, last, position_is_long


@dataclass(frozen=True, slots=True)
class MomentumIndicators:
    roc_pct: float
    rsi: float
    volume_ratio: float  # last candle's volume / its MOMENTUM_VOLUME_PERIOD average
    atr: float

    @property
    def ready(self) -> bool:
        return (
            all(math.isfinite(v) for v in (self.roc_pct, self.rsi, self.volume_ratio, self.atr))
            and self.atr > 0
        )


def momentum_indicators(k: CandleArrays, c: MomentumConfig) -> MomentumIndicators:
    """The indicators on the newest candle (NaN while the candles are too few)."""
    need = max(c.roc_period, c.rsi_period, c.atr_period) + 1
    if len(k) < max(need, c.volume_period):
        return MomentumIndicators(math.nan, math.nan, math.nan, math.nan)
    average = last(talib.SMA(k.volume, c.volume_period))
    return MomentumIndicators(
        roc_pct=last(talib.ROC(k.close, c.roc_period)),
        rsi=last(talib.RSI(k.close, c.rsi_period)),
        volume_ratio=float(k.volume[-1]) / average if average > 0 else 0.0,
        atr=last(talib.ATR(k.high, k.low, k.close, c.atr_period)),
    )


class MomentumStrategy(CandleStrategy[MomentumConfig, MomentumIndicators]):
    """ROC beyond MOMENTUM_ROC_THRESHOLD_PCT, RSI filter, volume confirmation."""

    name = "momentum"

    def compute_indicators(self, k: CandleArrays) -> MomentumIndicators:
        return momentum_indicators(k, self.config)

    def vote(self, analysis: MarketAnalysis, ind: MomentumIndicators) -> Signal | None:
        c = self.config
        if ind.volume_ratio < c.volume_mult:
            return None
        if ind.roc_pct >= c.roc_threshold_pct and ind.rsi < c.rsi_overbought:
            buy = True
        elif ind.roc_pct <= -c.roc_threshold_pct and ind.rsi > c.rsi_oversold:
            buy = False
        else:
            return None
        excess = (abs(ind.roc_pct) - c.roc_threshold_pct) / c.roc_threshold_pct
        volume_excess = (ind.volume_ratio - c.volume_mult) / c.volume_mult if c.volume_mult > 0 else 1.0
        price = self.entry_price(analysis, buy)
        sign = 1 if buy else -1
        return self.entry(
            analysis,
            buy,
            strength=abs(ind.roc_pct) / (3 * c.roc_threshold_pct),
            confidence=0.5 + 0.25 * clamp01(excess / 2) + 0.25 * clamp01(volume_excess),
            stop_loss=price - sign * c.stop_atr * ind.atr,
            take_profit=price + sign * c.take_profit_atr * ind.atr,
            reason=(
                f"ROC {ind.roc_pct:+.3f}% beyond ±{c.roc_threshold_pct}%, RSI {ind.rsi:.1f}, "
                f"volume {ind.volume_ratio:.2f}x average"
            ),
            indicators={
                "roc_pct": ind.roc_pct,
                "rsi": ind.rsi,
                "volume_ratio": ind.volume_ratio,
                "atr": ind.atr,
            },
        )

    def exit_signal(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> Signal | None:
        c = self.config
        ind = self.indicators(analysis.symbol, candles)
        long = position_is_long(position)
        sign = 1 if long else -1
        entry = float(position.entry_price)
        stop = float(position.stop_loss) if position.stop_loss else None
        target = float(position.take_profit) if position.take_profit else None
        if ind.ready:
            stop = stop if stop is not None else entry - sign * c.stop_atr * ind.atr
            target = target if target is not None else entry + sign * c.take_profit_atr * ind.atr
        if analysis.valid:
            exit_ = self.price_exit(analysis, position, stop, target)
            if exit_ is not None:
                return exit_
        if ind.ready and sign * ind.roc_pct < 0:
            return self.exit(
                analysis,
                position,
                "reversal",
                f"ROC {ind.roc_pct:+.3f}% turned against the {'long' if long else 'short'}",
                roc_pct=ind.roc_pct,
            )
        return self.max_hold_exit(analysis, position)
