"""What the gate answers for one row: the production model's prediction, or why there is none."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ml.inference import Prediction


class FallbackReason(StrEnum):
    """Why a row has no model view (the consensus then decides alone)."""

    NO_MODEL = "no_model"  # nothing promoted yet, or the production version could not be loaded
    STALE_MODEL = "stale_model"  # trained longer ago than MODEL_MAX_AGE_HOURS
    NO_WINDOW = "no_window"  # the row ends no full run of WINDOW consecutive rows (start, gap)
    INFERENCE_FAILED = "inference_failed"  # the predictor raised
    INFERENCE_TIMEOUT = "inference_timeout"  # slower than ML_INFERENCE_TIMEOUT_MS


@dataclass(frozen=True)
class GatePrediction:
    """The gate's answer for the row `ts_ms` of `symbol`."""

    symbol: str
    ts_ms: int
    prediction: Prediction | None
    model_version: str | None  # the version that predicted (None on fallback)
    horizon_index: int = 0  # of ML_PRIMARY_HORIZON_S in the prediction's horizons
    fallback: FallbackReason | None = None
    error: str | None = None
    latency_ms: float = 0.0  # inference wall time seen by the caller (queueing in the worker included)

    @property
    def direction(self) -> int | None:
        """The model's direction at the primary horizon, −1/0/+1, or None on fallback."""
        return None if self.prediction is None else self.prediction.direction[self.horizon_index]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ts_ms": self.ts_ms,
            "model_version": self.model_version,
            "fallback": None if self.fallback is None else self.fallback.value,
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.error:
            out["error"] = self.error
        if self.prediction is not None:
            p, h = self.prediction, self.horizon_index
            out |= {
                "horizon_s": p.horizons_s[h],
                "direction": p.direction[h],
                "probabilities": [round(float(v), 6) for v in p.probabilities[h]],
                "confidence": round(p.confidence, 6),
                "expected_return_bps": round(p.expected_return_bps[h], 4),
            }
        return out
