"""The whole ML path on data recorded from the paper exchange: rows → features and labels → a trained,
evaluated candidate → a registered, promoted version that serves what it was evaluated on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from infra.db.connection import Database
from ml.datasets import WINDOW, LabelledRows
from ml.evaluation import PROMOTION_METRIC
from ml.inference import Predictor
from ml.preprocessing import FeaturePreprocessor
from ml.registry import ModelRegistry
from ml.training import predict_proba
from ml.workflow import (
    MODEL_NAME,
    CandidateConfig,
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


def _labelled(seconds: int, symbol: str = "BTCUSDT") -> pa.Table:
    tables = recorded_arrow(seconds=seconds, symbol=symbol, seed=7)
    return labelled_features(tables.rows, tables.candles, spec=SPEC)


def _tiny(epochs: int = 2, seed: int = 0) -> CandidateConfig:
    config = quick_config(seed=seed, epochs=epochs)
    return replace(
        config, model=replace(config.model, cnn_channels=(8,), cnn_kernel_sizes=(3,), lstm_hidden=8)
    )


@pytest.mark.slow  # 3 × 40 min of recording (about 2 min on a cold cache) and a quick training
def test_candidate_beats_the_majority_baseline_on_the_10s_direction() -> None:
    tables = [_labelled(2400, symbol) for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    candidate = train_candidate(tables, quick_config(seed=0))
    model = candidate.evaluation.metrics(MODEL_NAME)
    majority = candidate.evaluation.metrics("majority")
    assert model["accuracy_10s"] > majority["accuracy_10s"]
    assert model["macro_f1_10s"] > majority["macro_f1_10s"]
    assert model["log_loss_10s"] < majority["log_loss_10s"]
    # every baseline is reported beside the model, on the same test fold
    assert set(candidate.evaluation.rows) == {MODEL_NAME, "majority", "logistic", "gradient_boosting"}
    assert candidate.backtest.n_trades >= 0 and np.isfinite(candidate.backtest.total_pnl_bps)


@pytest.mark.slow
def test_registered_candidate_serves_what_it_was_evaluated_on(db: Database, tmp_path: Path) -> None:
    table = _labelled(1800)
    candidate = train_candidate(table, _tiny())
    registry = ModelRegistry(db, root=tmp_path / "models")

    manifest = register_candidate(registry, candidate)
    assert manifest.status == ModelStatus.CANDIDATE
    assert manifest.feature_spec_hash == SPEC.spec_hash
    assert manifest.metrics[PROMOTION_METRIC] == candidate.metrics[PROMOTION_METRIC]
    assert manifest.data_window.n_test == candidate.data_window.n_test > 0
    decision = promote_if_better(registry, manifest.version)
    assert decision.promoted, decision.reason
    production = registry.production()
    assert production is not None and production.version == manifest.version

    # Serving path: the registry's weights + the stored preprocessor on RAW feature windows give the
    # probabilities the evaluation computed on the preprocessed dataset.
    loaded = registry.load(manifest.version, expected_spec_hash=SPEC.spec_hash)
    assert loaded.manifest.scaler is not None
    pre = FeaturePreprocessor.from_dict(loaded.manifest.scaler, expected_spec_hash=SPEC.spec_hash)
    predictor = Predictor(loaded.model, pre, loaded.manifest)
    predictor.warm()
    rows = LabelledRows.from_tables(table, spec=SPEC)
    raw = rows.windowed(stride=candidate.config.stride)
    served = replace(raw, features=pre.transform(rows.features))
    picks = np.array([0, len(raw) // 2, len(raw) - 1])
    expected = predict_proba(candidate.model, served.subset(picks))
    for k, i in enumerate(picks):
        end = int(raw.ends[i])
        window = rows.features[end - WINDOW + 1 : end + 1]
        got = predictor.predict(window)
        np.testing.assert_allclose(got.probabilities, expected[k], rtol=0, atol=1e-5)

    # A second candidate that does not beat production on the agreed metric stays a candidate.
    worse = train_candidate(table, _tiny(epochs=1, seed=1))
    worse_manifest = register_candidate(registry, worse, parent_version=manifest.version)
    second = promote_if_better(registry, worse_manifest.version)
    if worse.metrics[PROMOTION_METRIC] <= candidate.metrics[PROMOTION_METRIC]:
        assert not second.promoted
        assert registry.production().version == manifest.version  # type: ignore[union-attr]
    else:
        assert second.promoted
        assert registry.production().version == worse_manifest.version  # type: ignore[union-attr]


def test_training_refuses_too_little_data() -> None:
    table = _labelled(1800)
    with pytest.raises(ValueError, match="only 0 windows of 60 consecutive labelled rows"):
        train_candidate(table.slice(0, 50), _tiny())
    with pytest.raises(ValueError, match="too little data"):
        train_candidate(table.slice(0, 100), _tiny())
