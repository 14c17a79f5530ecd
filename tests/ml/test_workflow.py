"""The whole ML path on data recorded from the paper exchange: rows → features and labels → a trained,
evaluated candidate → a registered, promoted version that serves what it was evaluated on."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from depthcharge.offline_recording import SimRecording
from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from ml.datasets import LabelledRows
from ml.evaluation import PROMOTION_METRIC
from ml.inference import Predictor
from ml.preprocessing import FeaturePreprocessor
from ml.registry import ModelRegistry
from ml.training import predict_proba
from ml.workflow import (
    MODEL_NAME,
    CandidateConfig,
    NoRecordedData,
    labelled_features,
    load_labelled_features,
    promote_if_better,
    quick_config,
    recorded_span,
    register_candidate,
    train_candidate,
    train_from_database,
)
from schemas.enums import ModelStatus
from schemas.features import feature_spec
from schemas.model import WINDOW
from tests.fixtures.recorded import recorded_arrow, recorded_market

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


@pytest.mark.slow(seconds=180)  # 3 × 40 min of recording (about 2 min on a cold cache) and a quick training
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
    assert manifest.params["calibration"]["temperatures"] == pytest.approx(
        candidate.model.temperature.tolist()
    )
    # The gate compares it with the best other model of its run (no production yet) within the interval.
    decision = promote_if_better(registry, manifest.version)
    assert decision.gate is not None
    assert [c["kind"] for c in decision.gate["comparisons"]] == ["run"]
    assert decision.promoted == decision.gate["comparisons"][0]["beaten"]
    production = registry.production()
    assert (production is not None and production.version == manifest.version) == decision.promoted

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


def test_training_refuses_too_little_data() -> None:
    table = _labelled(1800)
    with pytest.raises(ValueError, match="only 0 windows of 60 consecutive labelled rows"):
        train_candidate(table.slice(0, 50), _tiny())
    with pytest.raises(ValueError, match="too little data"):
        train_candidate(table.slice(0, 100), _tiny())


def _store_recording(db: Database, seconds: int, symbol: str = "BTCUSDT") -> None:
    rec = recorded_market(seconds=seconds, symbols=(symbol,), seed=7)  # records outside the event loop
    asyncio.run(_ingest(db, rec, symbol))


async def _ingest(db: Database, rec: SimRecording, symbol: str) -> None:
    pool = await db.open_pool()
    try:
        repo = MarketDataRepository(pool)
        await repo.ingest_snapshots(rec.rows[symbol])
        await repo.ingest_candles(rec.candles[symbol])
    finally:
        await pool.close()


def test_training_data_from_the_database_equals_the_recording(db: Database, tmp_path: Path) -> None:
    """`ml.workflow` reads the recorded rows and the candle history they need through `infra.db`."""
    _store_recording(db, 1800)
    rows = recorded_market(seconds=1800, symbols=("BTCUSDT",), seed=7).rows["BTCUSDT"]
    span = recorded_span(db, "BTCUSDT")
    assert span == (rows[0].ts, rows[-1].ts)
    assert recorded_span(db, "ETHUSDT") is None
    loaded = load_labelled_features(db, "BTCUSDT", *span, spec=SPEC)
    assert loaded.equals(_labelled(1800))
    with pytest.raises(NoRecordedData, match="no rows of BTCUSDT recorded between 0 and 1000"):
        load_labelled_features(db, "BTCUSDT", 0, 1000, spec=SPEC)
    with pytest.raises(NoRecordedData, match="nothing recorded for ETHUSDT: record first"):
        train_from_database(
            db, ["BTCUSDT", "ETHUSDT"], models_dir=tmp_path / "models", spec=SPEC, config=_tiny()
        )


@pytest.mark.slow  # a tiny training run on 30 minutes of rows
def test_train_from_database_registers_and_gates_the_run(db: Database, tmp_path: Path) -> None:
    _store_recording(db, 1800)
    run = train_from_database(db, ["BTCUSDT"], models_dir=tmp_path / "models", spec=SPEC, config=_tiny())
    assert run.rows == {"BTCUSDT": _labelled(1800).num_rows}
    assert (tmp_path / "models" / run.manifest.version).is_dir()
    assert run.attempts[0] == (run.manifest, run.decision)
    best = run.candidate.best_model(PROMOTION_METRIC)
    if run.decision.promoted or best == MODEL_NAME:
        assert len(run.attempts) == 1
    else:  # the CNN-LSTM was refused and a baseline was the run's best: it is registered and gated too
        assert len(run.attempts) == 2 and run.attempts[1][0].model_type == best
    production = ModelRegistry(db, root=tmp_path / "models").production()
    assert (production.version if production else None) == (run.promoted.version if run.promoted else None)
