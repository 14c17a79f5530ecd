"""FeaturePreprocessor: row-local variants, a scaler fitted on training rows only, exact storage, finite output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ml.preprocessing import DEFAULT_CLIP, KINDS, FeaturePreprocessor, transform_kinds
from schemas.features import FEATURE_NAMES, FEATURE_UNITS, Unit, feature_spec

SPEC = feature_spec()
IX = {n: i for i, n in enumerate(FEATURE_NAMES)}


def realistic_rows(n: int, seed: int = 0) -> np.ndarray:
    """Rows with plausible magnitudes per kind: prices near 64 000, sizes, rates, ratios, bounded indices."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, len(FEATURE_NAMES)))
    mid = 64_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    close = mid * (1 + rng.normal(0, 2e-4, n))
    for name, kind in zip(FEATURE_NAMES, transform_kinds(FEATURE_NAMES), strict=True):
        c = IX[name]
        if kind == "bps_from_mid":
            x[:, c] = mid * (1 + rng.normal(0, 5e-4, n))
        elif kind == "frac_of_close":
            x[:, c] = close * (1 + rng.normal(0, 1e-3, n))
        elif kind in ("ratio_to_close", "spread_bps"):
            x[:, c] = rng.normal(0, 5, n)
        elif kind in ("depth_slog", "slog"):
            x[:, c] = rng.lognormal(2, 1.5, n) * rng.choice([-1, 1], n)
        elif kind == "log":
            x[:, c] = rng.lognormal(0, 0.5, n)
        elif kind == "log_nvi":
            x[:, c] = 1000 * rng.lognormal(0, 0.01, n)
    x[:, IX["mid_price"]] = mid
    x[:, IX["close"]] = close
    x[:, IX["depth_bid_10"]] = rng.lognormal(2, 0.5, n)
    x[:, IX["depth_ask_10"]] = rng.lognormal(2, 0.5, n)
    x[:, IX["bid_ask_spread_abs"]] = 0.1
    return x


def test_every_feature_has_a_known_kind_and_the_kinds_follow_features_md_7() -> None:
    kinds = dict(zip(FEATURE_NAMES, transform_kinds(FEATURE_NAMES), strict=True))
    assert set(kinds.values()) <= set(KINDS)
    assert kinds["vwap_bid_5"] == "bps_from_mid" and kinds["support_level_1"] == "bps_from_mid"
    assert kinds["sma_50"] == "frac_of_close" and kinds["mid_price"] == "frac_of_close"
    assert kinds["atr_14"] == "ratio_to_close" and kinds["order_flow_imbalance"] == "depth_slog"
    assert kinds["kyle_lambda"] == "slog" and kinds["nvi"] == "log_nvi" and kinds["book_depth_ratio"] == "log"
    assert kinds["imbalance_5"] == "identity" and kinds["rsi_14"] == "identity"


def test_no_feature_with_a_unit_of_scale_reaches_the_scaler_raw() -> None:
    """The kinds come from the units of schemas.features: every price, price difference, size, notional,
    rate and count is made relative or compressed; only dimensionless units pass as they are."""
    kinds = dict(zip(FEATURE_NAMES, transform_kinds(FEATURE_NAMES), strict=True))
    relative = {
        Unit.PRICE: {"bps_from_mid", "frac_of_close"},
        Unit.PRICE_DIFF: {"ratio_to_close", "spread_bps"},
    }
    compressed = {Unit.BASE, Unit.USDT, Unit.PER_SECOND, Unit.COUNT, Unit.BPS_PER_MUSDT}
    for name, unit in FEATURE_UNITS.items():
        if unit in relative:
            assert kinds[name] in relative[unit], name
        elif unit in compressed:
            assert kinds[name] in ("depth_slog", "slog"), name
        elif unit is Unit.RATIO:
            assert kinds[name] == "log", name
    exceptions = {n for n, u in FEATURE_UNITS.items() if u not in (*relative, *compressed, Unit.RATIO)}
    assert {n for n in exceptions if kinds[n] != "identity"} == {"volume_change_rate", "nvi"}


