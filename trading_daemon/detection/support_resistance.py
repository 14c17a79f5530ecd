"""Support and resistance: DBSCAN over the swing points of the 1-minute candles, strength, breakouts.

Rule (docs/detection.md §4), recomputed on every closed candle from the newest SR_LOOKBACK_CANDLES:

* swing points: a candle whose high (low) is the highest high (lowest low) of SR_SWING_WINDOW candles
  on either side, and strictly above (below) those before it (a plateau counts once);
* levels: scikit-learn's DBSCAN over the swing prices with eps = SR_CLUSTER_EPS_PCT % of the last close
  and min_samples = SR_MIN_TOUCHES; a cluster is a zone (its lowest .. highest swing) around its
  volume-weighted centre; support below the last close, resistance above;
* strength in [0, 1]: 0.5 x touches (saturating at 5), 0.25 x the volume of its swing candles against
  the average candle (saturating at twice), 0.25 x recency (halving over half the lookback); the
  SR_MAX_LEVELS strongest are kept;
* breakout: a candle closing SR_BREAKOUT_PCT % beyond a zone it had not closed beyond before, on at
  least SR_BREAKOUT_VOLUME_MULTIPLIER x the mean volume of the 20 candles before it. A close beyond the
  zone on less volume is counted as an unconfirmed breakout and reported nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.cluster import DBSCAN

from infra.settings import DetectionConfig
from schemas.detection import Detection, DetectionKind, LevelKind, SupportResistanceLevel
from schemas.enums import Side
from schemas.market import Candle

VOLUME_BASELINE = 20  # candles whose mean volume validates a breakout


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def swing_points(highs: np.ndarray, lows: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of swing highs and swing lows (see the module docstring)."""
    n = len(highs)
    if n < 2 * window + 1:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    view = np.lib.stride_tricks.sliding_window_view
    centre = np.arange(window, n - window)
    high_max = view(highs, 2 * window + 1).max(axis=1)
    low_min = view(lows, 2 * window + 1).min(axis=1)
    left_high = view(highs[:-1], window).max(axis=1)[: len(centre)]  # the `window` candles before each centre
    left_low = view(lows[:-1], window).min(axis=1)[: len(centre)]
    is_high = (highs[centre] >= high_max) & (highs[centre] > left_high)
    is_low = (lows[centre] <= low_min) & (lows[centre] < left_low)
    return centre[is_high], centre[is_low]


