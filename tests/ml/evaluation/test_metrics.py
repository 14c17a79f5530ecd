"""Evaluation metrics (ml.evaluation.metrics): per-horizon metrics against direct computation, the report, and the promotion rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ml.evaluation import (
    PROBA_CLIP,
    PROMOTION_METRIC,
    EvaluationReport,
    beats,
    clip_probabilities,
    horizon_metrics,
)

HORIZONS = (10, 30, 60)


def random_case(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([1.0, 2.0, 1.0], size=(n, 3))
    y = rng.choice(3, size=(n, 3), p=[0.3, 0.4, 0.3])
    return proba, y


def direct_macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    scores = []
    for c in sorted(set(y.tolist()) | set(pred.tolist())):
        tp = int(((pred == c) & (y == c)).sum())
        fp = int(((pred == c) & (y != c)).sum())
        fn = int(((pred != c) & (y == c)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * p * r / (p + r) if p + r else 0.0)
    return sum(scores) / len(scores)


def test_metrics_equal_direct_computation() -> None:
    proba, y = random_case()
    proba[0, 0] = [1.0, 0.0, 0.0]  # a zero probability exercises the clip
    y[0, 0] = 2
    rows = horizon_metrics(proba, y, HORIZONS)
    assert [r.horizon_s for r in rows] == list(HORIZONS)
    for k, r in enumerate(rows):
        pred = proba[:, k].argmax(axis=1)
        assert r.n == len(y)
        assert r.accuracy == pytest.approx(float((pred == y[:, k]).mean()), abs=1e-12)
        assert r.macro_f1 == pytest.approx(direct_macro_f1(y[:, k], pred), abs=1e-12)
        p = np.clip(proba[:, k], PROBA_CLIP, 1.0)
        p /= p.sum(axis=1, keepdims=True)
        expected = -np.mean(np.log(p[np.arange(len(y)), y[:, k]]))
        assert r.log_loss == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(rows[0].log_loss)  # the confident miss costs ln(1e15), not infinity


def test_clip_probabilities_renormalises() -> None:
    p = clip_probabilities(np.array([[1.0, 0.0, 0.0], [0.2, 0.2, 0.2]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (p > 0).all()
    np.testing.assert_allclose(p[1], [1 / 3] * 3)


def test_majority_baseline_figures() -> None:
    # truth: 50 down, 120 flat, 30 up at every horizon; the baseline learnt class shares 25/60/15 % on train
    y = np.repeat(np.array([0] * 50 + [1] * 120 + [2] * 30)[:, None], 3, axis=1)
    shares = np.array([0.25, 0.60, 0.15])
    proba = np.broadcast_to(shares, (200, 3, 3)).copy()
    report = EvaluationReport(HORIZONS)
    rows = report.add("majority", proba, y)
    for r in rows:
        assert r.accuracy == pytest.approx(0.6)
        # only "flat" is ever predicted: P = 0.6, R = 1, F1 = 0.75; down and up score 0
        assert r.macro_f1 == pytest.approx(0.75 / 3)
        assert r.log_loss == pytest.approx(
            -(0.25 * math.log(0.25) + 0.6 * math.log(0.6) + 0.15 * math.log(0.15))
        )


def test_report_rows_dict_and_text() -> None:
    proba, y = random_case(300, seed=1)
    report = EvaluationReport(HORIZONS)
    report.add("hybrid_cnn_lstm", proba, y)
    report.add("majority", np.broadcast_to([0.3, 0.4, 0.3], proba.shape).copy(), y)
    with pytest.raises(ValueError, match="already has a row"):
        report.add("majority", proba, y)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["horizons_s"] == [10, 30, 60]
    assert set(d["models"]) == {"hybrid_cnn_lstm", "majority"}
    assert d["models"]["majority"]["30s"]["accuracy"] == report.rows["majority"][1].accuracy
    flat = report.metrics("hybrid_cnn_lstm")
    assert set(flat) == {f"{m}_{h}s" for m in ("accuracy", "macro_f1", "log_loss", "ece") for h in HORIZONS}
    assert flat[PROMOTION_METRIC] == report.rows["hybrid_cnn_lstm"][0].macro_f1
    text = report.render()
    assert len(text.splitlines()) == 2 + 6
    assert "hybrid_cnn_lstm" in text and "majority" in text and "60s" in text
    with pytest.raises(KeyError, match="no evaluation"):
        report.metrics("logistic")


def test_bad_inputs_raise() -> None:
    proba, y = random_case(10)
    with pytest.raises(ValueError, match=r"\(n, H, 3\)"):
        horizon_metrics(proba[:, :, :2], y, HORIZONS)
    with pytest.raises(ValueError, match="true classes must be"):
        horizon_metrics(proba, y[:, :2], HORIZONS)
    with pytest.raises(ValueError, match="0 \\(down\\)"):
        horizon_metrics(proba, y - 1, HORIZONS)
    with pytest.raises(ValueError, match="finite"):
        horizon_metrics(np.full_like(proba, np.nan), y, HORIZONS)
    with pytest.raises(ValueError, match="horizons named"):
        horizon_metrics(proba, y, (10, 30))
    with pytest.raises(ValueError, match="no samples"):
        horizon_metrics(proba[:0], y[:0], HORIZONS)


def test_beats_is_strict_and_knows_which_way_is_better() -> None:
    prod = {"macro_f1_10s": 0.40, "log_loss_10s": 1.00}
    assert beats({"macro_f1_10s": 0.41}, prod)
    assert not beats({"macro_f1_10s": 0.40}, prod)  # a tie keeps production
    assert not beats({"macro_f1_10s": 0.39}, prod)
    assert not beats({"macro_f1_10s": 0.405}, prod, min_improvement=0.01)
    assert beats({"log_loss_10s": 0.9}, prod, metric="log_loss_10s")
    assert not beats({"log_loss_10s": 1.1}, prod, metric="log_loss_10s")
    assert beats({"macro_f1_10s": 0.0}, None)  # nothing in production yet
    with pytest.raises(ValueError, match="candidate has no metric"):
        beats({}, prod)
    with pytest.raises(ValueError, match="production model has no metric"):
        beats({"accuracy_10s": 0.5}, prod, metric="accuracy_10s")
    with pytest.raises(ValueError, match="not finite"):
        beats({"macro_f1_10s": float("nan")}, prod)


def test_ece_of_calibrated_and_overconfident_predictions() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    top = rng.uniform(0.4, 0.95, n)
    proba = np.stack([top, (1 - top) / 2, (1 - top) / 2], axis=1)
    hit = rng.random(n) < top  # right exactly as often as it says
    y = np.where(hit, 0, rng.integers(1, 3, n))
    calibrated = horizon_metrics(proba[:, None, :], y[:, None], (10,))[0].ece
    y_over = np.where(rng.random(n) < top - 0.2, 0, rng.integers(1, 3, n))  # right 20 points less often
    over = horizon_metrics(proba[:, None, :], y_over[:, None], (10,))[0].ece
    assert calibrated < 0.02 and over == pytest.approx(0.2, abs=0.02)
