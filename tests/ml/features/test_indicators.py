"""Indicator features #76–110 (docs/features.md §4): TA-Lib on exactly K(t), the compositions TA-Lib lacks, the
flat-window neutral values, and the properties of §8.2 for both candle channels (#51–110)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.features.candle_window import CandleWindow
from ml.features.candles import CANDLE_FEATURE_NAMES, candle_features
from ml.features.finite import NON_FINITE_REPLACED
from ml.features.indicators import INDICATOR_FEATURE_NAMES, indicator_features
from schemas.features import FEATURE_NAMES, FEATURE_UNITS, Unit
from testkit.rows import candles

MINUTE = 60_000
M_STAR = 12_345.5


def make_window(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, t: np.ndarray | None = None
) -> CandleWindow:
    n = len(c)
    return CandleWindow(
        start_ms=np.arange(n, dtype=np.int64) * MINUTE,
        open=np.asarray(o, dtype=np.float64),
        high=np.asarray(h, dtype=np.float64),
        low=np.asarray(lo, dtype=np.float64),
        close=np.asarray(c, dtype=np.float64),
        volume=np.asarray(v, dtype=np.float64),
        turnover=np.asarray(v, dtype=np.float64) * (np.asarray(h) + np.asarray(lo)) / 2 if t is None else t,
    )


def walk(n: int, seed: int, price: float = 64_000.0, sigma: float = 1e-3) -> CandleWindow:
    """A continuous random walk of one-minute candles with gaps, wicks and positive volumes."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    previous = np.concatenate(([price], close[:-1]))
    o = previous * np.where(rng.random(n) < 0.3, np.exp(rng.normal(0.0, sigma / 5, n)), 1.0)
    h = np.maximum(o, close) * (1 + rng.exponential(sigma / 2, n))
    lo = np.minimum(o, close) / (1 + rng.exponential(sigma / 2, n))
    v = rng.exponential(20.0, n)
    return make_window(o, h, lo, close, v, v * rng.uniform(lo, h))


def realistic(n: int = 200) -> list[CandleWindow]:
    return [CandleWindow.from_candles(candles(n, seed=s)) for s in (1, 2)] + [walk(n, s) for s in (1, 2, 3)]


# Stable ids (the same in every pytest-xdist worker): two recorded-like candle series, three random walks.
WINDOW_IDS = ["candles1", "candles2", "walk1", "walk2", "walk3"]


def named(values: np.ndarray) -> dict[str, float]:
    assert values.shape == (35,) and values.dtype == np.float64
    return dict(zip(INDICATOR_FEATURE_NAMES, values.tolist(), strict=True))


def close_to(expected: float) -> object:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_names_are_features_76_to_110() -> None:
    assert FEATURE_NAMES[75:] == INDICATOR_FEATURE_NAMES


# --- docs/features.md §8.1 example 9 -------------------------------------------------------------------------------


def test_example_9_cumulative_volume_indicators() -> None:
    c = np.array([100.0, 101.0, 100.5, 102.0])
    h, lo = np.array([100.5, 101.5, 101.2, 102.2]), np.array([99.5, 100.2, 100.1, 100.8])
    v = np.array([10.0, 8.0, 12.0, 6.0])
    f = named(indicator_features(make_window(c, h, lo, c, v), M_STAR))
    assert f["obv"] == close_to(2.0)
    assert talib.OBV(c, v)[-1] == 12.0  # TA-Lib starts from the first volume
    assert f["vpt"] == close_to(0.1101462982)
    assert f["nvi"] == close_to(1025.074627)
    assert f["ad_line"] == close_to(2.859140859)


# --- TA-Lib on exactly K(t) -----------------------------------------------------------------------------------