class SupportResistanceDetector:
    """Levels and breakouts of one symbol from its closed 1-minute candles."""

    def __init__(self, symbol: str, config: DetectionConfig) -> None:
        self.symbol = symbol
        self.config = config
        self._candles: dict[int, Candle] = {}
        self._levels: list[SupportResistanceLevel] = []
        self._broken: list[tuple[float, float, Side, int]] = []  # zone low, high, direction, candle start
        self._last_start: int | None = None
        self.breakouts = 0
        self.unconfirmed_breakouts = 0

    def levels(self) -> list[SupportResistanceLevel]:
        """The current levels, lowest price first."""
        return list(self._levels)

    def nearest(self, price: float) -> tuple[SupportResistanceLevel | None, SupportResistanceLevel | None]:
        """The nearest zone at or below `price` and the nearest at or above it."""
        below = [lv for lv in self._levels if lv.price <= price]
        above = [lv for lv in self._levels if lv.price >= price]
        return (max(below, key=lambda lv: lv.price) if below else None), (
            min(above, key=lambda lv: lv.price) if above else None
        )

    def on_candles(self, candles: Sequence[Candle], now_ms: int) -> list[Detection]:
        """Take closed candles (any order; a re-sent one replaces its start); the breakouts they make.

        A batch (the start-up history) only computes the levels; each newer candle is first checked
        against the levels of the candles before it, then the levels are recomputed.
        """
        fresh = sorted(
            (c for c in candles if c.symbol == self.symbol and c.confirmed), key=lambda c: c.start_ms
        )
        if not fresh:
            return []
        found: list[Detection] = []
        if self._last_start is None:
            for candle in fresh:
                self._candles[candle.start_ms] = candle
            self._last_start = fresh[-1].start_ms
            self._recompute()
            return found
        for candle in fresh:
            newer = candle.start_ms > self._last_start
            self._candles[candle.start_ms] = candle
            if not newer:
                continue  # a correction of an older candle: it only enters the next computation
            breakout = self._check_breakout(candle, now_ms)
            if breakout is not None:
                found.append(breakout)
            self._last_start = candle.start_ms
            self._recompute()
        return found

    # -- internals -----------------------------------------------------------------------------------

    def _window(self) -> list[Candle]:
        keep = self.config.sr_lookback_candles + VOLUME_BASELINE
        starts = sorted(self._candles)
        for start in starts[:-keep]:
            del self._candles[start]
        return [self._candles[s] for s in starts[-keep:]]

    def _recompute(self) -> None:
        c = self.config
        candles = self._window()[-c.sr_lookback_candles :]
        if len(candles) < 2 * c.sr_swing_window + 1:
            self._levels = []
            return
        highs = np.array([k.high for k in candles])
        lows = np.array([k.low for k in candles])
        volumes = np.array([k.volume for k in candles])
        starts = np.array([k.start_ms for k in candles], dtype=np.int64)
        high_idx, low_idx = swing_points(highs, lows, c.sr_swing_window)
        index = np.concatenate([high_idx, low_idx])
        if len(index) < c.sr_min_touches:
            self._levels = []
            return
        prices = np.concatenate([highs[high_idx], lows[low_idx]])
        last = candles[-1]
        computed_ms = last.start_ms + last.interval_ms
        eps = c.sr_cluster_eps_pct / 100 * last.close
        labels = DBSCAN(eps=eps, min_samples=c.sr_min_touches).fit_predict(prices.reshape(-1, 1))
        mean_volume = float(volumes.mean()) if len(volumes) else 0.0
        half_life_ms = c.sr_lookback_candles * last.interval_ms / 2
        levels = []
        for label in set(labels.tolist()) - {-1}:
            members = labels == label
            zone, at = prices[members], index[members]
            weights = volumes[at]
            centre = float(np.average(zone, weights=weights)) if weights.sum() > 0 else float(zone.mean())
            first, last_touch = int(starts[at].min()), int(starts[at].max())
            volume_score = float(weights.mean()) / (2 * mean_volume) if mean_volume > 0 else 0.0
            recency = math.exp(-math.log(2) * (computed_ms - last_touch) / half_life_ms)
            strength = 0.5 * _unit((len(zone) - 1) / 4) + 0.25 * _unit(volume_score) + 0.25 * recency
            low, high = float(zone.min()), float(zone.max())
            levels.append(
                SupportResistanceLevel(
                    symbol=self.symbol,
                    kind=LevelKind.SUPPORT if centre <= last.close else LevelKind.RESISTANCE,
                    price=min(max(centre, low), high),
                    price_low=low,
                    price_high=high,
                    strength=round(_unit(strength), 4),
                    touches=len(zone),
                    volume=float(weights.sum()),
                    first_touch_ms=first,
                    last_touch_ms=last_touch,
                    computed_ms=computed_ms,
                    broken_ms=self._broken_since(low, high, last_touch),
                )
            )
        levels.sort(key=lambda lv: lv.strength, reverse=True)
        self._levels = sorted(levels[: c.sr_max_levels], key=lambda lv: lv.price)

    def _broken_since(self, low: float, high: float, since_ms: int) -> int | None:
        times = [t for lo, hi, _, t in self._broken if lo <= high and low <= hi and t > since_ms]
        return max(times) if times else None

    def _check_breakout(self, candle: Candle, now_ms: int) -> Detection | None:
        c = self.config
        previous = self._candles.get(candle.start_ms - candle.interval_ms)
        if previous is None or not self._levels:
            return None
        margin = c.sr_breakout_pct / 100
        before = [k for s, k in sorted(self._candles.items()) if s < candle.start_ms][-VOLUME_BASELINE:]
        mean_volume = sum(k.volume for k in before) / len(before) if before else 0.0
        ratio = candle.volume / mean_volume if mean_volume > 0 else math.inf
        for level in sorted(self._levels, key=lambda lv: -lv.strength):
            up_edge, down_edge = level.price_high * (1 + margin), level.price_low * (1 - margin)
            if candle.close > up_edge >= previous.close:
                direction = Side.BUY
            elif candle.close < down_edge <= previous.close:
                direction = Side.SELL
            else:
                continue
            if any(
                lo == level.price_low and hi == level.price_high and d is direction
                for lo, hi, d, _ in self._broken
            ):
                continue
            if ratio < c.sr_breakout_volume_multiplier:
                self.unconfirmed_breakouts += 1
                continue
            self._broken.append((level.price_low, level.price_high, direction, candle.start_ms))
            self._broken = self._broken[-100:]
            self.breakouts += 1
            excess = (ratio - c.sr_breakout_volume_multiplier) / max(c.sr_breakout_volume_multiplier, 1e-9)
            end_ms = candle.start_ms + candle.interval_ms
            return Detection(
                detection_id=f"{self.symbol}:breakout:{direction}:{candle.start_ms}",
                symbol=self.symbol,
                kind=DetectionKind.BREAKOUT,
                side=direction,
                price_low=level.price_low,
                price_high=level.price_high,
                start_ms=candle.start_ms,
                end_ms=end_ms,
                detected_ms=max(now_ms, end_ms),
                updated_ms=max(now_ms, end_ms),
                confidence=round(_unit(0.5 + 0.25 * level.strength + 0.25 * _unit(excess)), 4),
                evidence={
                    "level_price": level.price,
                    "level_kind": str(level.kind),
                    "touches": level.touches,
                    "strength": level.strength,
                    "close": candle.close,
                    "previous_close": previous.close,
                    "volume": candle.volume,
                    "volume_ratio": round(ratio, 4) if math.isfinite(ratio) else -1.0,
                },
            )
        return None
