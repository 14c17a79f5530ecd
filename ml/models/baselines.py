"""Baselines the CNN-LSTM must beat: majority class, logistic regression and gradient boosting.

All share one interface: ``fit(ds) -> self``, ``predict_proba(ds) -> (n, H, 3)`` float64 (classes down,
flat, up) and a ``name``. The two classifiers see only the feature vector at the decision time
(``WindowedDataset.last_vectors``), one classifier per horizon: they measure what the window adds.

A class absent from a horizon's training labels still gets its column (probability 0), and a horizon
with a single training class predicts that class with certainty: scikit-learn's classifiers refuse or
shrink their output in both cases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml.datasets import WindowedDataset
from schemas.model import N_CLASSES


class Transform(Protocol):
    """What the baselines need of a preprocessor (``ml.preprocessing.FeaturePreprocessor``)."""

    def transform(self, features: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Baseline(Protocol):
    name: str

    def fit(self, ds: WindowedDataset) -> Self: ...

    def predict_proba(self, ds: WindowedDataset) -> np.ndarray: ...


def _check_labels(ds: WindowedDataset, who: str) -> None:
    if len(ds) == 0:
        raise ValueError(f"{who}.fit: the training dataset is empty")
    labels = ds.direction
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise ValueError(
            f"{who}.fit: direction labels must be class indices 0..{N_CLASSES - 1}, "
            f"got values in [{labels.min()}, {labels.max()}]"
        )


class MajorityBaseline:
    """Per horizon, the training class frequencies: its argmax is the majority class.

    Frequencies rather than a one-hot vector, so that its log-loss is the no-skill reference instead of
    infinity; accuracy and F1 are those of always predicting the majority class.
    """

    def __init__(self, name: str = "majority") -> None:
        self.name = name
        self.priors_: np.ndarray | None = None  # (H, 3)

    def fit(self, ds: WindowedDataset) -> Self:
        _check_labels(ds, type(self).__name__)
        counts = np.stack([np.bincount(col, minlength=N_CLASSES) for col in ds.direction.T])
        self.priors_ = counts / counts.sum(axis=1, keepdims=True)
        return self

    @property
    def majority_classes(self) -> np.ndarray:
        """(H,) the majority class of each horizon (ties go to the lower class index)."""
        if self.priors_ is None:
            raise RuntimeError(f"{self.name}: call fit() before majority_classes")
        return np.asarray(np.argmax(self.priors_, axis=1))

    def predict_proba(self, ds: WindowedDataset) -> np.ndarray:
        if self.priors_ is None:
            raise RuntimeError(f"{self.name}: call fit() before predict_proba()")
        if len(ds.horizons_s) != len(self.priors_):
            raise ValueError(f"{self.name}: fitted on {len(self.priors_)} horizons, got {len(ds.horizons_s)}")
        return np.broadcast_to(self.priors_, (len(ds), *self.priors_.shape)).astype(np.float64)


class _PerHorizonClassifier(ABC):
    """One scikit-learn classifier per horizon on the (preprocessed) last feature vector; subclasses say
    which estimator (``_make``)."""

    def __init__(self, name: str, preprocessor: Transform | None) -> None:
        self.name = name
        self.preprocessor = preprocessor
        self.models_: list[Any] = []  # a fitted estimator, or the class index of a single-class horizon
        self.n_features_: int | None = None

    @abstractmethod
    def _make(self) -> Any:
        """A new, unfitted scikit-learn estimator."""

    def _inputs(self, ds: WindowedDataset) -> np.ndarray:
        x = ds.last_vectors()
        if self.preprocessor is not None:
            x = self.preprocessor.transform(x)
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            bad = np.unique(np.nonzero(~np.isfinite(x))[1])
            raise ValueError(f"{self.name}: non-finite input features in columns {bad[:10].tolist()}")
        return x

    def fit(self, ds: WindowedDataset) -> Self:
        _check_labels(ds, self.name)
        x = self._inputs(ds)
        self.n_features_ = x.shape[1]
        self.models_ = []
        for h in range(ds.direction.shape[1]):
            y = ds.direction[:, h]
            classes = np.unique(y)
            self.models_.append(int(classes[0]) if len(classes) == 1 else self._make().fit(x, y))
        return self

    def predict_proba(self, ds: WindowedDataset) -> np.ndarray:
        if not self.models_:
            raise RuntimeError(f"{self.name}: call fit() before predict_proba()")
        if ds.n_features != self.n_features_:
            raise ValueError(f"{self.name}: fitted on {self.n_features_} features, got {ds.n_features}")
        x = self._inputs(ds)
        out = np.zeros((len(ds), len(self.models_), N_CLASSES), dtype=np.float64)
        for h, model in enumerate(self.models_):
            if isinstance(model, int):
                out[:, h, model] = 1.0
            else:
                out[:, h, model.classes_.astype(np.int64)] = model.predict_proba(x)
        return out


class LogisticBaseline(_PerHorizonClassifier):
    """Multinomial logistic regression per horizon (standardised inside, so raw features also work).

    C = 0.05 by default: with 110 features, a few of them slow, and hours of one-second rows, C = 1 fitted the
    training fold's minutes and gave test log-losses of 4–8 (confidently wrong), a baseline nobody should beat
    by being merely sane.
    """

    def __init__(
        self,
        preprocessor: Transform | None = None,
        *,
        C: float = 0.05,
        max_iter: int = 1000,
        class_weight: str | None = None,
        name: str = "logistic",
    ) -> None:
        super().__init__(name, preprocessor)
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight

    def _make(self) -> Any:
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight),
        )


class GradientBoostingBaseline(_PerHorizonClassifier):
    """scikit-learn's HistGradientBoostingClassifier per horizon, with a fixed number of iterations.

    Early stopping is off: its validation split is random, which on time series would pick the
    iteration count on samples that neighbour the training ones. The defaults regularise (shrinkage 0.05,
    15 leaves of at least 100 samples, L2 1.0) for the same reason as the logistic baseline's C.
    """

    def __init__(
        self,
        preprocessor: Transform | None = None,
        *,
        max_iter: int = 100,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 100,
        l2_regularization: float = 1.0,
        class_weight: str | None = None,
        seed: int = 0,
        name: str = "gradient_boosting",
    ) -> None:
        super().__init__(name, preprocessor)
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.class_weight = class_weight
        self.seed = seed

    def _make(self) -> Any:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            class_weight=self.class_weight,
            early_stopping=False,
            random_state=self.seed,
        )


def default_baselines(preprocessor: Transform | None = None, seed: int = 0) -> list[Baseline]:
    """The three baselines every evaluation reports beside the model."""
    return [
        MajorityBaseline(),
        LogisticBaseline(preprocessor),
        GradientBoostingBaseline(preprocessor, seed=seed),
    ]