TALIB_CALLS: dict[str, Callable[[CandleWindow], float]] = {
    "sma_10": lambda k: talib.SMA(k.close, timeperiod=10)[-1],
    "sma_20": lambda k: talib.SMA(k.close, timeperiod=20)[-1],
    "sma_50": lambda k: talib.SMA(k.close, timeperiod=50)[-1],
    "ema_10": lambda k: talib.EMA(k.close, timeperiod=10)[-1],
    "ema_20": lambda k: talib.EMA(k.close, timeperiod=20)[-1],
    "ema_50": lambda k: talib.EMA(k.close, timeperiod=50)[-1],
    "macd": lambda k: talib.MACD(k.close, fastperiod=12, slowperiod=26, signalperiod=9)[0][-1],
    "macd_signal": lambda k: talib.MACD(k.close, fastperiod=12, slowperiod=26, signalperiod=9)[1][-1],
    "macd_histogram": lambda k: talib.MACD(k.close, fastperiod=12, slowperiod=26, signalperiod=9)[2][-1],
    "adx": lambda k: talib.ADX(k.high, k.low, k.close, timeperiod=14)[-1],
    "plus_di": lambda k: talib.PLUS_DI(k.high, k.low, k.close, timeperiod=14)[-1],
    "minus_di": lambda k: talib.MINUS_DI(k.high, k.low, k.close, timeperiod=14)[-1],
    "rsi_14": lambda k: talib.RSI(k.close, timeperiod=14)[-1],
    "rsi_28": lambda k: talib.RSI(k.close, timeperiod=28)[-1],
    "stochastic_k": lambda k: talib.STOCH(k.high, k.low, k.close, 5, 3, 0, 3, 0)[0][-1],
    "stochastic_d": lambda k: talib.STOCH(k.high, k.low, k.close, 5, 3, 0, 3, 0)[1][-1],
    "williams_r": lambda k: talib.WILLR(k.high, k.low, k.close, timeperiod=14)[-1],
    "cci": lambda k: talib.CCI(k.high, k.low, k.close, timeperiod=20)[-1],
    "momentum_10": lambda k: talib.MOM(k.close, timeperiod=10)[-1],
    "roc": lambda k: talib.ROC(k.close, timeperiod=10)[-1],
    "mfi": lambda k: talib.MFI(k.high, k.low, k.close, k.volume, timeperiod=14)[-1],
    "bollinger_upper": lambda k: talib.BBANDS(k.close, 20, 2, 2, 0)[0][-1],
    "bollinger_middle": lambda k: talib.BBANDS(k.close, 20, 2, 2, 0)[1][-1],
    "bollinger_lower": lambda k: talib.BBANDS(k.close, 20, 2, 2, 0)[2][-1],
    "atr_14": lambda k: talib.ATR(k.high, k.low, k.close, timeperiod=14)[-1],
    "ad_line": lambda k: talib.AD(k.high, k.low, k.close, k.volume)[-1],
}


@pytest.mark.parametrize("n", [200, 120, 60, 34])
def test_talib_features_equal_the_talib_call_on_the_same_arrays(n: int) -> None:
    before = sum(NON_FINITE_REPLACED.values())
    for k in realistic(n):
        f = named(indicator_features(k, M_STAR))
        for name, call in TALIB_CALLS.items():
            if n >= MIN_CANDLES[name]:
                assert f[name] == close_to(call(k)), name
    assert sum(NON_FINITE_REPLACED.values()) == before  # realistic data never needs a replacement (§1.5)


def ema(values: np.ndarray, n: int) -> list[float]:
    """§4 #79: seeded by the mean of the first n values, then E ← E + α·(x − E); one value per input from n on."""
    alpha, e = 2 / (n + 1), sum(values[:n]) / n
    out = [e]
    for x in values[n:]:
        e += alpha * (x - e)
        out.append(e)
    return out


