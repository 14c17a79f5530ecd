"""Classification metrics per horizon, the comparison table of a model against its baselines, and the
promotion rule.

Inputs everywhere: probabilities (n, H, 3) ordered down/flat/up and true classes (n, H) in {0, 1, 2}.

* accuracy: share of argmax predictions equal to the truth;
* macro-F1: the unweighted mean of the per-class F1 over the classes present in the truth or the
  predictions (sklearn's default label set; a class nobody predicts and nobody has is not averaged in);
  a class predicted but never true scores 0 rather than warning;
* log-loss: mean −ln p(true class) with each row clipped to [1e-15, 1] and renormalised (so a confident
  miss costs ln(1e15) ≈ 34.5 instead of infinity), over all three classes even when one is absent;
* expected calibration error (ECE): the top-label ECE over ``ECE_BINS`` (15) equal-width bins of the
  predicted class's probability, Σ_b (n_b/n)·|accuracy_b − mean probability_b| (Guo et al. 2017); the
  same on a binary confidence (``binary_ece``: the confidence head against "the direction was right").

Promotion (``beats``): the agreed metric is the **10 s macro-F1 on the test fold** (``PROMOTION_METRIC``):
it weighs the rare up/down classes as much as the frequent flat one, which accuracy does not, and the 10 s
horizon is the one the daemon trades on. A candidate must be strictly better by more than
``min_improvement``; a tie keeps the production model (a swap has a cost and no evidence of gain).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss

from schemas.model import N_CLASSES

PROBA_CLIP = 1e-15
PROMOTION_METRIC = "macro_f1_10s"
METRICS = ("accuracy", "macro_f1", "log_loss", "ece")
LOWER_IS_BETTER = frozenset({"log_loss", "ece"})
ECE_BINS = 15


def _check(proba: np.ndarray, y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true)
    if p.ndim != 3 or p.shape[2] != N_CLASSES:
        raise ValueError(f"probabilities must be (n, H, {N_CLASSES}), got {p.shape}")
    if y.shape != p.shape[:2]:
        raise ValueError(f"true classes must be (n, H) = {p.shape[:2]}, got {y.shape}")
    if p.shape[0] == 0:
        raise ValueError("no samples to evaluate")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and >= 0")
    if not np.issubdtype(y.dtype, np.integer) or not np.isin(y, (0, 1, 2)).all():
        raise ValueError("true classes must be integers 0 (down), 1 (flat) or 2 (up)")
    return p, y.astype(np.int64)


def clip_probabilities(proba: np.ndarray) -> np.ndarray:
    """Rows clipped to [PROBA_CLIP, 1] and renormalised to sum to 1 (last axis)."""
    p = np.clip(np.asarray(proba, dtype=np.float64), PROBA_CLIP, 1.0)
    return np.asarray(p / p.sum(axis=-1, keepdims=True))


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """(n_bins, 3): per equal-width bin of ``confidence`` in [0, 1], the count, the sum of confidences and
    the number correct (the reliability diagram's data; the last bin includes 1.0)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    idx = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    out = np.zeros((n_bins, 3))
    out[:, 0] = np.bincount(idx, minlength=n_bins)
    out[:, 1] = np.bincount(idx, weights=conf, minlength=n_bins)
    out[:, 2] = np.bincount(idx, weights=hit, minlength=n_bins)
    return out


def ece_from_bins(bins: np.ndarray) -> np.ndarray:
    """ECE from :func:`calibration_bins` output, over the last two axes (…, n_bins, 3): bins may be summed
    over bootstrap blocks first. Σ_b n_b·|acc_b − conf_b| / n = Σ_b |correct_b − Σconf_b| / n."""
    n = bins[..., 0].sum(axis=-1)
    gap = np.abs(bins[..., 2] - bins[..., 1]).sum(axis=-1)
    return np.asarray(gap / np.maximum(n, 1))


def expected_calibration_error(proba_h: np.ndarray, y_true_h: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE of one horizon's (n, 3) probabilities against the true classes (module docstring)."""
    p = clip_probabilities(proba_h)
    pred = p.argmax(axis=1)
    return float(ece_from_bins(calibration_bins(p.max(axis=1), pred == np.asarray(y_true_h), n_bins)))


def binary_ece(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of a probability of a binary event (the confidence head) against the outcomes (0/1)."""
    conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    return float(ece_from_bins(calibration_bins(conf, np.asarray(outcome, dtype=np.float64), n_bins)))


@dataclass(frozen=True)
class HorizonMetrics:
    """The metrics of one model at one horizon."""

    horizon_s: int
    n: int
    accuracy: float
    macro_f1: float
    log_loss: float
    ece: float = math.nan

    def as_dict(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "log_loss": self.log_loss,
            "ece": self.ece,
            "n": self.n,
        }


def horizon_metrics(proba: np.ndarray, y_true: np.ndarray, horizons_s: Sequence[int]) -> list[HorizonMetrics]:
    """Accuracy, macro-F1, log-loss and ECE for each horizon (module docstring for the exact definitions)."""
    p, y = _check(proba, y_true)
    if len(horizons_s) != p.shape[1]:
        raise ValueError(f"{len(horizons_s)} horizons named for {p.shape[1]} columns of probabilities")
    out = []
    for k, h in enumerate(horizons_s):
        pk, yk = clip_probabilities(p[:, k, :]), y[:, k]
        pred = pk.argmax(axis=1)
        out.append(
            HorizonMetrics(
                horizon_s=int(h),
                n=len(yk),
                accuracy=float(accuracy_score(yk, pred)),
                macro_f1=float(f1_score(yk, pred, average="macro", zero_division=0.0)),
                log_loss=float(log_loss(yk, pk, labels=[0, 1, 2])),
                ece=expected_calibration_error(pk, yk),
            )
        )
    return out


def flat_metrics(rows: Sequence[HorizonMetrics]) -> dict[str, float]:
    """``{"accuracy_10s": …, "macro_f1_10s": …, "log_loss_10s": …, "ece_10s": …, …}`` — the form of
    ModelManifest.metrics."""
    return {f"{m}_{r.horizon_s}s": float(getattr(r, m)) for r in rows for m in METRICS}


@dataclass
class EvaluationReport:
    """Metrics of several predictors (the model and every baseline) on one test fold, per horizon."""

    horizons_s: tuple[int, ...]
    rows: dict[str, list[HorizonMetrics]] = field(default_factory=dict)

    def add(self, name: str, proba: np.ndarray, y_true: np.ndarray) -> list[HorizonMetrics]:
        """Evaluate one predictor's probabilities; a name may be added once."""
        if name in self.rows:
            raise ValueError(f"report already has a row for {name!r}")
        self.rows[name] = horizon_metrics(proba, y_true, self.horizons_s)
        return self.rows[name]

    def metrics(self, name: str) -> dict[str, float]:
        """Flat metrics of ``name`` (for ModelManifest.metrics)."""
        if name not in self.rows:
            raise KeyError(f"no evaluation for {name!r}; have {sorted(self.rows)}")
        return flat_metrics(self.rows[name])

    def to_dict(self) -> dict[str, Any]:
        """``{"horizons_s": [...], "models": {name: {"10s": {"accuracy": …, …}, …}}}``."""
        return {
            "horizons_s": list(self.horizons_s),
            "models": {
                name: {f"{r.horizon_s}s": r.as_dict() for r in rows} for name, rows in self.rows.items()
            },
        }

    def render(self) -> str:
        """A plain text table, one line per model × horizon."""
        header = f"{'model':<24} {'horizon':>7} {'n':>8} {'accuracy':>9} {'macro_f1':>9} {'log_loss':>9} {'ece':>7}"
        lines = [header, "-" * len(header)]
        for name, rows in self.rows.items():
            for r in rows:
                lines.append(
                    f"{name:<24} {str(r.horizon_s) + 's':>7} {r.n:>8} {r.accuracy:>9.4f} "
                    f"{r.macro_f1:>9.4f} {r.log_loss:>9.4f} {r.ece:>7.4f}"
                )
        return "\n".join(lines)


def higher_is_better(metric: str) -> bool:
    """False for the loss metrics (``log_loss_*``), true for the scores."""
    return not any(metric.startswith(m) for m in LOWER_IS_BETTER)


def beats(
    candidate_metrics: Mapping[str, float],
    production_metrics: Mapping[str, float] | None,
    metric: str = PROMOTION_METRIC,
    *,
    min_improvement: float = 0.0,
) -> bool:
    """True when the candidate is strictly better than production on ``metric`` by more than ``min_improvement``.

    No production model (None) → True. Ties lose. A metric missing from either side, or not finite, raises:
    a promotion decision is never made on a number that is not there.
    """
    if metric not in candidate_metrics:
        raise ValueError(f"candidate has no metric {metric!r} (has {sorted(candidate_metrics)})")
    cand = float(candidate_metrics[metric])
    if not math.isfinite(cand):
        raise ValueError(f"candidate's {metric} is not finite ({cand})")
    if production_metrics is None:
        return True
    if metric not in production_metrics:
        raise ValueError(f"production model has no metric {metric!r} (has {sorted(production_metrics)})")
    prod = float(production_metrics[metric])
    if not math.isfinite(prod):
        raise ValueError(f"production's {metric} is not finite ({prod})")
    gain = cand - prod if higher_is_better(metric) else prod - cand
    return gain > min_improvement