def test_row_local_values_by_hand() -> None:
    row = realistic_rows(1)[0]
    row[IX["mid_price"]], row[IX["close"]] = 64_000.0, 63_936.0
    row[IX["vwap_bid_5"]] = 63_990.0
    row[IX["sma_10"]] = 64_063.872
    row[IX["macd"]] = 12.7872
    row[IX["bid_ask_spread_abs"]] = 0.1
    row[IX["depth_bid_10"]], row[IX["depth_ask_10"]] = 3.0, 5.0
    row[IX["total_bid_volume"]] = -20.0
    row[IX["obv"]] = 1e6
    row[IX["book_depth_ratio"]] = 0.25
    row[IX["nvi"]] = 1100.0
    row[IX["rsi_14"]] = 61.5
    pre = FeaturePreprocessor.fit(realistic_rows(50), spec=SPEC)
    t = pre.row_local(row)
    assert t[IX["vwap_bid_5"]] == pytest.approx(1e4 * math.log(63_990 / 64_000), rel=1e-12)
    assert t[IX["mid_price"]] == pytest.approx(64_000 / 63_936 - 1, rel=1e-12)
    assert t[IX["close"]] == 0.0
    assert t[IX["sma_10"]] == pytest.approx(0.002, rel=1e-9)
    assert t[IX["macd"]] == pytest.approx(2e-4, rel=1e-9)
    assert t[IX["bid_ask_spread_abs"]] == pytest.approx(1e4 * 0.1 / 64_000, rel=1e-12)
    assert t[IX["total_bid_volume"]] == pytest.approx(-math.log1p(5.0), rel=1e-12)  # −20 / ((3 + 5)/2)
    assert t[IX["obv"]] == pytest.approx(math.log1p(1e6), rel=1e-12)
    assert t[IX["book_depth_ratio"]] == pytest.approx(math.log(0.25), rel=1e-12)
    assert t[IX["nvi"]] == pytest.approx(math.log(1.1), rel=1e-12)
    assert t[IX["rsi_14"]] == 61.5


def test_scaler_standardises_the_training_rows_only() -> None:
    train = realistic_rows(2000, seed=1)
    pre = FeaturePreprocessor.fit(train, spec=SPEC)
    z = pre.transform(train).astype(np.float64)
    live = ~pre.constant
    np.testing.assert_allclose(z[:, live].mean(axis=0), 0, atol=0.05)  # clipping at 10 σ moves it a hair
    np.testing.assert_allclose(z[:, live].std(axis=0), 1, atol=0.05)
    # test data from elsewhere is transformed with the training statistics, not its own
    test = realistic_rows(500, seed=2)
    test[:, IX["rsi_14"]] += 3.0
    zt = pre.transform(test)
    assert zt[:, IX["rsi_14"]].mean() > 2.0
    before = pre.to_dict()
    pre.transform(test * 7)  # applying never refits
    assert pre.to_dict() == before
    refit_other_test = FeaturePreprocessor.fit(train, spec=SPEC)
    assert refit_other_test.to_dict() == before


def test_constant_training_columns_are_output_as_zero() -> None:
    train = realistic_rows(300)
    train[:, IX["rsi_28"]] = 50.0
    pre = FeaturePreprocessor.fit(train, spec=SPEC)
    assert pre.constant[IX["rsi_28"]] and pre.constant[IX["close"]]  # close's variant is always 0
    test = realistic_rows(10, seed=5)
    test[:, IX["rsi_28"]] = 99.0
    assert (pre.transform(test)[:, IX["rsi_28"]] == 0).all()


def test_windows_and_rows_transform_alike() -> None:
    pre = FeaturePreprocessor.fit(realistic_rows(500), spec=SPEC)
    rows = realistic_rows(120, seed=3)
    windows = np.stack([rows[i : i + 60] for i in range(0, 60, 20)])
    out = pre.transform(windows)
    assert out.shape == (3, 60, 110) and out.dtype == np.float32
    for w in range(3):
        np.testing.assert_array_equal(out[w], pre.transform(rows[20 * w : 20 * w + 60]))
    assert pre.transform(rows[0]).shape == (110,)
    with pytest.raises(ValueError, match=r"\(\.\.\., 110\)"):
        pre.transform(rows[:, :100])


