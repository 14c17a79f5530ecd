"""Temperature scaling recovers a known temperature and lowers ECE; it never changes the argmax."""

from __future__ import annotations

import numpy as np
import pytest

from ml.calibration import apply_temperature, calibrate, fit_binary_temperature, fit_temperature
from ml.evaluation import expected_calibration_error


def overconfident(n: int, true_t: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities softmax(z) of a model whose truth is softmax(z / true_t), and labels drawn from the truth."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, 3))
    truth = np.exp(z / true_t)
    truth /= truth.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > truth.cumsum(axis=1)).sum(axis=1)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True), y


def test_fit_temperature_recovers_the_truth_and_lowers_ece() -> None:
    p, y = overconfident(20_000, true_t=2.0)
    t = fit_temperature(p, y)
    assert t == pytest.approx(2.0, rel=0.1)
    scaled = apply_temperature(p, t)
    assert expected_calibration_error(scaled, y) < expected_calibration_error(p, y) / 2
    np.testing.assert_array_equal(scaled.argmax(axis=1), p.argmax(axis=1))


def test_calibrate_per_horizon_and_the_confidence_head() -> None:
    p1, y1 = overconfident(5000, 2.0, seed=1)
    p2, y2 = overconfident(5000, 0.5, seed=2)
    proba, y = np.stack([p1, p2], axis=1), np.stack([y1, y2], axis=1)
    right = (p1.argmax(axis=1) == y1).astype(float)
    logit = np.where(right > 0, 3.0, -3.0) + np.random.default_rng(3).normal(0, 4.0, 5000)
    cal = calibrate(proba, y, confidence_logit=logit)
    assert cal.temperatures[0] > 1.5 and cal.temperatures[1] < 0.7
    assert all(a < b for a, b in zip(cal.ece_after, cal.ece_before, strict=True))
    assert cal.confidence_ece_after is not None and cal.confidence_ece_before is not None
    assert cal.confidence_ece_after < cal.confidence_ece_before
    assert fit_binary_temperature(logit, right) == cal.confidence_temperature


def test_degenerate_folds_keep_temperature_one() -> None:
    p, _ = overconfident(100, 1.0)
    assert fit_temperature(p, np.zeros(100, dtype=int)) == 1.0  # one class: nothing to calibrate
    assert fit_temperature(p[:0], np.zeros(0, dtype=int)) == 1.0
    assert fit_binary_temperature(np.ones(10), np.ones(10)) == 1.0
