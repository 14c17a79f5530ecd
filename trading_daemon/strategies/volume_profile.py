"""Volume profile (docs/strategies.md §2.5): trade the value area of the last VOLUME_PROFILE_LOOKBACK candles.

Two setups, from `trading_daemon.analysis.volume_profile`:

* **rejection** (mean reversion): the last candle poked below the value area's low (VAL) and closed back
  inside it, and the price is between VAL and the point of control (POC): buy, target the POC, stop
  VOLUME_PROFILE_STOP_ATR ATRs below VAL. The mirror at the value area's high (VAH) sells.
* **breakout** through thin volume: the last candle closed above VAH for the first time, on at least
  VOLUME_PROFILE_BREAKOUT_VOLUME_MULT × average volume, into a low-volume zone (the bins between VAH and
  the price hold less than the mean): buy, target the next high-volume node above (else half the value
  area's width beyond VAH), stop back inside the value area. The mirror below VAL sells.

Exits: the stop and target, the maximum hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import talib

from infra.settings import VolumeProfileConfig
from schemas.market import Candle
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.analysis.volume_profile import VolumeProfile, volume_profile
from trading_daemon.strategies.base import CandleArrays, CandleStrategy, clamp01, last, position_is_long


@dataclass(frozen=True, slots=True)
class ProfileIndicators:
    profile: VolumeProfile | None
    atr: float
    volume_ratio: float  # last candle's volume / its average
    last_high: float
    last_low: float
    last_close: float
    prev_close: float

    @property
    def ready(self) -> bool:
        return self.profile is not None and math.isfinite(self.atr) and self.atr > 0


def profile_indicators(k: CandleArrays, c: VolumeProfileConfig) -> ProfileIndicators:
    if len(k) < max(c.lookback, c.atr_period + 1, c.volume_period, 2):
        return ProfileIndicators(None, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    span = slice(-c.lookback, None)
    average = last(talib.SMA(k.volume, c.volume_period))
    return ProfileIndicators(
        profile=volume_profile(
            k.high[span],
            k.low[span],
            k.volume[span],
            bins=c.bins,
            value_area=c.value_area,
            hvn_mult=c.hvn_mult,
            lvn_mult=c.lvn_mult,
        ),
        atr=last(talib.ATR(k.high, k.low, k.close, c.atr_period)),
        volume_ratio=float(k.volume[-1]) / average if average > 0 else 0.0,
        last_high=float(k.high[-1]),
        last_low=float(k.low[-1]),
        last_close=float(k.close[-1]),
        prev_close=float(k.close[-2]),
    )


class VolumeProfileStrategy(CandleStrategy[VolumeProfileConfig, ProfileIndicators]):
    """POC, 70 % value area, high- and low-volume nodes."""

    name = "volume_profile"

    def compute_indicators(self, k: CandleArrays) -> ProfileIndicators:
        return profile_indicators(k, self.config)

    def vote(self, analysis: MarketAnalysis, ind: ProfileIndicators) -> Signal | None:
        return self._rejection(analysis, ind) or self._breakout(analysis, ind)

    def _rejection(self, analysis: MarketAnalysis, ind: ProfileIndicators) -> Signal | None:
        p = ind.profile
        assert p is not None
        val, vah, poc = p.value_area_low, p.value_area_high, p.poc
        stop_distance = self.config.stop_atr * ind.atr
        if ind.last_low < val < ind.last_close:
            buy, wick = True, val - ind.last_low
            stop, edge = val - stop_distance, "VAL"
        elif ind.last_high > vah > ind.last_close:
            buy, wick = False, ind.last_high - vah
            stop, edge = vah + stop_distance, "VAH"
        else:
            return None
        price = self.entry_price(analysis, buy)
        if not (val <= price < poc if buy else poc < price <= vah):
            return None
        return self.entry(
            analysis,
            buy,
            strength=clamp01(abs(poc - price) / max(vah - val, 1e-12)),
            confidence=0.5 + 0.5 * clamp01(wick / ind.atr),
            stop_loss=stop,
            take_profit=poc,
            reason=f"rejected at the value area's {edge} ({val:.6g}-{vah:.6g}), target the POC {poc:.6g}",
            indicators={**_levels(p), "atr": ind.atr, "wick": wick},
        )

    def _breakout(self, analysis: MarketAnalysis, ind: ProfileIndicators) -> Signal | None:
        c = self.config
        p = ind.profile
        assert p is not None
        val, vah = p.value_area_low, p.value_area_high
        if ind.volume_ratio < c.breakout_volume_mult:
            return None
        if ind.prev_close <= vah < ind.last_close:
            buy = True
        elif ind.prev_close >= val > ind.last_close:
            buy = False
        else:
            return None
        price = self.entry_price(analysis, buy)
        zone = (vah, price) if buy else (price, val)
        if not p.mean_volume(*zone) < float(p.volume.mean()):  # breaking into thin volume only
            return None
        width = vah - val
        if buy:
            above = [h for h in p.hvn if h > price]
            target, stop = (above[0] if above else vah + width / 2), vah - c.stop_atr * ind.atr
        else:
            below = [h for h in p.hvn if h < price]
            target, stop = (below[-1] if below else val - width / 2), val + c.stop_atr * ind.atr
        volume_excess = (ind.volume_ratio - c.breakout_volume_mult) / max(c.breakout_volume_mult, 1.0)
        return self.entry(
            analysis,
            buy,
            strength=clamp01(abs(price - (vah if buy else val)) / ind.atr),
            confidence=0.5 + 0.5 * clamp01(volume_excess),
            stop_loss=stop,
            take_profit=target,
            reason=(
                f"broke {'above VAH' if buy else 'below VAL'} {vah if buy else val:.6g} on "
                f"{ind.volume_ratio:.2f}x volume into a low-volume zone, target {target:.6g}"
            ),
            indicators={**_levels(p), "atr": ind.atr, "volume_ratio": ind.volume_ratio},
        )

    def value_area_targets(self, symbol: str, candles: Sequence[Candle]) -> dict[str, float] | None:
        """POC, VAL and VAH of the newest profile (for the API), or None without one."""
        ind = self.indicators(symbol, candles)
        return _levels(ind.profile) if ind.profile is not None else None

    def exit_signal(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> Signal | None:
        stop = float(position.stop_loss) if position.stop_loss else None
        target = float(position.take_profit) if position.take_profit else None
        ind = self.indicators(analysis.symbol, candles)
        if (stop is None or target is None) and ind.ready and ind.profile is not None:
            p, long = ind.profile, position_is_long(position)
            distance = self.config.stop_atr * ind.atr
            # without the entry's own levels: the value-area edge behind the entry, and the POC ahead of it
            stop = (
                stop
                if stop is not None
                else (p.value_area_low - distance if long else p.value_area_high + distance)
            )
            if target is None and (
                p.poc > float(position.entry_price) if long else p.poc < float(position.entry_price)
            ):
                target = p.poc
        if analysis.valid:
            exit_ = self.price_exit(analysis, position, stop, target)
            if exit_ is not None:
                return exit_
        return self.max_hold_exit(analysis, position)


def _levels(p: VolumeProfile) -> dict[str, float]:
    return {"poc": p.poc, "value_area_low": p.value_area_low, "value_area_high": p.value_area_high}