@pytest.mark.parametrize("n", [200, 60, 34])
def test_ema_seeds_and_macd_alignment_follow_the_definition(n: int) -> None:
    k = walk(n, seed=5)
    c = k.close.tolist()
    f = named(indicator_features(k, M_STAR))
    for name, period in (("ema_10", 10), ("ema_20", 20), ("ema_50", 50)):
        if n >= period:
            assert f[name] == close_to(ema(k.close, period)[-1]), name
    # MACD: both EMAs start at the 26th candle s; the fast one from the mean of the 12 closes ending at s.
    slow = ema(k.close, 26)
    fast = ema(np.array(c[14:]), 12)
    macd = [a - b for a, b in zip(fast, slow, strict=True)]
    signal = ema(np.array(macd), 9)
    assert f["macd"] == close_to(macd[-1])
    assert f["macd_signal"] == close_to(signal[-1])
    assert f["macd_histogram"] == close_to(macd[-1] - signal[-1])
    if n < 100:  # a short window: not the difference of two #79-style EMAs
        assert abs(f["macd"] - (ema(k.close, 12)[-1] - slow[-1])) > 1e-6


def wilder(values: list[float], n: int) -> float:
    """Wilder's smoothing as TA-Lib seeds it: the mean of the first n values, then (A·(n − 1) + x)/n."""
    a = sum(values[:n]) / n
    for x in values[n:]:
        a = (a * (n - 1) + x) / n
    return a


@pytest.mark.parametrize("k", realistic(), ids=WINDOW_IDS)
def test_talib_features_match_their_textbook_formulas(k: CandleWindow) -> None:
    """Independent formulas for the TA-Lib features whose definition §4 spells out."""
    f = named(indicator_features(k, M_STAR))
    h, lo, c, v = (x.tolist() for x in (k.high, k.low, k.close, k.volume))
    assert f["sma_10"] == close_to(sum(c[-10:]) / 10)
    assert f["momentum_10"] == close_to(c[-1] - c[-11])
    assert f["roc"] == close_to(100 * (c[-1] / c[-11] - 1))
    diffs = [b - a for a, b in itertools.pairwise(c)]
    for name, period in (("rsi_14", 14), ("rsi_28", 28)):
        gain = wilder([max(d, 0.0) for d in diffs], period)
        loss = wilder([max(-d, 0.0) for d in diffs], period)
        assert f[name] == close_to(100 * gain / (gain + loss)), name
    true_range = [max(h[i], c[i - 1]) - min(lo[i], c[i - 1]) for i in range(1, len(c))]
    assert f["atr_14"] == close_to(wilder(true_range, 14))
    hh, ll = max(h[-14:]), min(lo[-14:])
    assert f["williams_r"] == close_to(-100 * (hh - c[-1]) / (hh - ll))
    n = len(c)
    fast_k = [
        100 * (c[i] - min(lo[i - 4 : i + 1])) / (max(h[i - 4 : i + 1]) - min(lo[i - 4 : i + 1]))
        for i in range(n - 5, n)
    ]
    slow_k = [sum(fast_k[i : i + 3]) / 3 for i in range(3)]
    assert f["stochastic_k"] == close_to(slow_k[-1])
    assert f["stochastic_d"] == close_to(sum(slow_k) / 3)
    tp = [(a + b + x) / 3 for a, b, x in zip(h, lo, c, strict=True)]
    mean_tp = sum(tp[-20:]) / 20
    deviation = sum(abs(x - mean_tp) for x in tp[-20:]) / 20
    assert f["cci"] == close_to((tp[-1] - mean_tp) / (0.015 * deviation))
    steps = range(len(tp) - 14, len(tp))
    positive = sum(tp[i] * v[i] for i in steps if tp[i] > tp[i - 1])
    negative = sum(tp[i] * v[i] for i in steps if tp[i] < tp[i - 1])
    assert f["mfi"] == close_to(100 * positive / (positive + negative))
    mean = sum(c[-20:]) / 20
    sigma = math.sqrt(sum((x - mean) ** 2 for x in c[-20:]) / 20)  # population, two-pass
    assert f["bollinger_middle"] == close_to(mean) and f["bollinger_middle"] == f["sma_20"]
    assert f["bollinger_upper"] == close_to(mean + 2 * sigma)
    assert f["bollinger_lower"] == close_to(mean - 2 * sigma)


