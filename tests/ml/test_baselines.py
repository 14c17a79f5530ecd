"""Baselines: majority class, logistic regression and gradient boosting on the last feature vector."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ml.datasets import WindowedDataset
from ml.models.baselines import (
    Baseline,
    GradientBoostingBaseline,
    LogisticBaseline,
    MajorityBaseline,
    default_baselines,
)
from tests.ml.synthetic_windows import T0_MS


def last_vector_dataset(n: int, seed: int = 0, n_features: int = 110) -> WindowedDataset:
    """Labels that the last feature vector decides: class of feature 5 (10 s) and of −feature 40 (30 s)."""
    rng = np.random.default_rng(seed)
    rows = n + 59
    features = rng.standard_normal((rows, n_features)).astype(np.float32)
    ends = np.arange(59, rows)
    last = features[ends]

    def classes(s: np.ndarray) -> np.ndarray:
        return np.where(s < -0.5, 0, np.where(s > 0.5, 2, 1))

    direction = np.stack(
        [classes(last[:, 5]), classes(-last[:, 40 % n_features]), rng.integers(0, 3, n)], axis=1
    )
    return WindowedDataset(
        features=features,
        ends=ends,
        direction=direction.astype(np.int64),
        movement_bps=rng.standard_normal((n, 3)),
        ts_ms=T0_MS + ends * 1000,
        symbols=np.full(n, "SYNUSDT"),
        mid=np.full(n, 100.0),
    )


def accuracy(proba: np.ndarray, ds: WindowedDataset) -> np.ndarray:
    return np.asarray((proba.argmax(axis=-1) == ds.direction).mean(axis=0))


def test_majority_predicts_the_training_frequencies() -> None:
    ds = last_vector_dataset(300)
    base = MajorityBaseline().fit(ds)
    proba = base.predict_proba(last_vector_dataset(50, seed=1))
    assert proba.shape == (50, 3, 3) and proba.dtype == np.float64
    for h in range(3):
        freq = np.bincount(ds.direction[:, h], minlength=3) / len(ds)
        np.testing.assert_allclose(proba[:, h], np.broadcast_to(freq, (50, 3)))
        assert base.majority_classes[h] == np.argmax(freq)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0)


def test_majority_gives_an_absent_class_probability_zero() -> None:
    ds = last_vector_dataset(100)
    only_down_or_flat = replace(ds, direction=np.minimum(ds.direction, 1))
    proba = MajorityBaseline().fit(only_down_or_flat).predict_proba(ds)
    assert proba.shape == (100, 3, 3) and (proba[..., 2] == 0).all()


@pytest.mark.parametrize(
    "make",
    [LogisticBaseline, lambda: GradientBoostingBaseline(max_iter=15, max_leaf_nodes=4, learning_rate=0.3)],
)
def test_classifiers_learn_a_task_the_last_vector_decides(make: type[Baseline]) -> None:
    train, test = last_vector_dataset(800, seed=2), last_vector_dataset(500, seed=3)
    base = make().fit(train)
    proba = base.predict_proba(test)
    assert proba.shape == (500, 3, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, atol=1e-9)
    acc = accuracy(proba, test)
    majority = accuracy(MajorityBaseline().fit(train).predict_proba(test), test)
    assert acc[0] > 0.75 and acc[1] > 0.75, acc  # learnable horizons
    assert majority[0] < 0.5 and majority[1] < 0.5
    assert acc[2] < 0.45  # coin flips stay coin flips


@pytest.mark.parametrize("make", [LogisticBaseline, lambda: GradientBoostingBaseline(max_iter=5)])
def test_a_class_missing_from_training_still_gets_its_column(make: type[Baseline]) -> None:
    ds = last_vector_dataset(400, seed=4)
    direction = ds.direction.copy()
    direction[:, 0] = np.where(direction[:, 0] == 2, 1, direction[:, 0])  # no "up" at 10 s
    direction[:, 1] = 2  # a single class at 30 s
    proba = make().fit(replace(ds, direction=direction)).predict_proba(ds)
    assert proba.shape == (400, 3, 3)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, atol=1e-9)
    assert (proba[:, 0, 2] == 0).all() and (proba[:, 0, :2] > 0).any(axis=-1).all()
    assert (proba[:, 1] == [0.0, 0.0, 1.0]).all()


def test_the_preprocessor_is_applied_to_the_last_vectors() -> None:
    class Zeroes:
        def transform(self, features: np.ndarray) -> np.ndarray:
            return np.zeros_like(features, dtype=np.float32)

    train = last_vector_dataset(600, seed=5)
    plain = LogisticBaseline().fit(train).predict_proba(train)
    blind = LogisticBaseline(Zeroes()).fit(train).predict_proba(train)
    assert len(np.unique(blind[:, 0].round(12), axis=0)) == 1  # no information left: one answer for all
    assert len(np.unique(plain[:, 0].round(12), axis=0)) > 1


def test_gradient_boosting_is_deterministic_for_a_seed() -> None:
    train = last_vector_dataset(150, seed=6)
    a = GradientBoostingBaseline(max_iter=5, seed=1).fit(train).predict_proba(train)
    b = GradientBoostingBaseline(max_iter=5, seed=1).fit(train).predict_proba(train)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("base", [MajorityBaseline(), LogisticBaseline(), GradientBoostingBaseline()])
def test_predicting_before_fit_is_refused(base: Baseline) -> None:
    with pytest.raises(RuntimeError, match="call fit"):
        base.predict_proba(last_vector_dataset(5))


def test_bad_inputs_are_refused_with_a_clear_error() -> None:
    ds = last_vector_dataset(100)
    with pytest.raises(ValueError, match="class indices"):
        LogisticBaseline().fit(replace(ds, direction=ds.direction - 1))  # −1/0/1 instead of 0/1/2
    with pytest.raises(ValueError, match="empty"):
        MajorityBaseline().fit(ds.subset(np.array([], dtype=np.int64)))
    fitted = LogisticBaseline().fit(ds)
    with pytest.raises(ValueError, match="fitted on 110 features, got 20"):
        fitted.predict_proba(last_vector_dataset(10, n_features=20))
    features = ds.features.copy()
    features[ds.ends[3], 17] = np.nan
    with pytest.raises(ValueError, match=r"non-finite input features in columns \[17\]"):
        fitted.predict_proba(replace(ds, features=features))


def test_default_baselines_share_the_interface() -> None:
    train = last_vector_dataset(100, seed=7)
    bases = default_baselines(seed=0)
    assert [b.name for b in bases] == ["majority", "logistic", "gradient_boosting"]
    for base in bases:
        assert isinstance(base, Baseline)
        assert base.fit(train).predict_proba(train).shape == (100, 3, 3)
