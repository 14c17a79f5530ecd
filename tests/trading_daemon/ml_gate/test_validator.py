"""The ML signal validator's table: agree, disagree, neutral, fallback, with the configured thresholds."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest

from infra.settings import code_defaults
from ml.inference import Prediction
from schemas.enums import SignalAction
from schemas.trading import Signal
from trading_daemon.ml_gate import FallbackReason, GatePrediction, SignalValidator, Verdict

CONFIG = dataclasses.replace(
    code_defaults().ml_gate,
    min_confidence=0.55,
    weight=0.5,
    min_validated_confidence=0.5,
    primary_horizon_s=10,
)


def signal(action: SignalAction, confidence: float = 0.7) -> Signal:
    return Signal(symbol="BTCUSDT", ts=1, source="consensus", action=action, strength=confidence,
                  confidence=confidence, price=Decimal(100))  # fmt: skip


def view(probs_10s: tuple[float, float, float], confidence: float) -> GatePrediction:
    probs = np.array([probs_10s, (0.2, 0.6, 0.2), (0.3, 0.4, 0.3)])
    direction = tuple(int(p.argmax()) - 1 for p in probs)
    prediction = Prediction(
        probabilities=probs, direction=direction, confidence=confidence, expected_return_bps=(3.0, 1.0, 0.0),
        horizons_s=(10, 30, 60), latency_ms=1.0, model_version="v1",
    )  # fmt: skip
    return GatePrediction(
        symbol="BTCUSDT", ts_ms=1, prediction=prediction, model_version="v1", horizon_index=0
    )


VALIDATOR = SignalValidator(CONFIG)


def test_agreement_blends_the_confidences() -> None:
    v = VALIDATOR.validate(signal(SignalAction.BUY, 0.6), view((0.1, 0.2, 0.7), 0.8))
    assert v.verdict is Verdict.AGREE and v.approved and v.confidence == pytest.approx(0.7)
    assert v.model_version == "v1" and v.ml_direction == 1 and v.ml_support == pytest.approx(0.6)
    short = VALIDATOR.validate(signal(SignalAction.SELL, 0.6), view((0.7, 0.2, 0.1), 0.8))
    assert short.verdict is Verdict.AGREE and short.approved


def test_disagreement_vetoes() -> None:
    v = VALIDATOR.validate(signal(SignalAction.BUY, 0.95), view((0.7, 0.2, 0.1), 0.6))
    assert v.verdict is Verdict.DISAGREE and not v.approved and "vetoed" in v.reason


def test_a_neutral_model_lets_only_confident_consensus_through() -> None:
    flat = view((0.25, 0.5, 0.25), 0.9)
    assert VALIDATOR.validate(signal(SignalAction.BUY, 0.6), flat).verdict is Verdict.NEUTRAL
    assert not VALIDATOR.validate(signal(SignalAction.BUY, 0.6), flat).approved  # 0.5·0.6 + 0 < 0.5
    assert VALIDATOR.validate(signal(SignalAction.BUY, 1.0), flat).approved  # 0.5
    unsure = view((0.1, 0.2, 0.7), 0.4)  # up, but below ML_MIN_CONFIDENCE: support counts, no veto either way
    v = VALIDATOR.validate(signal(SignalAction.BUY, 0.5), unsure)
    assert v.verdict is Verdict.NEUTRAL and v.confidence == pytest.approx(0.55) and v.approved
    against = VALIDATOR.validate(signal(SignalAction.SELL, 0.9), unsure)
    assert against.verdict is Verdict.NEUTRAL and not against.approved  # no support for a short


def test_no_model_view_falls_back_to_the_consensus() -> None:
    for reason in FallbackReason:
        missing = GatePrediction(
            symbol="BTCUSDT", ts_ms=1, prediction=None, model_version=None, fallback=reason
        )
        v = VALIDATOR.validate(signal(SignalAction.SELL, 0.65), missing)
        assert (v.verdict, v.approved, v.confidence, v.model_version) == (Verdict.FALLBACK, True, 0.65, None)
        assert v.fallback_reason == reason.value


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="Hold signal"):
        VALIDATOR.validate(signal(SignalAction.HOLD), view((0.1, 0.2, 0.7), 0.8))
    other = dataclasses.replace(view((0.1, 0.2, 0.7), 0.8), symbol="ETHUSDT")
    with pytest.raises(ValueError, match="ETHUSDT"):
        VALIDATOR.validate(signal(SignalAction.BUY), other)
