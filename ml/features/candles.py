"""Candle features #51–75 of docs/features.md §3: functions of the candle window K(t) and, for defaults, of m*(t).

k_0 is the last element of the window's arrays, k_1 the one before. Every feature needs a minimum number of
candles (the "inputs" column of §3) and takes its default with fewer; price-valued defaults are
P_ref = C_0 with a pin, else m*(t) (§1.3). None of these is in TA-Lib in this form, so each is written here
once, from its definition.
"""

from __future__ import annotations

import math

import numpy as np

from ml.features.candle_window import CandleWindow
from ml.features.finite import replace_non_finite
from schemas.features import CHANNEL_BOUNDS, FEATURE_NAMES, FEATURE_PARAMETERS

FIRST_INDEX, _END = CHANNEL_BOUNDS["candle"]
CANDLE_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES[FIRST_INDEX:_END]
N_CANDLE_FEATURES = len(CANDLE_FEATURE_NAMES)

LOOKBACK: int = FEATURE_PARAMETERS["CANDLE_LOOKBACK"]
VOLUME_CHANGE_CAP: float = float(FEATURE_PARAMETERS["VOLUME_CHANGE_CAP"])
DOJI_BODY_FRAC: float = FEATURE_PARAMETERS["DOJI_BODY_FRAC"]
HAMMER_BODY_MULT: float = FEATURE_PARAMETERS["HAMMER_BODY_MULT"]
HAMMER_SHADOW_MULT: float = FEATURE_PARAMETERS["HAMMER_SHADOW_MULT"]

_LN2 = math.log(2.0)
_GK_CLOSE_WEIGHT = 2.0 * _LN2 - 1.0

_ORDER = CANDLE_FEATURE_NAMES  # the order in which the values are listed: the spec's

_PRICE_DEFAULTED = np.array([name in {"open", "high", "low", "close", "typical_price"} for name in _ORDER])
_VWP = _ORDER.index("volume_weighted_price")
_VOLUME_MA_RATIO = _ORDER.index("volume_ma_ratio")


def check_m_star(m_star: float) -> float:
    """m*(t) as a float; it is never undefined (§1.1: 0 when there is no book and no trade yet)."""
    value = float(m_star)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"m_star (the row's reference mid) must be finite and >= 0, got {m_star!r}")
    return value


def candle_defaults(p_ref: float, typical_price: float | None = None) -> np.ndarray:
    """The default column of §3 for this row: P_ref for the prices, 1 for volume_ma_ratio, else 0.

    `typical_price` is TP_0 with a pin, the default of volume_weighted_price when V_0 = 0.
    """
    defaults = np.where(_PRICE_DEFAULTED, p_ref, 0.0)
    defaults[_VOLUME_MA_RATIO] = 1.0
    defaults[_VWP] = p_ref if typical_price is None else typical_price
    return defaults


def candle_features(k: CandleWindow, m_star: float) -> np.ndarray:
    """Features #51–75 for a row with candle window `k` and reference mid `m_star`, shape (25,) float64."""
    m_star = check_m_star(m_star)
    n = len(k)
    if n == 0:
        return candle_defaults(m_star)

    o0, h0, l0, c0 = float(k.open[-1]), float(k.high[-1]), float(k.low[-1]), float(k.close[-1])
    v0, t0 = float(k.volume[-1]), float(k.turnover[-1])
    r0 = h0 - l0
    tp0 = (h0 + l0 + c0) / 3.0

    upper = lower = body = doji = hammer = 0.0
    if r0 > 0.0:
        upper = (h0 - max(o0, c0)) / r0
        lower = (min(o0, c0) - l0) / r0
        body = abs(c0 - o0) / r0
        doji = max(0.0, 1.0 - body / DOJI_BODY_FRAC)
        if lower >= HAMMER_BODY_MULT * body:
            hammer = max(0.0, lower - HAMMER_SHADOW_MULT * upper)

    returns = log_returns = volume_change = money_flow = engulfing = gap = 0.0
    if n >= 2:
        o1, h1, l1, c1 = float(k.open[-2]), float(k.high[-2]), float(k.low[-2]), float(k.close[-2])
        v1 = float(k.volume[-2])
        ratio = c0 / c1
        returns = ratio - 1.0
        log_returns = math.log(ratio) if ratio > 0.0 else math.nan  # 0 only by underflow: default
        if v1 > 0.0:
            volume_change = min(VOLUME_CHANGE_CAP, (v0 - v1) / v1)
        tp1 = (h1 + l1 + c1) / 3.0
        if tp0 > tp1:
            money_flow = tp0 * v0
        elif tp0 < tp1:
            money_flow = -(tp0 * v0)
        body_0, body_1 = abs(c0 - o0), abs(c1 - o1)
        if c1 < o1 and c0 > o0 and o0 <= c1 and c0 >= o1 and body_0 > body_1:
            engulfing = body
        elif c1 > o1 and c0 < o0 and o0 >= c1 and c0 <= o1 and body_0 > body_1:
            engulfing = -body
        gap = (o0 - c1) / c1

    realized = parkinson = garman_klass = price_volume_trend = 0.0
    volume_ma_ratio = 1.0
    if n >= LOOKBACK:
        with np.errstate(all="ignore"):  # overflow on absurd inputs becomes inf, replaced below
            hl = np.log(k.high[-LOOKBACK:] / k.low[-LOOKBACK:]) ** 2
            co = np.log(k.close[-LOOKBACK:] / k.open[-LOOKBACK:]) ** 2
            parkinson = math.sqrt(float(hl.sum()) / (4.0 * LOOKBACK * _LN2))
            garman_klass = math.sqrt(max(0.0, float(np.mean(0.5 * hl - _GK_CLOSE_WEIGHT * co))))
            mean_volume = float(np.mean(k.volume[-LOOKBACK:]))
            if mean_volume > 0.0:
                volume_ma_ratio = v0 / mean_volume
            if n > LOOKBACK:
                now, before = k.close[-LOOKBACK:], k.close[-LOOKBACK - 1 : -1]
                realized = math.sqrt(float(np.mean(np.log(now / before) ** 2)))
                price_volume_trend = float((k.volume[-LOOKBACK:] * (now - before) / before).sum())

    values = np.array(
        [
            o0,
            h0,
            l0,
            c0,
            v0,
            tp0,
            returns,
            log_returns,
            r0 / c0,
            (c0 - o0) / o0,
            upper,
            lower,
            body,
            realized,
            parkinson,
            garman_klass,
            volume_ma_ratio,
            volume_change,
            price_volume_trend,
            t0 / v0 if v0 > 0.0 else tp0,
            money_flow,
            doji,
            hammer,
            engulfing,
            gap,
        ],
        dtype=np.float64,
    )
    return replace_non_finite(values, candle_defaults(c0, tp0), FIRST_INDEX)
