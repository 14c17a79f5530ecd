"""The ML signal validator: the model's prediction for a row confirms, vetoes or leaves the consensus alone.

The original spec's "ML Signal Validator" (hybrid validation, fallback when the model is unavailable),
as a pure function of the consensus signal and the gate's prediction for the same row. With `d` the
model's direction at the primary horizon, `c` its confidence, `p` its class probabilities, `s` the
consensus signal's confidence and `w` = ML_WEIGHT (docs/decisions.md has this table):

| verdict   | when                                            | validated confidence        | traded if       |
|-----------|-------------------------------------------------|-----------------------------|-----------------|
| agree     | d is the signal's direction and c ≥ ML_MIN_CONF | (1 − w)·s + w·c             | ≥ ML_MIN_VALID… |
| disagree  | d is the opposite direction and c ≥ ML_MIN_CONF | (1 − w)·s                   | never (veto)    |
| neutral   | d is flat, or c < ML_MIN_CONFIDENCE             | (1 − w)·s + w·max(0, p_dir − p_opposite) | ≥ ML_MIN_VALID… |
| fallback  | no model, model stale, inference failed/slow    | s                           | always (the consensus decides alone) |

So a model that has no view lets only confident consensus through, and a model that sees the opposite
move stops the trade; when the model is missing the strategies trade on their own (original spec,
"Failover": ML unavailable → fallback to the strategies).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from infra.settings import MLGateConfig
from schemas.enums import SignalAction
from schemas.trading import Signal
from trading_daemon.ml_gate.prediction import GatePrediction


class Verdict(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    NEUTRAL = "neutral"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Validation:
    """The validator's answer for one signal."""

    verdict: Verdict
    approved: bool
    confidence: float  # the validated confidence, in [0, 1]
    model_version: str | None
    reason: str
    ml_direction: int | None = None
    ml_confidence: float | None = None
    ml_support: float | None = None  # p(signal's direction) − p(opposite), at the primary horizon
    ml_expected_return_bps: float | None = None
    fallback_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "approved": self.approved,
            "confidence": round(self.confidence, 6),
            "model_version": self.model_version,
            "reason": self.reason,
            "ml_direction": self.ml_direction,
            "ml_confidence": self.ml_confidence,
            "ml_support": self.ml_support,
            "ml_expected_return_bps": self.ml_expected_return_bps,
            "fallback_reason": self.fallback_reason,
        }


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


class SignalValidator:
    """Applies the table of the module docstring with the thresholds of `MLGateConfig`."""

    def __init__(self, config: MLGateConfig) -> None:
        self.config = config

    def validate(self, signal: Signal, prediction: GatePrediction) -> Validation:
        """Validate a Buy or Sell `signal` against the gate's prediction of the same row."""
        if signal.action is SignalAction.HOLD:
            raise ValueError(f"SignalValidator: a Hold signal of {signal.symbol} has nothing to validate")
        if prediction.symbol != signal.symbol:
            raise ValueError(
                f"SignalValidator: the prediction is of {prediction.symbol}, the signal of {signal.symbol}"
            )
        cfg = self.config
        s = signal.confidence if signal.confidence is not None else signal.strength
        if prediction.prediction is None:
            return Validation(
                verdict=Verdict.FALLBACK,
                approved=True,
                confidence=s,
                model_version=None,
                reason=f"no model view ({prediction.fallback}): the consensus decides alone",
                fallback_reason=str(prediction.fallback),
            )
        pred, h = prediction.prediction, prediction.horizon_index
        want = 1 if signal.action is SignalAction.BUY else -1
        probs = pred.probabilities[h]
        direction, conf = pred.direction[h], pred.confidence
        support = float(probs[want + 1] - probs[-want + 1])
        viewed = functools.partial(
            Validation,
            model_version=prediction.model_version,
            ml_direction=direction,
            ml_confidence=conf,
            ml_support=support,
            ml_expected_return_bps=pred.expected_return_bps[h],
        )
        w = cfg.weight
        if direction != 0 and conf >= cfg.min_confidence:
            if direction == want:
                validated = _clip01((1 - w) * s + w * conf)
                ok = validated >= cfg.min_validated_confidence
                return viewed(
                    verdict=Verdict.AGREE,
                    approved=ok,
                    confidence=validated,
                    reason=f"model agrees (confidence {conf:.2f}); validated {validated:.2f}"
                    + ("" if ok else f" < {cfg.min_validated_confidence:.2f}"),
                )
            return viewed(
                verdict=Verdict.DISAGREE,
                approved=False,
                confidence=_clip01((1 - w) * s),
                reason=f"model predicts the opposite move (confidence {conf:.2f}): vetoed",
            )
        validated = _clip01((1 - w) * s + w * max(0.0, support))
        ok = validated >= cfg.min_validated_confidence
        why = "flat" if direction == 0 else f"confidence {conf:.2f} < {cfg.min_confidence:.2f}"
        return viewed(
            verdict=Verdict.NEUTRAL,
            approved=ok,
            confidence=validated,
            reason=f"model neutral ({why}); validated {validated:.2f}"
            + ("" if ok else f" < {cfg.min_validated_confidence:.2f}: not traded"),
        )