# --- compositions TA-Lib lacks --------------------------------------------------------------------------------


def clv(h: float, lo: float, c: float) -> float:
    return ((c - lo) - (h - c)) / (h - lo) if h > lo else 0.0


@pytest.mark.parametrize("k", realistic(), ids=WINDOW_IDS)
def test_compositions_equal_their_direct_formulas(k: CandleWindow) -> None:
    f = named(indicator_features(k, M_STAR))
    h, lo, c, v, t = (x.tolist() for x in (k.high, k.low, k.close, k.volume, k.turnover))
    ema_20, atr_10 = talib.EMA(k.close, 20)[-1], talib.ATR(k.high, k.low, k.close, 10)[-1]
    assert f["keltner_upper"] == close_to(ema_20 + 2 * atr_10)
    assert f["keltner_lower"] == close_to(ema_20 - 2 * atr_10)
    assert f["vwap"] == close_to(sum(t[-60:]) / sum(v[-60:]))
    assert f["cmf"] == close_to(sum(clv(h[i], lo[i], c[i]) * v[i] for i in range(-20, 0)) / sum(v[-20:]))
    pairs = list(range(1, len(c)))
    obv = sum(math.copysign(v[i], c[i] - c[i - 1]) for i in pairs if c[i] != c[i - 1])
    assert f["obv"] == close_to(obv)
    assert f["obv"] == pytest.approx(talib.OBV(k.close, k.volume)[-1] - v[0], rel=1e-9, abs=1e-9 * max(v))
    assert f["vpt"] == close_to(sum(v[i] * (c[i] - c[i - 1]) / c[i - 1] for i in pairs))
    assert f["nvi"] == close_to(1000 * math.prod(c[i] / c[i - 1] for i in pairs if v[i] < v[i - 1]))
    assert f["ad_line"] == close_to(sum(clv(h[i], lo[i], c[i]) * v[i] for i in range(len(c))))
    upper, lower = f["bollinger_upper"], f["bollinger_lower"]
    assert f["bollinger_width"] == close_to((upper - lower) / f["bollinger_middle"])
    assert f["bollinger_pct"] == close_to((c[-1] - lower) / (upper - lower))


# --- defaults, short windows and flat windows -----------------------------------------------------------------

MIN_CANDLES = {  # docs/features.md §4, the "needs" column
    "sma_10": 10,
    "sma_20": 20,
    "sma_50": 50,
    "ema_10": 10,
    "ema_20": 20,
    "ema_50": 50,
    "macd": 34,
    "macd_signal": 34,
    "macd_histogram": 34,
    "adx": 28,
    "plus_di": 15,
    "minus_di": 15,
    "rsi_14": 15,
    "rsi_28": 29,
    "stochastic_k": 9,
    "stochastic_d": 9,
    "williams_r": 14,
    "cci": 20,
    "momentum_10": 11,
    "roc": 11,
    "mfi": 15,
    "bollinger_upper": 20,
    "bollinger_middle": 20,
    "bollinger_lower": 20,
    "bollinger_width": 20,
    "bollinger_pct": 20,
    "atr_14": 15,
    "keltner_upper": 20,
    "keltner_lower": 20,
    "obv": 2,
    "vwap": 60,
    "ad_line": 1,
    "cmf": 20,
    "vpt": 2,
    "nvi": 2,
}
PRICE_VALUED = {n for n in INDICATOR_FEATURE_NAMES if FEATURE_UNITS[n] is Unit.PRICE}
NEUTRAL = {"rsi_14": 50.0, "rsi_28": 50.0, "stochastic_k": 50.0, "stochastic_d": 50.0, "williams_r": -50.0}
NEUTRAL |= {"mfi": 50.0, "bollinger_pct": 0.5, "nvi": 1000.0}


