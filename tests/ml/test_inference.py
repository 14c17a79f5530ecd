"""The predictor: single vs batch, input checks, warm-up, latency, manifest and preprocessor checks."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
import torch

from ml.inference import BatchPrediction, Prediction, Predictor
from ml.models import HybridCNNLSTM, create_model
from ml.preprocessing import FeaturePreprocessor
from schemas.features import FEATURE_NAMES, feature_spec
from schemas.model import DataWindow, ModelManifest
from tests.ml.synthetic_windows import TINY, IdentityPreprocessor

torch.set_num_threads(1)


def tiny_model(seed: int = 0) -> HybridCNNLSTM:
    torch.manual_seed(seed)
    return create_model(TINY)


def windows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 60, 110)).astype(np.float32)


def manifest(**changes: object) -> ModelManifest:
    base = ModelManifest(
        version="20250101T000000Z-abc123",
        model_type="hybrid_cnn_lstm",
        created_ms=0,
        feature_spec_hash=feature_spec().spec_hash,
        definitions_version=1,
        feature_names=list(FEATURE_NAMES),
        horizons_s=[10, 30, 60],
        artifact_path="weights.pt",
        artifact_sha256="0" * 64,
        data_window=DataWindow(symbols=["BTCUSDT"], start_ms=0, end_ms=1),
        code_version="test",
    )
    return msgspec.structs.replace(base, **changes)


@pytest.fixture
def predictor() -> Predictor:
    return Predictor(tiny_model(), IdentityPreprocessor())


def test_predict_equals_the_matching_batch_row(predictor: Predictor) -> None:
    xs = windows(5)
    batch = predictor.predict_batch(xs)
    assert isinstance(batch, BatchPrediction) and len(batch) == 5
    assert batch.probabilities.shape == (5, 3, 3) and batch.probabilities.dtype == np.float64
    for i in range(5):
        single = predictor.predict(xs[i])
        row = batch.row(i)
        np.testing.assert_allclose(single.probabilities, row.probabilities, atol=1e-6)
        assert single.direction == row.direction
        assert single.confidence == pytest.approx(row.confidence, abs=1e-6)
        np.testing.assert_allclose(single.expected_return_bps, row.expected_return_bps, atol=1e-4)


def test_prediction_fields_follow_the_contract(predictor: Predictor) -> None:
    p = predictor.predict(windows(1)[0])
    assert isinstance(p, Prediction)
    assert p.probabilities.shape == (3, 3)
    np.testing.assert_allclose(p.probabilities.sum(axis=1), 1.0, atol=1e-12)
    assert p.direction == tuple(int(c) - 1 for c in p.probabilities.argmax(axis=1))
    assert set(p.direction) <= {-1, 0, 1}
    assert 0.0 <= p.confidence <= 1.0
    assert len(p.expected_return_bps) == 3 and p.horizons_s == (10, 30, 60)
    assert p.to_dict()["direction"] == list(p.direction)


def test_predictions_are_the_model_on_the_preprocessed_window() -> None:
    rng = np.random.default_rng(1)
    raw = (rng.standard_normal((400, 110)) * 10 + 100).astype(np.float32)  # prices, depths … all positive
    pre = FeaturePreprocessor.fit(raw)
    model = tiny_model().eval()
    predictor = Predictor(model, pre, manifest=manifest())
    window = raw[-60:]
    with torch.no_grad():
        logits = model(torch.from_numpy(pre.transform(window)[None])).direction_logits
    expected = torch.softmax(logits.double(), dim=-1)[0].numpy()
    np.testing.assert_allclose(predictor.predict(window).probabilities, expected, atol=1e-6)
    assert predictor.predict(window).model_version == "20250101T000000Z-abc123"


def test_large_batches_are_chunked_without_changing_results() -> None:
    xs = windows(7, seed=2)
    whole = Predictor(tiny_model(), IdentityPreprocessor()).predict_batch(xs)
    chunked = Predictor(tiny_model(), IdentityPreprocessor(), batch_chunk=3).predict_batch(xs)
    np.testing.assert_allclose(whole.probabilities, chunked.probabilities, atol=1e-6)
    np.testing.assert_array_equal(whole.direction, chunked.direction)


@pytest.mark.parametrize(
    ("shape", "batched"),
    [
        ((59, 110), False),
        ((60, 109), False),
        ((1, 60, 110), False),
        ((110,), False),
        ((60, 110), True),
        ((0, 60, 110), True),
        ((2, 61, 110), True),
    ],
)
def test_bad_shapes_are_refused(predictor: Predictor, shape: tuple[int, ...], batched: bool) -> None:
    x = np.zeros(shape, dtype=np.float32)
    call = predictor.predict_batch if batched else predictor.predict
    with pytest.raises(ValueError, match="must have shape"):
        call(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_naming_row_and_feature(predictor: Predictor, bad: float) -> None:
    x = windows(2)
    x[1, 7, 2] = bad
    with pytest.raises(ValueError, match=r"window 1, row 7 \(feature 'mid_price'\)"):
        predictor.predict_batch(x)
    with pytest.raises(ValueError, match=r"first at row 7 \(feature 'mid_price'\)"):
        predictor.predict(x[1])


def test_non_numeric_input_is_refused(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="real numbers"):
        predictor.predict(np.full((60, 110), "1.0"))


def test_a_preprocessor_that_returns_garbage_is_caught() -> None:
    class Broken:
        def transform(self, features: np.ndarray) -> np.ndarray:
            return np.full(features.shape, np.nan, dtype=np.float32)

    with pytest.raises(ValueError, match="the preprocessed window has"):
        Predictor(tiny_model(), Broken()).predict(windows(1)[0])


def test_warm_runs_a_forward_pass_and_latency_is_recorded(predictor: Predictor) -> None:
    assert predictor.warm() > 0
    assert predictor.latency_stats().count == 0  # the warm-up is not a prediction
    preds = [predictor.predict(w) for w in windows(20)]
    predictor.predict_batch(windows(4))  # batches are not single-prediction latencies
    stats = predictor.latency_stats()
    assert stats.count == 20
    assert all(p.latency_ms > 0 for p in preds)
    assert 0 < stats.p50_ms <= stats.p99_ms <= stats.max_ms
    assert stats.last_ms == preds[-1].latency_ms
    assert stats.mean_ms == pytest.approx(np.mean([p.latency_ms for p in preds]))


def test_predictor_puts_the_model_in_eval_mode_and_computes_no_gradients() -> None:
    model = tiny_model().train()
    predictor = Predictor(model, IdentityPreprocessor())
    assert not model.training
    a = predictor.predict(windows(1)[0])
    b = predictor.predict(windows(1)[0])
    np.testing.assert_array_equal(a.probabilities, b.probabilities)  # dropout is off
    assert all(p.grad is None for p in model.parameters())


def test_manifest_and_preprocessor_must_agree() -> None:
    rng = np.random.default_rng(2)
    pre = FeaturePreprocessor.fit((rng.standard_normal((100, 110)) + 50).astype(np.float32))
    with pytest.raises(ValueError, match="feature-spec hash"):
        Predictor(tiny_model(), pre, manifest=manifest(feature_spec_hash="f" * 64))
    with pytest.raises(ValueError, match="predicts 3 horizons"):
        Predictor(tiny_model(), pre, manifest=manifest(horizons_s=[10, 30]))
    with pytest.raises(ValueError, match="lists 109 features"):
        Predictor(tiny_model(), pre, manifest=manifest(feature_names=list(FEATURE_NAMES[:-1])))


def test_constructor_refuses_what_cannot_work() -> None:
    with pytest.raises(TypeError, match=r"must be a torch\.nn\.Module"):
        Predictor(object(), IdentityPreprocessor())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="has no transform"):
        Predictor(tiny_model(), object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        Predictor(tiny_model(), IdentityPreprocessor(), num_threads=0)
