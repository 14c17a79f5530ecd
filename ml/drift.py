"""Drift of live features and predictions from the training reference (the original spec's Drift Detector).

Three figures, each with documented thresholds, give one severity and a recommendation:

1. **Feature drift score**: the share of the 110 features whose distribution drifted, from an evidently
   ``DataDriftPreset`` report of the current rows against the reference rows. Evidently picks the test per
   column: for numerical columns normed Wasserstein distance (drift at ≥ 0.1 reference standard
   deviations) when the reference has more than 1,000 rows, else the Kolmogorov–Smirnov test (drift at
   p < 0.05); columns with at most 5 distinct values get Jensen–Shannon distance or χ². The report is
   saved as HTML beside a JSON summary of this result. Both inputs are sampled down to ``max_rows`` rows
   with a seeded generator (deterministic; evidently renders a plot per column, ~10 s for 110 columns).
   Raw price levels drift by construction, so pass features after the model's row-local preprocessing.
2. **Prediction drift (PSI)** of the primary horizon: of the predicted class distribution and of the
   model's confidence, ``prediction_psi`` being the larger. PSI is computed here by hand — a few lines,
   with bins and epsilon we choose — instead of through a second evidently report.
3. **Accuracy drop** once labels exist: reference accuracy − current accuracy (positive = worse).

Everything is a pure function of (reference, current, output directory), so a Dagster asset can call
:func:`detect_drift` and a sensor can read the JSON it writes.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pandas as pd

from schemas.features import FEATURE_NAMES

Severity = Literal["none", "low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("none", "low", "medium", "high")

# PSI: proportions below PSI_EPSILON are raised to it, so a bin empty on one side contributes a large but
# finite term (a class the model never predicted in training and now predicts 10% of the time scores
# 0.1·ln(0.1/1e-4) ≈ 0.69: high). The proportions are not renormalised; the bias is below 1e-3.
PSI_EPSILON = 1e-4
# Confidence PSI uses the reference's deciles as bin edges (equal-mass bins), the usual choice for a score
# that concentrates in part of [0, 1]; repeated edges (a reference with few distinct values) are merged.
PSI_BINS = 10
MIN_ROWS = 30  # fewer rows than this make every drift test meaningless
# Natural variability: one-second rows are autocorrelated and the slow channels (candles, indicators) wander
# over tens of minutes even within one regime, so evidently's per-column tests flag the two halves of one calm
# stretch. A column counts as drifted only when its test fails AND its distance from the reference (normed
# Wasserstein-1) exceeds CALIBRATION_MARGIN times the distance between the reference's own chronological
# halves: the reference shows how far the column wanders without any change of market.
CALIBRATION_MARGIN = 2.0
TOP_FEATURES = 10
DEFAULT_MAX_ROWS = 2_000


class Levels(msgspec.Struct, frozen=True):
    """A figure is low/medium/high from these values up (inclusive), none below ``low``."""

    low: float
    medium: float
    high: float

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.medium <= self.high:
            raise ValueError(f"levels must satisfy 0 <= low <= medium <= high, got {self}")

    def of(self, value: float | None) -> Severity:
        if value is None or value < self.low:
            return "none"
        return "high" if value >= self.high else "medium" if value >= self.medium else "low"


class DriftThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Where each figure starts to count.

    * feature drift (share of drifted columns): 0.10 / 0.25 / 0.50 — evidently calls a whole dataset
      drifted at 0.5;
    * prediction PSI: 0.05 / 0.10 / 0.25 — the industry rule of thumb is "< 0.1 stable, 0.1–0.25 moderate
      shift, > 0.25 significant"; 0.05 sits far above the sampling noise of ~(bins−1)·(1/n₁ + 1/n₂);
    * accuracy drop (absolute): 0.02 / 0.05 / 0.10.
    """

    # Shares of calibrated drifted columns (see CALIBRATION_MARGIN): a 30-minute control of the paper
    # exchange's calm regime scores 0.08–0.12, the same stretch across its scheduled shift 0.16–0.20.
    feature_drift: Levels = msgspec.field(default_factory=lambda: Levels(0.05, 0.15, 0.30))
    prediction_psi: Levels = msgspec.field(default_factory=lambda: Levels(0.05, 0.10, 0.25))
    accuracy_drop: Levels = msgspec.field(default_factory=lambda: Levels(0.02, 0.05, 0.10))


