"""The model gate end to end: a candidate that loses to a baseline of its run is refused, the baseline that
wins is promoted and served, every decision is stored with its version and audited, and production is
judged on the candidate's own test fold."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from infra.db.connection import Database
from infra.db.repositories.audit import verify_chain
from ml.gate import GateConfig, GateEvidence, decide
from ml.inference import Predictor
from ml.preprocessing import FeaturePreprocessor
from ml.registry import ModelRegistry
from ml.workflow import (
    labelled_features,
    promote_if_better,
    quick_config,
    register_candidate,
    train_candidate,
)
from schemas.enums import ModelStatus
from schemas.features import feature_spec
from tests.fixtures.recorded import recorded_arrow

SPEC = feature_spec()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _evidence(proba: dict[str, np.ndarray], y: np.ndarray) -> GateEvidence:
    n = len(y)
    return GateEvidence(
        horizons_s=(10,),
        ts_ms=np.arange(n, dtype=np.int64) * 1000,
        symbols=np.full(n, "BTCUSDT"),
        direction=y[:, None],
        proba={k: v[:, None, :] for k, v in proba.items()},
        rows=np.zeros((n + 59, 110)),
        ends=np.arange(59, n + 59),
    )


def _predicting(y: np.ndarray, hit_rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(len(y)) < hit_rate, y, rng.integers(0, 3, len(y)))
    p = np.full((len(y), 3), 0.15)
    p[np.arange(len(y)), pred] = 0.7
    return p


def test_decide_needs_the_gain_beyond_its_interval() -> None:
    y = np.random.default_rng(0).integers(0, 3, 7200)
    strong, weak = _predicting(y, 0.5, 1), _predicting(y, 0.2, 2)
    close = _predicting(y, 0.5, 3)  # as good as strong: a gain within the interval
    won = decide(_evidence({"cnn_lstm": strong, "logistic": weak}, y), "cnn_lstm")
    assert won.promoted and won.comparisons[0].against == "logistic" and won.comparisons[0].gain.low > 0
    lost = decide(_evidence({"cnn_lstm": weak, "logistic": strong}, y), "cnn_lstm")
    assert not lost.promoted and "logistic" in lost.reason
    tie = decide(_evidence({"cnn_lstm": strong, "logistic": close}, y), "cnn_lstm")
    assert not tie.promoted and tie.comparisons[0].gain.low <= 0 <= tie.comparisons[0].gain.high
    with_prod = decide(
        _evidence({"cnn_lstm": strong, "logistic": weak}, y), "cnn_lstm", production=("v1", close[:, None, :])
    )
    assert not with_prod.promoted and [c.kind for c in with_prod.comparisons] == ["run", "production"]
    assert "v1" in with_prod.reason
    with pytest.raises(ValueError, match="<metric>_<horizon>s"):
        GateConfig(metric="f1")


@pytest.mark.slow(seconds=60)  # 90 min of recording (cached) and a run with a CNN-LSTM that learns nothing
def test_gate_refuses_a_loser_and_promotes_and_serves_the_winning_baseline(
    db: Database, tmp_path: Path
) -> None:
    rec = recorded_arrow(seconds=5400, symbol="BTCUSDT", seed=7)
    table = labelled_features(rec.rows, rec.candles, spec=SPEC)
    base = quick_config(seed=0, epochs=1)
    config = replace(
        base,
        model=replace(base.model, cnn_channels=(8,), cnn_kernel_sizes=(3,), lstm_hidden=8),
        trainer=replace(base.trainer, learning_rate=1e-7),  # a CNN-LSTM that learns nothing
        baselines=("majority", "gradient_boosting"),
        fractions=(0.5, 0.2, 0.3),
    )
    candidate = train_candidate(table, config, spec=SPEC)
    registry = ModelRegistry(db, root=tmp_path / "models")
    gate = GateConfig(block_s=60)  # blocks of the longest horizon: 27 of them in the 27 min test fold

    cnn = register_candidate(registry, candidate)
    refused = promote_if_better(registry, cnn.version, gate=gate)
    assert not refused.promoted, refused.reason
    assert "gradient_boosting" in refused.reason and registry.production() is None

    gbm = register_candidate(registry, candidate, model="gradient_boosting")
    assert gbm.model_type == "gradient_boosting" and gbm.params["run_model"] == "gradient_boosting"
    promoted = promote_if_better(registry, gbm.version, gate=gate)
    assert promoted.promoted, promoted.reason
    assert promoted.gate is not None and promoted.gate["comparisons"][0]["gain"]["low"] > 0

    # served end to end: the production model answers raw windows with the probabilities it was judged on
    loaded = registry.load_production(SPEC.spec_hash)
    assert loaded is not None and loaded.manifest.version == gbm.version
    assert loaded.manifest.scaler is not None
    predictor = Predictor(
        loaded.model, FeaturePreprocessor.from_dict(loaded.manifest.scaler), loaded.manifest
    )
    evidence = candidate.evidence
    assert evidence is not None
    windows = evidence.windows()
    for i in (0, len(windows) // 2, len(windows) - 1):
        got = predictor.predict(windows[i])
        np.testing.assert_allclose(got.probabilities, evidence.proba["gradient_boosting"][i], atol=1e-6)

    # production is re-evaluated on the next candidate's fold: the majority loses to it (and to its run)
    majority = register_candidate(registry, candidate, model="majority")
    third = promote_if_better(registry, majority.version, gate=gate)
    assert not third.promoted
    assert third.gate is not None and {c["kind"] for c in third.gate["comparisons"]} == {"run", "production"}
    assert registry.get(gbm.version).status is ModelStatus.PRODUCTION

    # every decision is stored with its version and audited in the hash chain
    assert [d["promoted"] for d in registry.gate_decisions(cnn.version)] == [False]
    stored = registry.gate_decisions(gbm.version)[0]
    assert (
        stored["promoted"]
        and stored["candidate_low"] <= stored["candidate_value"] <= stored["candidate_high"]
    )
    assert stored["details"]["comparisons"][0]["against"] in {"cnn_lstm", "majority"}
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT entity_id, new_value->>'promoted' FROM audit_log WHERE action = 'model_promote' ORDER BY id"
        ).fetchall()
        assert rows == [(cnn.version, "false"), (gbm.version, "true"), (majority.version, "false")]
        assert verify_chain(conn).ok