def defaults(p_ref: float) -> dict[str, float]:
    return {name: p_ref if name in PRICE_VALUED else NEUTRAL.get(name, 0.0) for name in MIN_CANDLES}


def test_no_pin_gives_every_default_with_p_ref_m_star() -> None:
    assert named(indicator_features(CandleWindow.EMPTY, M_STAR)) == defaults(M_STAR)
    assert named(indicator_features(CandleWindow.EMPTY, 0.0)) == defaults(0.0)


def tail(k: CandleWindow, n: int) -> CandleWindow:
    return make_window(
        *(getattr(k, name)[len(k) - n :] for name in ("open", "high", "low", "close", "volume", "turnover"))
    )


@pytest.mark.parametrize("name", list(MIN_CANDLES))
def test_one_candle_short_gives_the_default_the_minimum_gives_the_value(name: str) -> None:
    k = walk(200, seed=13)
    need = MIN_CANDLES[name]
    at_minimum, short = tail(k, need), tail(k, need - 1)
    value = named(indicator_features(at_minimum, M_STAR))[name]
    default = defaults(M_STAR if need == 1 else float(k.close[-1]))[name]
    assert named(indicator_features(short, M_STAR))[name] == default
    assert value != default
    if name in TALIB_CALLS:  # the minimum is TA-Lib's lookback + 1
        assert value == close_to(TALIB_CALLS[name](at_minimum))
        if need > 1:
            assert math.isnan(TALIB_CALLS[name](short))


def flat(n: int, price: float = 101.3, volume: float = 5.0) -> CandleWindow:
    p = np.full(n, price)
    return make_window(p, p, p, p, np.full(n, volume))


@pytest.mark.parametrize("n", [35, 200])
def test_a_flat_window_gives_the_neutral_values(n: int) -> None:
    k = flat(n)
    f = named(indicator_features(k, M_STAR))
    for name, value in NEUTRAL.items():
        assert f[name] == value, name
    # …where TA-Lib itself returns an extreme 0:
    for name in ("rsi_14", "rsi_28", "stochastic_k", "stochastic_d", "williams_r", "mfi"):
        assert TALIB_CALLS[name](k) == 0.0, name
    assert f["adx"] == f["plus_di"] == f["minus_di"] == f["cci"] == f["atr_14"] == 0.0
    assert f["bollinger_width"] == 0.0 and f["bollinger_upper"] == f["bollinger_lower"] == close_to(101.3)
    assert f["obv"] == f["vpt"] == f["ad_line"] == f["cmf"] == 0.0


def with_flat_end(k: CandleWindow, n_flat: int, *, volume: float | None = None) -> CandleWindow:
    """`k` whose last `n_flat` candles are flat at the close before them (volume kept unless given)."""
    o, h, lo, c, v = (getattr(k, name).copy() for name in ("open", "high", "low", "close", "volume"))
    level = c[-n_flat - 1]
    for array in (o, h, lo, c):
        array[-n_flat:] = level
    if volume is not None:
        v[-n_flat:] = volume
    return make_window(o, h, lo, c, v)


def test_flat_five_candle_windows_give_fast_k_50_in_the_stochastic() -> None:
    k = with_flat_end(walk(60, seed=3), 6)  # the last 2 fastK windows are flat, 3 earlier ones are not
    h, lo, c = k.high.tolist(), k.low.tolist(), k.close.tolist()
    fast_k = []
    for i in range(len(c) - 5, len(c)):
        hh, ll = max(h[i - 4 : i + 1]), min(lo[i - 4 : i + 1])
        fast_k.append(50.0 if hh == ll else 100 * (c[i] - ll) / (hh - ll))
    assert fast_k[-2:] == [50.0, 50.0] and 50.0 not in fast_k[:3]
    slow_k = [sum(fast_k[i : i + 3]) / 3 for i in range(3)]
    f = named(indicator_features(k, M_STAR))
    assert f["stochastic_k"] == close_to(slow_k[-1])
    assert f["stochastic_d"] == close_to(sum(slow_k) / 3)
    assert f["stochastic_k"] != close_to(TALIB_CALLS["stochastic_k"](k))  # TA-Lib puts 0 there