class ColumnDrift(msgspec.Struct, frozen=True):
    """One feature's drift test as evidently ran it, and the calibrated decision.

    ``test_drifted`` is evidently's verdict; ``distance`` the normed Wasserstein-1 distance of current from
    reference, ``natural_distance`` that between the reference's chronological halves; ``drifted`` the
    decision (the test failed and, when calibrated, distance > CALIBRATION_MARGIN × natural_distance).
    """

    name: str
    score: float
    method: str
    threshold: float
    drifted: bool
    test_drifted: bool | None = None
    distance: float | None = None
    natural_distance: float | None = None


class DriftResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a sensor or a person needs; JSON-able (``to_json``), written beside the HTML report."""

    created_ms: int
    severity: Severity
    recommendation: str
    drivers: list[str]
    feature_drift_score: float
    drifted_features: list[str]  # most drifted first
    top_features: list[ColumnDrift]  # the TOP_FEATURES most drifted, drifted or not
    prediction_psi: float | None
    class_psi: float | None
    confidence_psi: float | None
    accuracy_drop: float | None
    reference_accuracy: float | None
    current_accuracy: float | None
    n_reference: int  # rows compared, after sampling
    n_current: int
    html_path: str
    json_path: str
    thresholds: DriftThresholds
    columns: list[ColumnDrift]  # every feature, in spec order

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> DriftResult:
        return msgspec.json.decode(data, type=cls)

    def log_text(self) -> str:
        """The original spec's log block."""

        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4f}"

        head = "MODEL DRIFT DETECTED" if self.severity != "none" else "No model drift"
        return (
            f"{head}:\n   Severity: {self.severity}\n   Feature drift: {self.feature_drift_score:.4f}\n"
            f"   Prediction drift: {fmt(self.prediction_psi)}\n   Accuracy drop: {fmt(self.accuracy_drop)}\n"
            f"   Recommendation: {self.recommendation}"
        )


@dataclass(frozen=True)
class PredictionSample:
    """A model's outputs over a set of rows, and the true classes once they are known.

    * ``probabilities``: (n, H, 3) class probabilities (down, flat, up) per horizon, or (n, 3) for one;
    * ``confidence``: (n,) the model's confidence head in [0, 1]; None → the primary horizon's top
      probability;
    * ``labels``: (n, H) or (n,) true class indices in {0, 1, 2}; None before the horizon has passed.
    """

    probabilities: np.ndarray
    confidence: np.ndarray | None = None
    labels: np.ndarray | None = None


# ---- PSI ------------------------------------------------------------------------------------------------


def psi(reference: np.ndarray, current: np.ndarray, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index Σ (c − r)·ln(c / r) of two histograms (counts or proportions)."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape or r.ndim != 1 or len(r) < 2:
        raise ValueError(f"psi needs two 1-d histograms of the same length ≥ 2, got {r.shape} and {c.shape}")
    if (r < 0).any() or (c < 0).any() or r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("psi needs non-negative histograms with a positive total")
    rp = np.maximum(r / r.sum(), epsilon)
    cp = np.maximum(c / c.sum(), epsilon)
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def class_psi(reference: np.ndarray, current: np.ndarray, n_classes: int = 3) -> float:
    """PSI of two samples of class indices in [0, n_classes)."""
    ref, cur = np.asarray(reference), np.asarray(current)
    for name, arr in (("reference", ref), ("current", cur)):
        if arr.size == 0 or arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(f"{name} classes must be non-empty indices in [0, {n_classes})")
    return psi(np.bincount(ref, minlength=n_classes), np.bincount(cur, minlength=n_classes))


def binned_psi(reference: np.ndarray, current: np.ndarray, n_bins: int = PSI_BINS) -> float:
    """PSI of two samples of a continuous score, over the reference's ``n_bins`` quantile bins."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cur = np.asarray(current, dtype=np.float64).ravel()
    if ref.size == 0 or cur.size == 0:
        raise ValueError("binned_psi needs non-empty samples")
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, n_bins + 1)[1:-1]))
    n = len(inner) + 1
    bins_ref = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=n)
    bins_cur = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=n)
    return psi(bins_ref, bins_cur)


# ---- inputs ---------------------------------------------------------------------------------------------


def _feature_matrix(data: np.ndarray | pd.DataFrame, names: Sequence[str], what: str) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        missing = [n for n in names if n not in data.columns]
        if missing:
            raise ValueError(
                f"{what} features lack {len(missing)} of the feature columns, e.g. {missing[:5]}"
            )
        matrix: np.ndarray = data.loc[:, list(names)].to_numpy(dtype=np.float64)
    else:
        matrix = np.asarray(data, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise ValueError(f"{what} features must be (rows, {len(names)}), got shape {matrix.shape}")
    if len(matrix) < MIN_ROWS:
        raise ValueError(f"{what} features have {len(matrix)} rows; drift needs at least {MIN_ROWS}")
    bad = ~np.isfinite(matrix).all(axis=0)
    if bad.any():
        raise ValueError(
            f"{what} features are not finite in {[names[int(i)] for i in np.flatnonzero(bad)][:5]}"
        )
    return matrix


def _sample(matrix: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(matrix) <= max_rows:
        return matrix
    return matrix[np.sort(rng.choice(len(matrix), size=max_rows, replace=False))]


def _primary(sample: PredictionSample, horizon: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, confidence) of the primary horizon, validated."""
    probs = np.asarray(sample.probabilities, dtype=np.float64)
    if probs.ndim == 2:
        probs = probs[:, None, :]
    if probs.ndim != 3 or probs.shape[2] != 3 or len(probs) == 0:
        raise ValueError(f"{what} probabilities must be (n, H, 3) or (n, 3), got {probs.shape}")
    if not 0 <= horizon < probs.shape[1]:
        raise ValueError(f"primary_horizon {horizon} is out of range for {probs.shape[1]} horizons")
    p = probs[:, horizon, :]
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"{what} probabilities must be finite and in [0, 1]")
    if sample.confidence is None:
        confidence = p.max(axis=1)
    else:
        confidence = np.asarray(sample.confidence, dtype=np.float64)
        if confidence.shape != (len(p),) or not np.isfinite(confidence).all():
            raise ValueError(f"{what} confidence must be ({len(p)},) finite values, got {confidence.shape}")
        if (confidence < 0).any() or (confidence > 1).any():
            raise ValueError(f"{what} confidence must lie in [0, 1]")
    return p.argmax(axis=1), confidence


