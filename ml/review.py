"""The evidence a trained candidate leaves for its evaluation: what the ``model_candidate`` asset hands to
``model_evaluation``, which judges it and renders it (tables, confusion matrix, equity curve).

:func:`candidate_evidence` takes the in-memory :class:`ml.workflow.Candidate` (and its registered manifest)
and keeps, as plain JSON-able data: the training curve, the test-fold metrics of the model and of every
baseline, the cost-aware backtest and its equity curve, and the model's confusion matrix per horizon on
the test fold (from the calibrated test-fold probabilities the evaluation was computed from).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from ml.datasets import LabelledRows, train_val_test_split
from ml.evaluation import PROMOTION_METRIC
from ml.registry import ModelRegistry, PromotionDecision
from ml.workflow import MODEL_NAME, Candidate, promote_if_better
from schemas.features import FeatureSpec
from schemas.model import N_CLASSES, ModelManifest


class CandidateEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """A registered candidate and the numbers behind it (JSON through ``msgspec``)."""

    version: str
    parent_version: str | None
    model_type: str
    symbols: list[str]
    data_start_ms: int
    data_end_ms: int
    n_train: int
    n_validation: int
    n_test: int
    train_seconds: float
    epochs_run: int
    best_epoch: int
    train_loss: list[float]
    val_loss: list[float]
    # model or baseline name -> horizon ("10s") -> metric -> value
    evaluation: dict[str, dict[str, dict[str, float]]]
    backtest: dict[str, Any]
    equity_exit_ms: list[int]
    equity_bps: list[float]
    confusion: dict[str, list[list[int]]]  # horizon -> [true class][predicted class] counts, the model's
    metrics: dict[str, float]
    promotion_metric: str = PROMOTION_METRIC
    # The run's best model on the gate metric when that was a baseline, registered too: the gate judges it
    # when it refuses the CNN-LSTM (ml.workflow.train_from_database's order).
    fallback_version: str | None = None
    fallback_model: str | None = None

    @property
    def versions(self) -> list[str]:
        """The versions to gate, in order."""
        return [self.version] + ([self.fallback_version] if self.fallback_version else [])


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES) -> list[list[int]]:
    """Counts [true][predicted] of class indices."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return counts.tolist()


def fold_confusion(candidate: Candidate, name: str = MODEL_NAME) -> dict[str, list[list[int]]]:
    """The confusion matrix per horizon of one model of the run (the CNN-LSTM by default) on the test fold,
    from the calibrated probabilities the evaluation was computed from."""
    fold = candidate.fold
    if fold is None or name not in fold.fits:
        raise ValueError(f"the candidate carries no test-fold predictions of {name!r}")
    predicted = fold.fits[name].proba.argmax(axis=-1)
    truth = fold.test.direction
    return {
        f"{h}s": confusion_matrix(truth[:, k], predicted[:, k]) for k, h in enumerate(fold.test.horizons_s)
    }


def gate_in_order(registry: ModelRegistry, versions: Sequence[str]) -> list[PromotionDecision]:
    """Pass ``versions`` through the gate (``ml.workflow.promote_if_better``) in order, stopping at the first
    promoted: the CNN-LSTM first, then the run's best baseline, as ``ml.workflow.train_from_database`` does."""
    decisions: list[PromotionDecision] = []
    for version in versions:
        decisions.append(promote_if_better(registry, version))
        if decisions[-1].promoted:
            break
    return decisions


def candidate_evidence(
    candidate: Candidate, manifest: ModelManifest, fallback: ModelManifest | None = None
) -> CandidateEvidence:
    """Everything ``model_evaluation`` shows and judges, from the trained candidate, the manifest of its
    CNN-LSTM and, when a baseline was the run's best model, that baseline's manifest."""
    trades = sorted(candidate.backtest.trades, key=lambda t: (t.exit_ts_ms, t.entry_ts_ms, t.symbol))
    net = np.cumsum([t.net_bps for t in trades]) if trades else np.zeros(0)
    history = candidate.history
    window = manifest.data_window
    return CandidateEvidence(
        version=manifest.version,
        parent_version=manifest.parent_version,
        model_type=manifest.model_type,
        symbols=list(window.symbols),
        data_start_ms=window.start_ms,
        data_end_ms=window.end_ms,
        n_train=window.n_train,
        n_validation=window.n_validation,
        n_test=window.n_test,
        train_seconds=float(candidate.train_seconds),
        epochs_run=history.epochs_run,
        best_epoch=history.best_epoch,
        train_loss=[float(x) for x in history.train_loss],
        val_loss=[float(x) for x in history.val_loss],
        evaluation=candidate.evaluation.to_dict()["models"],
        backtest=_json_numbers(candidate.backtest.summary()),
        equity_exit_ms=[int(t.exit_ts_ms) for t in trades],
        equity_bps=[float(x) for x in net],
        confusion=fold_confusion(candidate),
        metrics=dict(manifest.metrics),
        fallback_version=None if fallback is None else fallback.version,
        fallback_model=None if fallback is None else fallback.model_type,
    )


def _json_numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats (a Sharpe of a single trade) become None: JSON has no inf."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()}


def describe_splits(
    table: pa.Table,
    spec: FeatureSpec,
    *,
    fractions: tuple[float, float, float],
    n_folds: int = 3,
    stride: int = 1,
) -> list[dict[str, Any]]:
    """How a training window divides: the chronological train | validation | test split the candidate
    trains on, then ``n_folds`` walk-forward folds (expanding training history, consecutive test blocks),
    every boundary purged by the longest horizon. One dict per split (name, sizes, test span, purge)."""
    from ml.datasets import walk_forward_splits

    rows = LabelledRows.from_tables(table, spec=spec)
    ds = rows.windowed(stride=stride)
    splits = [("train/validation/test", train_val_test_split(ds, fractions, interval_ms=rows.interval_ms))]
    test_fraction = min(fractions[2], 0.9 / n_folds)
    try:
        folds = walk_forward_splits(ds, n_folds, test_fraction, interval_ms=rows.interval_ms)
    except ValueError:
        folds = []  # too few samples for folds: the single split is still described
    splits += [(f"walk-forward fold {k + 1}", split) for k, split in enumerate(folds)]
    out = []
    for name, split in splits:
        described = split.describe(ds)
        out.append(
            {
                "split": name,
                "train": described["train"]["n"],
                "validation": described["validation"]["n"],
                "test": described["test"]["n"],
                "test_start_ms": described["test"]["start_ms"],
                "test_end_ms": described["test"]["end_ms"],
                "purge_ms": described["purge_ms"],
            }
        )
    return out
