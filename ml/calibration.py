"""Temperature scaling (Guo et al. 2017), fitted on the validation fold.

A classifier's probabilities p become softmax(ln p / T): one positive number T per horizon, chosen to
minimise the validation log-loss. T > 1 softens over-confident probabilities, T < 1 sharpens timid ones;
the argmax, hence accuracy and macro-F1, never changes, so calibration cannot buy a metric the gate
promotes on except log-loss and ECE. Because ln p equals the logits up to a per-row constant, the same T
divides a network's logits exactly (``HybridCNNLSTM.temperature``, the served baselines'
``temperature``), which is how a calibrated model is saved and served.

The confidence head gets its own binary temperature: sigmoid(logit / T_c) against "the primary horizon's
predicted direction was right" on the validation fold.

The fit is a bounded scalar minimisation over ln T in [ln 0.05, ln 20] (scipy); a validation fold with
a single class or no samples keeps T = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from ml.evaluation.metrics import PROBA_CLIP, binary_ece, clip_probabilities, expected_calibration_error

T_MIN, T_MAX = 0.05, 20.0


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def apply_temperature(proba: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """softmax(ln p / T) over the last axis; ``temperature`` a scalar or one per horizon (…, H, 3)."""
    t = np.asarray(temperature, dtype=np.float64)
    logp = np.log(clip_probabilities(proba))
    return _softmax(logp / (t[..., None] if t.ndim else t))


def _nll(logp: np.ndarray, y: np.ndarray, t: float) -> float:
    q = _softmax(logp / t)
    return float(-np.mean(np.log(np.maximum(q[np.arange(len(y)), y], PROBA_CLIP))))


def fit_temperature(proba_h: np.ndarray, y_h: np.ndarray) -> float:
    """The T minimising the log-loss of one horizon's (n, 3) probabilities against the true classes."""
    y = np.asarray(y_h, dtype=np.int64)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return 1.0
    logp = np.log(clip_probabilities(proba_h))
    res = minimize_scalar(
        lambda u: _nll(logp, y, float(np.exp(u))),
        bounds=(np.log(T_MIN), np.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    t = float(np.exp(res.x))
    return t if _nll(logp, y, t) <= _nll(logp, y, 1.0) else 1.0


def fit_binary_temperature(logit: np.ndarray, outcome: np.ndarray) -> float:
    """The T minimising the binary log-loss of sigmoid(logit / T) against 0/1 outcomes."""
    z = np.asarray(logit, dtype=np.float64)
    o = np.asarray(outcome, dtype=np.float64)
    if len(o) == 0 or o.min() == o.max():
        return 1.0

    def nll(u: float) -> float:
        s = z / np.exp(u)
        # log(1 + e^{-s}) for o = 1, log(1 + e^{s}) for o = 0, computed stably
        return float(np.mean(np.logaddexp(0.0, -s) * o + np.logaddexp(0.0, s) * (1 - o)))

    res = minimize_scalar(
        nll, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded", options={"xatol": 1e-4}
    )
    t = float(np.exp(res.x))
    return t if nll(np.log(t)) <= nll(0.0) else 1.0


@dataclass(frozen=True)
class Calibration:
    """Per-horizon temperatures, the confidence head's temperature, and the validation ECE before/after."""

    temperatures: tuple[float, ...]
    confidence_temperature: float = 1.0
    ece_before: tuple[float, ...] = ()
    ece_after: tuple[float, ...] = ()
    confidence_ece_before: float | None = None
    confidence_ece_after: float | None = None
    n_validation: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperatures": list(self.temperatures),
            "confidence_temperature": self.confidence_temperature,
            "validation_ece_before": list(self.ece_before),
            "validation_ece_after": list(self.ece_after),
            "validation_confidence_ece_before": self.confidence_ece_before,
            "validation_confidence_ece_after": self.confidence_ece_after,
            "n_validation": self.n_validation,
        }


def calibrate(
    proba_val: np.ndarray,
    y_val: np.ndarray,
    *,
    confidence_logit: np.ndarray | None = None,
    primary_horizon: int = 0,
) -> Calibration:
    """Fit the temperatures on validation probabilities (n, H, 3) and classes (n, H); with the
    confidence head's logits, its binary temperature too (target: the primary horizon was right)."""
    p = np.asarray(proba_val, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    if p.ndim != 3 or y.shape != p.shape[:2]:
        raise ValueError(
            f"calibrate needs probabilities (n, H, 3) and classes (n, H), got {p.shape}, {y.shape}"
        )
    temps = tuple(fit_temperature(p[:, k], y[:, k]) for k in range(p.shape[1]))
    if len(y) == 0:
        return Calibration(temps)
    before = tuple(expected_calibration_error(p[:, k], y[:, k]) for k in range(p.shape[1]))
    scaled = apply_temperature(p, np.asarray(temps))
    after = tuple(expected_calibration_error(scaled[:, k], y[:, k]) for k in range(p.shape[1]))
    conf_t, conf_before, conf_after = 1.0, None, None
    if confidence_logit is not None:
        right = (p[:, primary_horizon].argmax(axis=1) == y[:, primary_horizon]).astype(np.float64)
        z = np.asarray(confidence_logit, dtype=np.float64)
        conf_t = fit_binary_temperature(z, right)
        conf_before = binary_ece(1 / (1 + np.exp(-z)), right)
        conf_after = binary_ece(1 / (1 + np.exp(-z / conf_t)), right)
    return Calibration(temps, conf_t, before, after, conf_before, conf_after, len(y))