def test_flat_windows_of_williams_r_mfi_and_bollinger() -> None:
    k = with_flat_end(walk(100, seed=4), 20)
    f = named(indicator_features(k, M_STAR))
    assert f["williams_r"] == -50.0 and f["bollinger_pct"] == 0.5 and f["bollinger_width"] == 0.0
    assert f["mfi"] == 50.0  # no typical price moved over the last 14 steps
    assert f["rsi_14"] == close_to(TALIB_CALLS["rsi_14"](k))  # earlier closes moved: Wilder's value, not 50
    assert 0.0 < f["rsi_14"] < 100.0
    # Volume stops while prices still move: PMF + NMF = 0 exactly, whatever TA-Lib's running sums hold.
    quiet = walk(100, seed=4)
    v = quiet.volume.copy()
    v[-14:] = 0.0
    stopped = make_window(quiet.open, quiet.high, quiet.low, quiet.close, v)
    assert named(indicator_features(stopped, M_STAR))["mfi"] == 50.0


def test_rsi_flat_rule_reads_the_closes_only() -> None:
    k = walk(40, seed=6)
    c = np.full(40, 100.0)
    ranged = make_window(
        c, np.maximum(c, k.high / k.close * 100), np.minimum(c, k.low / k.close * 100), c, k.volume
    )
    f = named(indicator_features(ranged, M_STAR))
    assert f["rsi_14"] == f["rsi_28"] == 50.0
    assert f["williams_r"] == close_to(TALIB_CALLS["williams_r"](ranged))  # highs and lows do move


def test_zero_volumes() -> None:
    k = walk(200, seed=7)
    quiet = make_window(k.open, k.high, k.low, k.close, np.zeros(200), np.zeros(200))
    f = named(indicator_features(quiet, M_STAR))
    assert f["obv"] == f["vpt"] == f["ad_line"] == f["cmf"] == 0.0
    assert f["vwap"] == float(k.close[-1])  # P_ref: Σ V = 0
    assert f["mfi"] == 50.0 and f["nvi"] == 1000.0  # no volume fell


# --- §8.2 properties for #51–110 ------------------------------------------------------------------------------

BOUNDS = {name: (0.0, 1.0) for name in ("upper_shadow", "lower_shadow", "body_size", "doji_strength")}
BOUNDS |= {"hammer_strength": (0.0, 1.0), "engulfing_strength": (-1.0, 1.0), "cmf": (-1.0, 1.0)}
BOUNDS |= {name: (0.0, 100.0) for name in ("adx", "plus_di", "minus_di", "rsi_14", "rsi_28", "mfi")}
BOUNDS |= {"stochastic_k": (0.0, 100.0), "stochastic_d": (0.0, 100.0), "williams_r": (-100.0, 0.0)}
NAMES = CANDLE_FEATURE_NAMES + INDICATOR_FEATURE_NAMES


def both_channels(k: CandleWindow, m_star: float) -> dict[str, float]:
    values = np.concatenate([candle_features(k, m_star), indicator_features(k, m_star)])
    return dict(zip(NAMES, values.tolist(), strict=True))


