"""Evaluation: per-horizon metrics and the promotion metric (`metrics`), block-bootstrap intervals
(`bootstrap`), the walk-forward protocol over several recordings (`protocol`) and its HTML/JSON report
(`report`). The metric names re-exported here are what most callers need; import the protocol and the
report from their modules (they pull in PyTorch and matplotlib)."""

from ml.evaluation.metrics import (
    ECE_BINS,
    LOWER_IS_BETTER,
    METRICS,
    PROBA_CLIP,
    PROMOTION_METRIC,
    EvaluationReport,
    HorizonMetrics,
    beats,
    binary_ece,
    calibration_bins,
    clip_probabilities,
    expected_calibration_error,
    flat_metrics,
    higher_is_better,
    horizon_metrics,
)

__all__ = [
    "ECE_BINS",
    "LOWER_IS_BETTER",
    "METRICS",
    "PROBA_CLIP",
    "PROMOTION_METRIC",
    "EvaluationReport",
    "HorizonMetrics",
    "beats",
    "binary_ece",
    "calibration_bins",
    "clip_probabilities",
    "expected_calibration_error",
    "flat_metrics",
    "higher_is_better",
    "horizon_metrics",
]
