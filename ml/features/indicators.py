"""Indicator features #76–110 of docs/features.md §4: TA-Lib on exactly K(t), oldest first, and the compositions
TA-Lib lacks.

TA-Lib is called with the window's float64 arrays at its library-default global settings; a feature is the
last element of the output. Each feature is computed only when K(t) holds its minimum number of candles
(TA-Lib lookback + 1, §4) and otherwise takes its default. Where TA-Lib returns a misleading extreme on a
window without price movement, the neutral value of §4 replaces it under the exact condition stated there.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import talib

from ml.features.candle_window import CandleWindow
from ml.features.candles import check_m_star
from ml.features.finite import replace_non_finite
from schemas.features import CHANNEL_BOUNDS, FEATURE_NAMES, FEATURE_PARAMETERS, PRICE_FEATURES

FIRST_INDEX, _END = CHANNEL_BOUNDS["indicator"]
INDICATOR_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES[FIRST_INDEX:_END]
N_INDICATOR_FEATURES = len(INDICATOR_FEATURE_NAMES)

_P = FEATURE_PARAMETERS
SMA_10, SMA_20, SMA_50 = _P["SMA_PERIODS"]
EMA_10, EMA_20, EMA_50 = _P["EMA_PERIODS"]
MACD_FAST, MACD_SLOW, MACD_SIGNAL = _P["MACD"]["fast"], _P["MACD"]["slow"], _P["MACD"]["signal"]
ADX_PERIOD: int = _P["ADX_DI_PERIOD"]
RSI_SHORT, RSI_LONG = _P["RSI_PERIODS"]
STOCH_FASTK, STOCH_SLOWK, STOCH_SLOWD = _P["STOCH"]["fastk"], _P["STOCH"]["slowk"], _P["STOCH"]["slowd"]
WILLR_PERIOD: int = _P["WILLR_PERIOD"]
CCI_PERIOD: int = _P["CCI_PERIOD"]
MOM_ROC_PERIOD: int = _P["MOM_ROC_PERIOD"]
MFI_PERIOD: int = _P["MFI_PERIOD"]
BB_PERIOD, BB_UP, BB_DN = _P["BBANDS"]["period"], _P["BBANDS"]["nbdevup"], _P["BBANDS"]["nbdevdn"]
ATR_PERIOD: int = _P["ATR_PERIOD"]
KELTNER_EMA, KELTNER_ATR, KELTNER_MULT = (
    _P["KELTNER"]["ema"],
    _P["KELTNER"]["atr"],
    _P["KELTNER"]["multiplier"],
)
VWAP_WINDOW: int = _P["VWAP_WINDOW"]
CMF_PERIOD: int = _P["CMF_PERIOD"]
NVI_BASE = float(_P["NVI_BASE"])
if (
    _P["STOCH"]["slowk_matype"] != "SMA"
    or _P["STOCH"]["slowd_matype"] != "SMA"
    or _P["BBANDS"]["matype"] != "SMA"
):
    raise ImportError("ml.features.indicators implements STOCH and BBANDS with SMA smoothing only")
# TA-Lib's compiled functions without the Python wrapper that converts pandas and polars Series: on a
# 200-candle window the wrapper costs more than the C call, and the arrays here are float64 numpy already.
_TALIB_USED = (
    "SMA",
    "EMA",
    "MACD",
    "ADX",
    "PLUS_DI",
    "MINUS_DI",
    "RSI",
    "STOCH",
    "WILLR",
    "CCI",
    "MOM",
    "ROC",
    "MFI",
    "BBANDS",
    "ATR",
    "AD",
)
_ta: Any = SimpleNamespace(
    **{name: getattr(getattr(talib, name), "__wrapped__", getattr(talib, name)) for name in _TALIB_USED}
)
_SMA: Any = 0  # TA-Lib MA_Type.SMA (an int at run time; the stubs call it an Enum)

# Minimum candles per feature (§4 "inputs"): TA-Lib's lookback + 1.
MACD_MIN = MACD_SLOW + MACD_SIGNAL - 1
ADX_MIN = 2 * ADX_PERIOD
STOCH_MIN = STOCH_FASTK + STOCH_SLOWK + STOCH_SLOWD - 2

_ORDER = INDICATOR_FEATURE_NAMES  # the order in which the values are listed: the spec's
_I = {name: i for i, name in enumerate(_ORDER)}

_PRICE_VALUED = tuple(n for n in _ORDER if n in PRICE_FEATURES)  # default to P_ref (§4)
_NEUTRAL = {"rsi_14": 50.0, "rsi_28": 50.0, "stochastic_k": 50.0, "stochastic_d": 50.0, "williams_r": -50.0}
_NEUTRAL |= {"mfi": 50.0, "bollinger_pct": 0.5, "nvi": NVI_BASE}
_IS_PRICE = np.array([name in _PRICE_VALUED for name in _ORDER])
_FIXED_DEFAULTS = np.array([_NEUTRAL.get(name, 0.0) for name in _ORDER])


def indicator_defaults(p_ref: float) -> np.ndarray:
    """The default column of §4: P_ref for price-valued indicators, the neutral values, else 0."""
    return np.where(_IS_PRICE, p_ref, _FIXED_DEFAULTS)


def _slow_stochastic(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> tuple[float, float]:
    """slowK and slowD at k_0 (#90, #91) from the last STOCH_MIN candles.

    TA-Lib STOCH gives fastK = 0 on a 5-candle window whose highest high equals its lowest low; §4 uses the
    neutral 50 there. TA-Lib computes the value whenever no window involved is flat; otherwise the same
    arithmetic (fastK = (C − LL)/((HH − LL)/100), then two 3-candle SMAs) runs here with the neutral value.
    """
    n_fast = STOCH_SLOWK + STOCH_SLOWD - 1  # fastK values that slowD at k_0 depends on
    highs, lows = high[-STOCH_MIN:].tolist(), low[-STOCH_MIN:].tolist()
    hh = [max(highs[i : i + STOCH_FASTK]) for i in range(n_fast)]
    ll = [min(lows[i : i + STOCH_FASTK]) for i in range(n_fast)]
    if all(a != b for a, b in zip(hh, ll, strict=True)):
        slow_k, slow_d = _ta.STOCH(
            high,
            low,
            close,
            fastk_period=STOCH_FASTK,
            slowk_period=STOCH_SLOWK,
            slowk_matype=_SMA,
            slowd_period=STOCH_SLOWD,
            slowd_matype=_SMA,
        )
        return float(slow_k[-1]), float(slow_d[-1])
    closes = close[-n_fast:].tolist()
    fast_k = [50.0 if a == b else (x - b) / ((a - b) / 100.0) for a, b, x in zip(hh, ll, closes, strict=True)]
    slow_k = [sum(fast_k[i : i + STOCH_SLOWK]) / STOCH_SLOWK for i in range(STOCH_SLOWD)]
    return slow_k[-1], sum(slow_k) / STOCH_SLOWD


def indicator_features(k: CandleWindow, m_star: float) -> np.ndarray:
    """Features #76–110 for a row with candle window `k` and reference mid `m_star`, shape (35,) float64."""
    m_star = check_m_star(m_star)
    n = len(k)
    p_ref = float(k.close[-1]) if n else m_star
    defaults = indicator_defaults(p_ref)
    out = defaults.copy()
    if n == 0:
        return out
    h, lo, c, v, t = k.high, k.low, k.close, k.volume, k.turnover

    # Trend (#76–87)
    for name, period in (("sma_10", SMA_10), ("sma_20", SMA_20), ("sma_50", SMA_50)):
        if n >= period:
            out[_I[name]] = _ta.SMA(c, timeperiod=period)[-1]
    for name, period in (("ema_10", EMA_10), ("ema_20", EMA_20), ("ema_50", EMA_50)):
        if n >= period:
            out[_I[name]] = _ta.EMA(c, timeperiod=period)[-1]
    if n >= MACD_MIN:
        macd, signal, hist = _ta.MACD(c, fastperiod=MACD_FAST, slowperiod=MACD_SLOW, signalperiod=MACD_SIGNAL)
        out[_I["macd"]], out[_I["macd_signal"]], out[_I["macd_histogram"]] = macd[-1], signal[-1], hist[-1]
    if n >= ADX_MIN:
        out[_I["adx"]] = _ta.ADX(h, lo, c, timeperiod=ADX_PERIOD)[-1]
    if n > ADX_PERIOD:
        out[_I["plus_di"]] = _ta.PLUS_DI(h, lo, c, timeperiod=ADX_PERIOD)[-1]
        out[_I["minus_di"]] = _ta.MINUS_DI(h, lo, c, timeperiod=ADX_PERIOD)[-1]

    # Momentum (#88–96)
    closes_moved = c.min() != c.max()  # TA-Lib's RSI is 0, not neutral, when no close of K(t) moved
    for name, period in (("rsi_14", RSI_SHORT), ("rsi_28", RSI_LONG)):
        if n > period and closes_moved:
            out[_I[name]] = _ta.RSI(c, timeperiod=period)[-1]
    if n >= STOCH_MIN:
        out[_I["stochastic_k"]], out[_I["stochastic_d"]] = _slow_stochastic(h, lo, c)
    if n >= WILLR_PERIOD and h[-WILLR_PERIOD:].max() != lo[-WILLR_PERIOD:].min():
        out[_I["williams_r"]] = _ta.WILLR(h, lo, c, timeperiod=WILLR_PERIOD)[-1]
    if n >= CCI_PERIOD:
        out[_I["cci"]] = _ta.CCI(h, lo, c, timeperiod=CCI_PERIOD)[-1]
    if n > MOM_ROC_PERIOD:
        out[_I["momentum_10"]] = _ta.MOM(c, timeperiod=MOM_ROC_PERIOD)[-1]
        out[_I["roc"]] = _ta.ROC(c, timeperiod=MOM_ROC_PERIOD)[-1]
    tp = (h + lo + c) / 3.0  # TA-Lib's typical price, same operation order
    if n > MFI_PERIOD:
        now, before = tp[-MFI_PERIOD:], tp[-MFI_PERIOD - 1 : -1]
        flow = now * v[-MFI_PERIOD:]
        # Summed exactly here: TA-Lib keeps running sums, which can leave a residue after volume stops.
        if flow[now != before].sum() != 0.0:
            out[_I["mfi"]] = _ta.MFI(h, lo, c, v, timeperiod=MFI_PERIOD)[-1]

    # Volatility (#97–104)
    if n >= BB_PERIOD:
        upper, middle, lower = _ta.BBANDS(c, timeperiod=BB_PERIOD, nbdevup=BB_UP, nbdevdn=BB_DN, matype=_SMA)
        band_up, band_mid, band_low = float(upper[-1]), float(middle[-1]), float(lower[-1])
        out[_I["bollinger_upper"]], out[_I["bollinger_middle"]] = band_up, band_mid
        out[_I["bollinger_lower"]] = band_low
        if band_mid != 0.0:
            out[_I["bollinger_width"]] = (band_up - band_low) / band_mid
        if band_up != band_low:  # else the neutral 0.5 (§4 #101)
            out[_I["bollinger_pct"]] = (float(c[-1]) - band_low) / (band_up - band_low)
    if n > ATR_PERIOD:
        out[_I["atr_14"]] = _ta.ATR(h, lo, c, timeperiod=ATR_PERIOD)[-1]
    if n >= max(KELTNER_EMA, KELTNER_ATR + 1):
        ema = float(_ta.EMA(c, timeperiod=KELTNER_EMA)[-1])
        band = KELTNER_MULT * float(_ta.ATR(h, lo, c, timeperiod=KELTNER_ATR)[-1])
        out[_I["keltner_upper"]], out[_I["keltner_lower"]] = ema + band, ema - band

    # Volume (#105–110): cumulative ones summed oldest first over K(t) (cumsum is sequential)
    with np.errstate(all="ignore"):  # overflow on absurd inputs becomes inf, replaced below
        if n >= 2:
            step = np.diff(c)
            out[_I["obv"]] = np.cumsum(np.sign(step) * v[1:])[-1]
            out[_I["vpt"]] = np.cumsum(v[1:] * step / c[:-1])[-1]
            fell = v[1:] < v[:-1]
            out[_I["nvi"]] = np.cumprod(np.concatenate(([NVI_BASE], c[1:][fell] / c[:-1][fell])))[-1]
        if n >= VWAP_WINDOW:
            volume = float(v[-VWAP_WINDOW:].sum())
            if volume > 0.0:
                out[_I["vwap"]] = float(t[-VWAP_WINDOW:].sum()) / volume
        out[_I["ad_line"]] = _ta.AD(h, lo, c, v)[-1]
        if n >= CMF_PERIOD:
            hi_, lo_, c_, v_ = h[-CMF_PERIOD:], lo[-CMF_PERIOD:], c[-CMF_PERIOD:], v[-CMF_PERIOD:]
            span = hi_ - lo_
            clv = np.divide((c_ - lo_) - (hi_ - c_), span, out=np.zeros(CMF_PERIOD), where=span > 0.0)
            volume = float(v_.sum())
            if volume > 0.0:
                out[_I["cmf"]] = float((clv * v_).sum()) / volume
    return replace_non_finite(out, defaults, FIRST_INDEX)