@st.composite
def adversarial_windows(draw: st.DrawFn) -> CandleWindow:
    """0–200 valid candles with prices from 1e-8 to 1e7, zero volumes, zero ranges and jumps."""
    n = draw(st.integers(0, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    price = 10 ** draw(st.floats(-8, 7))
    sigma = draw(st.sampled_from([0.0, 1e-12, 1e-6, 1e-3, 0.05, 1.0, 5.0]))
    p_flat, p_silent = draw(st.floats(0, 1)), draw(st.floats(0, 1))
    volume_scale = 10 ** draw(st.floats(-8, 8))
    close = np.clip(price * np.exp(np.cumsum(rng.normal(0.0, sigma, n))), 1e-8, 1e7)
    o = np.clip(np.concatenate(([price], close[:-1])) * np.exp(rng.normal(0.0, sigma / 3, n)), 1e-8, 1e7)
    h = np.minimum(np.maximum(o, close) * (1 + rng.exponential(sigma, n)), 1e7)
    lo = np.maximum(np.minimum(o, close) / (1 + rng.exponential(sigma, n)), 1e-8)
    flat = rng.random(n) < p_flat
    for array in (o, h, lo):
        array[flat] = close[flat]
    v = np.where(rng.random(n) < p_silent, 0.0, volume_scale * rng.exponential(1.0, n))
    return make_window(o, h, lo, close, v, v * rng.uniform(lo, h))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=adversarial_windows(), m_star=st.sampled_from([0.0, 1e-8, 3.3, 1e7]))
def test_adversarial_candles_give_60_finite_values_within_their_bounds(
    k: CandleWindow, m_star: float
) -> None:
    f = both_channels(k, m_star)
    assert all(math.isfinite(x) for x in f.values()), {n: x for n, x in f.items() if not math.isfinite(x)}
    for name, (low, high) in BOUNDS.items():
        assert low - 1e-9 <= f[name] <= high + 1e-9, (name, f[name])


# How each candle and indicator feature scales with prices (×p) and sizes (×q), from its unit.
PRICE_SCALED = {n for n in NAMES if FEATURE_UNITS[n] in (Unit.PRICE, Unit.PRICE_DIFF, Unit.USDT)}
SIZE_SCALED = {n for n in NAMES if FEATURE_UNITS[n] in (Unit.BASE, Unit.USDT)}


def scaled(k: CandleWindow, price: float = 1.0, size: float = 1.0) -> CandleWindow:
    return make_window(
        k.open * price,
        k.high * price,
        k.low * price,
        k.close * price,
        k.volume * size,
        k.turnover * price * size,
    )


def assert_scales(
    base: dict[str, float], other: dict[str, float], factor: float, scaled_names: set[str]
) -> None:
    """§8.2 with the two-implementation criterion of §1.6: abs(a − b) ≤ 1e-9·max(1, |a|, |b|)."""
    for name in NAMES:
        a, b = base[name] * (factor if name in scaled_names else 1.0), other[name]
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)), (name, a, b)


@pytest.mark.parametrize("factor", [3.7, 1e-5, 2.0**-20, 1e4])
def test_price_scale(factor: float) -> None:
    for k in [walk(200, s) for s in (1, 2)] + [walk(40, 3, price=0.05), walk(200, 4, price=3e4, sigma=0.02)]:
        assert_scales(
            both_channels(k, 1.0), both_channels(scaled(k, price=factor), factor), factor, PRICE_SCALED
        )


@pytest.mark.parametrize("factor", [3.7, 1e-5, 2.0**-20, 1e4])
def test_size_scale(factor: float) -> None:
    for k in [walk(200, s) for s in (1, 2)] + [
        walk(40, 3, price=0.05),
        with_flat_end(walk(80, 5), 15, volume=0.0),
    ]:
        assert_scales(both_channels(k, 1.0), both_channels(scaled(k, size=factor), 1.0), factor, SIZE_SCALED)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=adversarial_windows(), exponent=st.integers(-10, 10))
def test_power_of_two_scales_on_adversarial_candles(k: CandleWindow, exponent: int) -> None:
    factor = 2.0**exponent  # exact: no input is re-rounded, so only the criterion's slack is needed
    base = both_channels(k, 1.0)
    assert_scales(base, both_channels(scaled(k, size=factor), 1.0), factor, SIZE_SCALED)
    if float(k.low.min(initial=1.0)) * factor >= 1e-300:
        assert_scales(base, both_channels(scaled(k, price=factor), factor), factor, PRICE_SCALED)
