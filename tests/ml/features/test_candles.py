"""Candle features #51–75 (docs/features.md §3) against the worked example 8 and direct formulas written here."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import talib

from ml.features.candle_window import CandleWindow
from ml.features.candles import CANDLE_FEATURE_NAMES, candle_features
from ml.features.finite import NON_FINITE_REPLACED
from schemas.features import FEATURE_NAMES
from schemas.market import Candle
from testkit.rows import T0_MS, candles

MINUTE = 60_000
M_STAR = 12_345.5


def window(rows: list[tuple[float, float, float, float]], volumes: list[float] | None = None) -> CandleWindow:
    """A window from (O, H, L, C) tuples, oldest first; turnover = V·(H + L)/2."""
    volumes = volumes if volumes is not None else [1.0] * len(rows)
    return CandleWindow(
        start_ms=np.arange(len(rows), dtype=np.int64) * MINUTE,
        open=np.array([r[0] for r in rows]),
        high=np.array([r[1] for r in rows]),
        low=np.array([r[2] for r in rows]),
        close=np.array([r[3] for r in rows]),
        volume=np.array(volumes, dtype=np.float64),
        turnover=np.array([v * (r[1] + r[2]) / 2 for r, v in zip(rows, volumes, strict=True)]),
    )


def walk(n: int, seed: int, price: float = 64_000.0) -> list[Candle]:
    """A continuous random walk with gaps between candles (the fixture's candles open at the last close)."""
    rng = random.Random(seed)
    out, close = [], price
    for i in range(n):
        o = close * (1 + rng.gauss(0, 2e-4)) if rng.random() < 0.3 else close
        c = o * math.exp(rng.gauss(0, 1e-3))
        h, lo = max(o, c) * (1 + rng.expovariate(2e3)), min(o, c) * (1 - rng.expovariate(2e3))
        v = rng.expovariate(0.05)
        out.append(
            Candle(symbol="BTCUSDT", start_ms=T0_MS + i * MINUTE, open=o, high=h, low=lo, close=c, volume=v,
                   turnover=v * rng.uniform(lo, h))
        )  # fmt: skip
        close = c
    return out


def named(values: np.ndarray) -> dict[str, float]:
    assert values.shape == (25,) and values.dtype == np.float64
    return dict(zip(CANDLE_FEATURE_NAMES, values.tolist(), strict=True))


def close_to(expected: float) -> object:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_names_are_features_51_to_75() -> None:
    assert FEATURE_NAMES[50:75] == CANDLE_FEATURE_NAMES


# --- docs/features.md §8.1 example 8 -------------------------------------------------------------------------------


def test_example_8_candle_shape() -> None:
    f = named(candle_features(window([(100.0, 101.0, 99.5, 99.8), (99.7, 100.6, 99.6, 100.5)]), M_STAR))
    assert f["returns"] == close_to(0.007014028056)
    assert f["log_returns"] == close_to(0.006989544182)
    assert f["high_low_range"] == close_to(0.009950248756)
    assert f["close_open_diff"] == close_to(0.008024072217)
    assert (f["body_size"], f["upper_shadow"], f["lower_shadow"]) == (
        close_to(0.8),
        close_to(0.1),
        close_to(0.1),
    )
    assert f["engulfing_strength"] == close_to(0.8)
    assert f["gap_size"] == close_to(-0.001002004008)
    assert (f["doji_strength"], f["hammer_strength"]) == (0.0, 0.0)


def test_example_8_hammer() -> None:
    f = named(candle_features(window([(100.0, 100.1, 99.0, 100.05)]), M_STAR))
    assert f["hammer_strength"] == close_to(9 / 11)
    assert f["doji_strength"] == close_to(6 / 11)
    assert f["body_size"] == close_to(1 / 22) and f["upper_shadow"] == close_to(1 / 22)


# --- direct formulas on a realistic window ----------------------------------------------------------------------


def reference(data: list[Candle]) -> dict[str, float]:
    """Every candle feature written straight from docs/features.md §3 with Python floats (k_0 = data[-1])."""
    k0, k1 = data[-1], data[-2]
    last20, prev20 = data[-20:], data[-21:-1]
    r = k0.high - k0.low
    tp = [(c.high + c.low + c.close) / 3 for c in (k1, k0)]
    b, u, lo = (
        abs(k0.close - k0.open) / r,
        (k0.high - max(k0.open, k0.close)) / r,
        (min(k0.open, k0.close) - k0.low) / r,
    )
    rho = [math.log(c.close / p.close) for c, p in zip(last20, prev20, strict=True)]
    hl = [math.log(c.high / c.low) for c in last20]
    co = [math.log(c.close / c.open) for c in last20]
    wider = abs(k0.close - k0.open) > abs(k1.close - k1.open)
    bullish = (
        k1.close < k1.open and k0.close > k0.open and k0.open <= k1.close and k0.close >= k1.open and wider
    )
    bearish = (
        k1.close > k1.open and k0.close < k0.open and k0.open >= k1.close and k0.close <= k1.open and wider
    )
    return {
        "open": k0.open,
        "high": k0.high,
        "low": k0.low,
        "close": k0.close,
        "volume": k0.volume,
        "typical_price": tp[1],
        "returns": k0.close / k1.close - 1,
        "log_returns": math.log(k0.close / k1.close),
        "high_low_range": r / k0.close,
        "close_open_diff": (k0.close - k0.open) / k0.open,
        "upper_shadow": u,
        "lower_shadow": lo,
        "body_size": b,
        "realized_volatility": math.sqrt(sum(x * x for x in rho) / 20),
        "parkinson_volatility": math.sqrt(sum(x * x for x in hl) / (4 * 20 * math.log(2))),
        "garman_klass_volatility": math.sqrt(
            max(
                0.0,
                sum(0.5 * h * h - (2 * math.log(2) - 1) * c * c for h, c in zip(hl, co, strict=True)) / 20,
            )
        ),
        "volume_ma_ratio": k0.volume / (sum(c.volume for c in last20) / 20),
        "volume_change_rate": min(100.0, (k0.volume - k1.volume) / k1.volume),
        "price_volume_trend": sum(
            c.volume * (c.close - p.close) / p.close for c, p in zip(last20, prev20, strict=True)
        ),
        "volume_weighted_price": k0.turnover / k0.volume,
        "money_flow": math.copysign(tp[1] * k0.volume, tp[1] - tp[0]) if tp[1] != tp[0] else 0.0,
        "doji_strength": max(0.0, 1 - b / 0.1),
        "hammer_strength": max(0.0, lo - 2 * u) if lo >= 2 * b else 0.0,
        "engulfing_strength": b if bullish else -b if bearish else 0.0,
        "gap_size": (k0.open - k1.close) / k1.close,
    }


@pytest.mark.parametrize("data", [candles(200, seed=1), candles(200, seed=2), walk(200, 1), walk(200, 2)])
def test_every_feature_equals_its_direct_formula(data: list[Candle]) -> None:
    before = sum(NON_FINITE_REPLACED.values())
    f = named(candle_features(CandleWindow.from_candles(data), M_STAR))
    expected = reference(data)
    assert f.keys() == expected.keys()
    for name in f:
        assert f[name] == close_to(expected[name]), name
    assert sum(NON_FINITE_REPLACED.values()) == before  # realistic data never needs a replacement (§1.5)
    assert f["upper_shadow"] + f["lower_shadow"] + f["body_size"] == close_to(1.0)


def test_patterns_over_many_candle_pairs() -> None:
    """Shapes sum to 1, the strengths stay in their bounds, and engulfing has TA-Lib's sign when non-zero."""
    data = walk(3000, seed=21)
    fired = 0
    for i in range(2, len(data)):
        f = named(candle_features(CandleWindow.from_candles(data[i - 1 : i + 1]), M_STAR))
        for name in ("doji_strength", "hammer_strength", "upper_shadow", "lower_shadow", "body_size"):
            assert -1e-12 <= f[name] <= 1 + 1e-12, name
        if f["engulfing_strength"]:
            fired += 1
            three = data[i - 2 : i + 1]
            o, h, lo, c = (np.array([getattr(x, n) for x in three]) for n in ("open", "high", "low", "close"))
            assert np.sign(talib.CDLENGULFING(o, h, lo, c)[-1]) == np.sign(f["engulfing_strength"])
    assert fired > 100


@pytest.mark.parametrize(
    ("candle", "doji", "hammer"),
    [
        ((100.0, 101.0, 99.0, 100.0), 1.0, 0.0),  # a cross: doji; upper = lower shadow kills the hammer
        ((100.0, 100.0, 99.0, 100.0), 1.0, 1.0),  # a dragonfly (O = C = H): a perfect hammer
        ((100.0, 100.1, 99.0, 100.05), 6 / 11, 9 / 11),  # example 8
        ((100.0, 100.2, 99.0, 100.0), 1.0, 0.5),  # hammer: l − 2u = 1/1.2·(1 − 0.4)
        ((100.0, 100.5, 99.0, 100.0), 1.0, 0.0),  # upper shadow at half the lower one: 0
        (
            (100.0, 101.0, 99.0, 100.2),
            0.0,
            0.0,
        ),  # body = 10 % of the range: doji 0, lower 0.5 ≥ 2·0.1 but 2u > l
        ((100.0, 100.0, 100.0, 100.0), 0.0, 0.0),  # flat: strengths 0
    ],
)
def test_doji_and_hammer_definitions(
    candle: tuple[float, float, float, float], doji: float, hammer: float
) -> None:
    f = named(candle_features(window([candle]), M_STAR))
    assert f["doji_strength"] == close_to(doji)
    assert f["hammer_strength"] == close_to(hammer)


def test_engulfing_directions() -> None:
    bullish = [(100.0, 100.1, 99.7, 99.8), (99.7, 100.6, 99.6, 100.5)]
    bearish = [(99.8, 100.1, 99.7, 100.0), (100.1, 100.2, 99.4, 99.5)]
    equal_bodies = [(100.0, 100.1, 99.7, 99.8), (99.8, 100.1, 99.7, 100.0)]
    assert named(candle_features(window(bullish), M_STAR))["engulfing_strength"] == close_to(0.8 / 1.0)
    assert named(candle_features(window(bearish), M_STAR))["engulfing_strength"] == close_to(-0.6 / 0.8)
    assert named(candle_features(window(equal_bodies), M_STAR))["engulfing_strength"] == 0.0


# --- defaults and short windows ---------------------------------------------------------------------------------

MIN_CANDLES = {  # docs/features.md §3, the "needs" column
    **dict.fromkeys(("open", "high", "low", "close", "volume", "typical_price"), 1),
    **dict.fromkeys(("high_low_range", "close_open_diff", "upper_shadow", "lower_shadow", "body_size"), 1),
    **dict.fromkeys(("volume_weighted_price", "doji_strength", "hammer_strength"), 1),
    **dict.fromkeys(("returns", "log_returns", "volume_change_rate", "money_flow"), 2),
    **dict.fromkeys(("engulfing_strength", "gap_size"), 2),
    **dict.fromkeys(("parkinson_volatility", "garman_klass_volatility", "volume_ma_ratio"), 20),
    **dict.fromkeys(("realized_volatility", "price_volume_trend"), 21),
}


def defaults(p_ref: float) -> dict[str, float]:
    """The default column of §3 (vwp: m* without a pin; the pinned case is TP_0, tested separately)."""
    prices = ("open", "high", "low", "close", "typical_price", "volume_weighted_price")
    return {
        name: p_ref if name in prices else 1.0 if name == "volume_ma_ratio" else 0.0 for name in MIN_CANDLES
    }


def test_no_pin_gives_every_default_with_p_ref_m_star() -> None:
    assert named(candle_features(CandleWindow.EMPTY, M_STAR)) == defaults(M_STAR)
    assert named(candle_features(CandleWindow.EMPTY, 0.0)) == defaults(0.0)


@pytest.mark.parametrize("name", sorted(MIN_CANDLES))
def test_one_candle_short_gives_the_default_the_minimum_gives_the_value(name: str) -> None:
    need = MIN_CANDLES[name]
    # Some features are 0 on most candles (the patterns): end the data where this one is not its default.
    data = walk(400, seed=8)
    data = next(
        data[: i + 1]
        for i in range(30, len(data))
        if reference(data[: i + 1])[name] != defaults(M_STAR)[name]
    )
    full = reference(data)  # values with every requirement met: correct whenever `need` candles are there
    at_minimum = named(candle_features(CandleWindow.from_candles(data[-need:]), M_STAR))
    assert at_minimum[name] == close_to(full[name])
    # One candle fewer: the empty window (P_ref = m*) or a pinned one (P_ref = C_0).
    short = named(candle_features(CandleWindow.from_candles(data[len(data) - need + 1 :]), M_STAR))
    default = defaults(M_STAR if need == 1 else data[-1].close)[name]
    assert short[name] == default
    assert at_minimum[name] != default  # the value is real, not the default by chance


def test_zero_volumes() -> None:
    rows = [(100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i) for i in range(25)]
    f = named(candle_features(window(rows, [0.0] * 25), M_STAR))
    assert f["volume"] == 0.0 and f["volume_ma_ratio"] == 1.0 and f["volume_change_rate"] == 0.0
    assert f["price_volume_trend"] == 0.0 and f["money_flow"] == 0.0
    assert f["volume_weighted_price"] == close_to((125.0 + 123.0 + 124.5) / 3)  # TP_0 when V_0 = 0
    rising = named(candle_features(window(rows[:2], [0.0, 5.0]), M_STAR))
    assert rising["volume_change_rate"] == 0.0  # V_1 = 0: the default, not infinity
    capped = named(candle_features(window(rows[:2], [0.01, 5.0]), M_STAR))
    assert capped["volume_change_rate"] == 100.0  # VOLUME_CHANGE_CAP


def test_flat_candles() -> None:
    f = named(candle_features(window([(7.0, 7.0, 7.0, 7.0)] * 21), M_STAR))
    for name in (
        "upper_shadow",
        "lower_shadow",
        "body_size",
        "doji_strength",
        "hammer_strength",
        "high_low_range",
    ):
        assert f[name] == 0.0, name
    for name in (
        "realized_volatility",
        "parkinson_volatility",
        "garman_klass_volatility",
        "returns",
        "gap_size",
    ):
        assert f[name] == 0.0, name
    assert f["close"] == 7.0 and f["typical_price"] == 7.0


@pytest.mark.parametrize("m_star", [float("nan"), float("inf"), -1.0])
def test_m_star_must_be_finite_and_non_negative(m_star: float) -> None:
    with pytest.raises(ValueError, match="m_star"):
        candle_features(CandleWindow.EMPTY, m_star)