def test_round_trip_through_json_is_bit_exact() -> None:
    pre = FeaturePreprocessor.fit(realistic_rows(777, seed=4), spec=SPEC)
    d = json.loads(json.dumps(pre.to_dict()))
    back = FeaturePreprocessor.from_dict(d, expected_spec_hash=SPEC.spec_hash)
    assert back.to_dict() == pre.to_dict()
    np.testing.assert_array_equal(back.mean, pre.mean)
    np.testing.assert_array_equal(back.scale, pre.scale)
    x = realistic_rows(64, seed=8)
    assert back.transform(x).tobytes() == pre.transform(x).tobytes()
    assert back.spec_hash == SPEC.spec_hash


def test_load_refuses_another_spec_and_broken_dicts() -> None:
    pre = FeaturePreprocessor.fit(realistic_rows(50), spec=SPEC)
    other = feature_spec(500).spec_hash
    with pytest.raises(ValueError, match=f"fitted under feature spec {SPEC.spec_hash}.*{other}"):
        FeaturePreprocessor.from_dict(pre.to_dict(), expected_spec_hash=other)
    with pytest.raises(ValueError, match="refusing"):
        pre.check_spec(other)
    d = pre.to_dict()
    with pytest.raises(ValueError, match="not a FeaturePreprocessor"):
        FeaturePreprocessor.from_dict({**d, "type": "StandardScaler"})
    with pytest.raises(ValueError, match="format_version"):
        FeaturePreprocessor.from_dict({**d, "format_version": 99})
    with pytest.raises(ValueError, match="lacks"):
        FeaturePreprocessor.from_dict({k: v for k, v in d.items() if k != "mean"})
    with pytest.raises(ValueError, match="inconsistent"):
        FeaturePreprocessor.from_dict({**d, "mean": d["mean"][:-1]})
    with pytest.raises(ValueError, match="unknown row-local"):
        FeaturePreprocessor.from_dict({**d, "kinds": ["sqrt"] * 110})
    with pytest.raises(ValueError, match="scale > 0"):
        FeaturePreprocessor.from_dict({**d, "scale": [0.0] * 110})


def test_fit_refuses_bad_training_rows() -> None:
    x = realistic_rows(20)
    x[3, IX["kyle_lambda"]] = np.nan
    with pytest.raises(ValueError, match="training feature kyle_lambda of row 3 is not finite"):
        FeaturePreprocessor.fit(x, spec=SPEC)
    with pytest.raises(ValueError, match=r"\(R, 110\)"):
        FeaturePreprocessor.fit(np.zeros((5, 60, 110)), spec=SPEC)
    with pytest.raises(ValueError, match="at least one"):
        FeaturePreprocessor.fit(np.zeros((0, 110)), spec=SPEC)


def test_output_is_finite_on_adversarial_input() -> None:
    pre = FeaturePreprocessor.fit(realistic_rows(300), spec=SPEC)
    rng = np.random.default_rng(11)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -1.0, 1e-300, 3.4e38])
    x = rng.choice(specials, size=(400, 110))
    x[:50] = realistic_rows(50)
    x[50:60, IX["mid_price"]] = 0.0  # no reference mid
    x[60:70, IX["close"]] = -5.0  # nonsense close
    x[70:80, [IX["depth_bid_10"], IX["depth_ask_10"]]] = [1e308, 1e308]  # their mean overflows
    with np.errstate(all="raise"):  # no floating-point warning escapes either
        out = pre.transform(x)
        windows = pre.transform(x[:360].reshape(6, 60, 110))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out).max() <= DEFAULT_CLIP
    assert np.isfinite(windows).all()
    np.testing.assert_array_equal(
        out[:50], pre.transform(x[:50])
    )  # sane rows are unaffected by their neighbours