def _accuracy(sample: PredictionSample, predicted: np.ndarray, horizon: int, what: str) -> float | None:
    if sample.labels is None:
        return None
    labels = np.asarray(sample.labels)
    if labels.ndim == 2:
        if not 0 <= horizon < labels.shape[1]:
            raise ValueError(f"{what} labels have no horizon {horizon}: shape {labels.shape}")
        labels = labels[:, horizon]
    if labels.shape != predicted.shape:
        raise ValueError(
            f"{what} labels must be ({len(predicted)},) or ({len(predicted)}, H), got {labels.shape}"
        )
    if not np.isin(labels, (0, 1, 2)).all():
        raise ValueError(f"{what} labels must be class indices 0 (down), 1 (flat) or 2 (up)")
    return float(np.mean(labels == predicted))


# ---- evidently ------------------------------------------------------------------------------------------


def _evidently_columns(
    reference: np.ndarray,
    current: np.ndarray,
    names: Sequence[str],
    html_path: Path,
    method: str | None,
    threshold: float | None,
) -> list[ColumnDrift]:
    """Run the DataDriftPreset report, save its HTML, return each column's test."""
    with warnings.catch_warnings():
        # evidently 0.7 imports numpy.core and a deprecated litestar API; nothing we can act on.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(evidently|litestar)\.")
        # scipy/numpy inside evidently's per-column tests, on columns that are constant on one side.
        warnings.filterwarnings(
            "ignore", r"(invalid value|divide by zero) encountered in (scalar )?divide", RuntimeWarning
        )
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=list(names))
        ref = Dataset.from_pandas(pd.DataFrame(reference, columns=list(names)), data_definition=definition)
        cur = Dataset.from_pandas(pd.DataFrame(current, columns=list(names)), data_definition=definition)
        snapshot = Report(
            [DataDriftPreset(num_method=method, num_threshold=threshold)], include_tests=True
        ).run(current_data=cur, reference_data=ref)
        tmp = html_path.with_name(f".{html_path.name}.tmp")
        snapshot.save_html(str(tmp))
        os.replace(tmp, html_path)
    report: dict[str, Any] = snapshot.dict()
    drifted = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in report["tests"]
        if t["metric_config"]["params"].get("type") == "evidently:metric_v2:ValueDrift"
    }
    columns: dict[str, ColumnDrift] = {}
    for metric in report["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        name = config["column"]
        columns[name] = ColumnDrift(
            name=name,
            score=float(metric["value"]),
            method=str(config["method"]),
            threshold=float(config["threshold"]),
            drifted=drifted[name],
        )
    missing = [n for n in names if n not in columns]
    if missing:
        raise RuntimeError(f"the evidently report has no drift result for {missing[:5]}")
    return [columns[n] for n in names]


def normed_wasserstein(a: np.ndarray, b: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Per column, the Wasserstein-1 distance between samples ``a`` and ``b`` in units of ``scale`` (default:
    ``a``'s standard deviation, evidently's normed distance); a zero scale counts as 1 (absolute units)."""
    from scipy.stats import wasserstein_distance

    scale = np.std(a, axis=0) if scale is None else np.asarray(scale, dtype=np.float64)
    scale = np.where(scale > 0, scale, 1.0)
    distances = np.array(
        [wasserstein_distance(a[:, j], b[:, j]) for j in range(a.shape[1])], dtype=np.float64
    )
    out: np.ndarray = distances / scale
    return out


def _calibrated(columns: list[ColumnDrift], distance: np.ndarray, natural: np.ndarray) -> list[ColumnDrift]:
    return [
        msgspec.structs.replace(
            c,
            test_drifted=c.drifted,
            drifted=bool(c.drifted and d > CALIBRATION_MARGIN * n),
            distance=float(d),
            natural_distance=float(n),
        )
        for c, d, n in zip(columns, distance, natural, strict=True)
    ]


def _strength(column: ColumnDrift) -> float:
    """How far past its threshold a column is (> 1 = drifted), comparable across test kinds."""
    if "p_value" in column.method:  # a p-value: smaller is more drifted
        return column.threshold / max(column.score, 1e-300)
    if column.threshold > 0:
        return column.score / column.threshold
    return math.inf if column.score > 0 else 0.0


# ---- the detector ---------------------------------------------------------------------------------------


def _recommend(severity: Severity, drivers: list[str]) -> str:
    why = "; ".join(drivers)
    return {
        "none": "No action needed: features and predictions match the training reference",
        "low": f"Keep monitoring: minor drift ({why})",
        "medium": f"Schedule model retraining: moderate drift ({why})",
        "high": f"Model retraining is recommended in the near future: significant drift ({why})",
    }[severity]


def detect_drift(
    reference: np.ndarray | pd.DataFrame,
    current: np.ndarray | pd.DataFrame,
    out_dir: Path | str,
    *,
    reference_predictions: PredictionSample | None = None,
    current_predictions: PredictionSample | None = None,
    reference_accuracy: float | None = None,
    primary_horizon: int = 0,
    thresholds: DriftThresholds | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    num_method: str | None = None,
    num_threshold: float | None = None,
    name: str = "drift",
    feature_names: Sequence[str] = FEATURE_NAMES,
    calibrate: bool = True,
) -> DriftResult:
    """Compare ``current`` with the training ``reference``; write ``<name>.html`` and ``<name>.json``.

    Features are (n, 110) arrays in spec order or DataFrames holding the 110 named columns (others are
    ignored). Prediction drift needs both prediction samples; the accuracy drop needs current labels and
    either reference labels or ``reference_accuracy`` (e.g. the test accuracy in the model's manifest).
    ``primary_horizon`` indexes the horizons (0 = the first, 10 s). ``num_method`` overrides evidently's
    choice of test for numerical columns (e.g. "ks", "psi") and ``num_threshold`` its threshold.

    Per-row tests are sensitive on 1-second rows: consecutive rows are strongly autocorrelated, so a few
    hundred rows hold far fewer independent observations than rows, and p-value tests flag nearly every
    column even between two halves of one calm quarter-hour. Compare long windows (hours, sampled), and
    prefer a distance (the default above 1,000 reference rows) with a threshold tuned on such controls.
    ``calibrate`` (default) also requires a flagged column to move more than CALIBRATION_MARGIN times as far
    as it wanders inside the reference (give the reference in time order); it needs 2·MIN_ROWS reference rows.
    """
    if max_rows < MIN_ROWS:
        raise ValueError(f"max_rows must be at least {MIN_ROWS}, got {max_rows}")
    if (reference_predictions is None) != (current_predictions is None):
        raise ValueError("prediction drift needs both reference_predictions and current_predictions")
    thresholds = thresholds or DriftThresholds()
    names = list(feature_names)
    rng = np.random.default_rng(seed)
    ref_all = _feature_matrix(reference, names, "reference")
    ref = _sample(ref_all, max_rows, rng)
    cur = _sample(_feature_matrix(current, names, "current"), max_rows, rng)

    class_p = confidence_p = ref_acc = cur_acc = None
    if current_predictions is not None and reference_predictions is not None:
        ref_cls, ref_conf = _primary(reference_predictions, primary_horizon, "reference")
        cur_cls, cur_conf = _primary(current_predictions, primary_horizon, "current")
        class_p, confidence_p = class_psi(ref_cls, cur_cls), binned_psi(ref_conf, cur_conf)
        ref_acc = _accuracy(reference_predictions, ref_cls, primary_horizon, "reference")
        cur_acc = _accuracy(current_predictions, cur_cls, primary_horizon, "current")
    if reference_accuracy is not None:
        if not 0 <= reference_accuracy <= 1:
            raise ValueError(f"reference_accuracy must lie in [0, 1], got {reference_accuracy}")
        ref_acc = float(reference_accuracy)
    prediction_p = None if class_p is None or confidence_p is None else max(class_p, confidence_p)
    accuracy_drop = None if ref_acc is None or cur_acc is None else ref_acc - cur_acc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out / f"{name}.html", out / f"{name}.json"
    columns = _evidently_columns(ref, cur, names, html_path, num_method, num_threshold)
    if calibrate and len(ref_all) >= 2 * MIN_ROWS:
        half = len(ref_all) // 2
        natural = normed_wasserstein(
            _sample(ref_all[:half], max_rows, rng), _sample(ref_all[half:], max_rows, rng)
        )
        columns = _calibrated(columns, normed_wasserstein(ref, cur), natural)
    ranked = sorted(columns, key=_strength, reverse=True)
    feature_score = sum(c.drifted for c in columns) / len(columns)

    figures = {
        "feature drift": (feature_score, thresholds.feature_drift),
        "prediction PSI": (prediction_p, thresholds.prediction_psi),
        "accuracy drop": (accuracy_drop, thresholds.accuracy_drop),
    }
    levels = {label: levels.of(value) for label, (value, levels) in figures.items()}
    severity = max(levels.values(), key=SEVERITIES.index)
    drivers = [
        f"{label} {figures[label][0]:.4f} >= {getattr(figures[label][1], severity)}"
        for label, level in levels.items()
        if level == severity and severity != "none"
    ]
    result = DriftResult(
        created_ms=time.time_ns() // 1_000_000,
        severity=severity,
        recommendation=_recommend(severity, drivers),
        drivers=drivers,
        feature_drift_score=feature_score,
        drifted_features=[c.name for c in ranked if c.drifted],
        top_features=ranked[:TOP_FEATURES],
        prediction_psi=prediction_p,
        class_psi=class_p,
        confidence_psi=confidence_p,
        accuracy_drop=accuracy_drop,
        reference_accuracy=ref_acc,
        current_accuracy=cur_acc,
        n_reference=len(ref),
        n_current=len(cur),
        html_path=str(html_path),
        json_path=str(json_path),
        thresholds=thresholds,
        columns=columns,
    )
    tmp = json_path.with_name(f".{json_path.name}.tmp")
    tmp.write_bytes(msgspec.json.format(result.to_json()))
    os.replace(tmp, json_path)  # a sensor never reads a half-written summary
    return result


class DriftDetector:
    """The training reference held once, compared with each new batch of live rows."""

    def __init__(
        self,
        reference: np.ndarray | pd.DataFrame,
        *,
        reference_predictions: PredictionSample | None = None,
        reference_accuracy: float | None = None,
        thresholds: DriftThresholds | None = None,
        primary_horizon: int = 0,
        max_rows: int = DEFAULT_MAX_ROWS,
        seed: int = 0,
        num_method: str | None = None,
        num_threshold: float | None = None,
    ) -> None:
        self.reference = reference
        self.reference_predictions = reference_predictions
        self.reference_accuracy = reference_accuracy
        self.thresholds = thresholds or DriftThresholds()
        self.primary_horizon = primary_horizon
        self.max_rows = max_rows
        self.seed = seed
        self.num_method = num_method
        self.num_threshold = num_threshold

    def detect(
        self,
        current: np.ndarray | pd.DataFrame,
        out_dir: Path | str,
        *,
        current_predictions: PredictionSample | None = None,
        name: str = "drift",
    ) -> DriftResult:
        """:func:`detect_drift` of ``current`` against the held reference."""
        reference_predictions = self.reference_predictions if current_predictions is not None else None
        return detect_drift(
            self.reference,
            current,
            out_dir,
            reference_predictions=reference_predictions,
            current_predictions=current_predictions,
            reference_accuracy=self.reference_accuracy,
            primary_horizon=self.primary_horizon,
            thresholds=self.thresholds,
            max_rows=self.max_rows,
            seed=self.seed,
            num_method=self.num_method,
            num_threshold=self.num_threshold,
            name=name,
        )
