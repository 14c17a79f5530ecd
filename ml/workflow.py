"""From recorded rows to a registered model: the steps the Dagster assets, `depthcharge train` and
`depthcharge demo` call.

Each step is a plain function over Arrow tables and the objects of `ml`, so it is testable without
Dagster: :func:`labelled_features` (raw rows + candles → the 110 features and the labels of one
symbol), :func:`train_candidate` (labelled tables → a trained, calibrated CNN-LSTM with its
preprocessor, evaluated on the test fold beside every calibrated baseline and backtested with fees;
``ml.candidate.fit_fold`` does the work, the same function every fold of the evaluation protocol runs),
:func:`register_candidate` (the CNN-LSTM or any baseline of the run → a model version with the run's
gate evidence) and :func:`promote_if_better` (the gate of ``ml.gate``: beat production and every other
model of the run by more than the interval). Over the database (`infra.db` repositories):
:func:`recorded_span`, :func:`load_labelled_features` (one symbol's recorded rows and the candle
history they need → labelled features) and :func:`train_from_database`, all of the above in one call:
it registers the CNN-LSTM and, when the CNN-LSTM is not promoted and a baseline was the run's best,
that baseline too, so the gate always has the run's best model to consider.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from infra.db.connection import Database
from infra.db.repositories.market_data import read_candles, read_snapshots, snapshot_span
from ml.backtest import BacktestResult, backtest
from ml.candidate import MODEL_NAME, CandidateConfig, FoldFit, fit_fold, fitted_baseline, quick_config
from ml.datasets import InsufficientData, LabelledRows, Split, WindowedDataset, train_val_test_split
from ml.evaluation import PROMOTION_METRIC, EvaluationReport, higher_is_better
from ml.features.pipeline import compute_features
from ml.gate import GateConfig, GateEvidence, evidence_from_fold
from ml.labels import LabelConfig, attach_labels
from ml.models.served import class_mean_moves, export_baseline
from ml.preprocessing import FeaturePreprocessor
from ml.registry import ModelRegistry, PromotionDecision
from ml.training import TrainingHistory
from schemas.features import CANDLE_WINDOW, FeatureSpec, feature_spec
from schemas.market import CANDLE_INTERVAL_MS
from schemas.model import DataWindow, ModelManifest

MODEL_TYPE = "hybrid_cnn_lstm"
__all__ = [
    "MODEL_NAME",
    "MODEL_TYPE",
    "Candidate",
    "CandidateConfig",
    "NoRecordedData",
    "TrainingRun",
    "labelled_features",
    "load_labelled_features",
    "promote_if_better",
    "quick_config",
    "recorded_span",
    "register_candidate",
    "train_candidate",
    "train_from_database",
]


def labelled_features(
    raw_rows: pa.Table,
    candles: pa.Table,
    *,
    n_lookback: int = 0,
    spec: FeatureSpec | None = None,
    labels: LabelConfig | None = None,
) -> pa.Table:
    """The labelled_features table of one symbol: features of every row after the ``n_lookback``
    prepended rows, joined with their labels; rows without a full horizon are dropped.

    ``raw_rows`` should run at least the longest horizon past the last row to be labelled.
    """
    spec = spec or feature_spec()
    features = compute_features(raw_rows, candles, n_lookback=n_lookback, spec=spec)
    config = labels or LabelConfig.for_spec(spec)
    return attach_labels(features, raw_rows, spec=spec, config=config)


@dataclass
class Candidate:
    """A trained model with what it needs to serve (preprocessor) and what it was judged on: the test
    fold's metrics of every model (calibrated), the CNN-LSTM's backtest, and the gate's evidence."""

    model: torch.nn.Module
    preprocessor: FeaturePreprocessor
    config: CandidateConfig
    spec: FeatureSpec
    history: TrainingHistory
    evaluation: EvaluationReport
    backtest: BacktestResult
    split: dict[str, Any]
    data_window: DataWindow
    train_seconds: float
    fold: FoldFit | None = None
    evidence: GateEvidence | None = None

    def best_model(self, metric: str = PROMOTION_METRIC) -> str:
        """The run's best model on ``metric`` by its point value (the CNN-LSTM wins a tie)."""
        sign = 1.0 if higher_is_better(metric) else -1.0
        names = [MODEL_NAME, *(n for n in self.evaluation.rows if n != MODEL_NAME)]
        return max(names, key=lambda n: sign * self.evaluation.metrics(n)[metric])

    def metrics_of(self, name: str) -> dict[str, float]:
        """The manifest metrics of one model of the run (``metrics`` for the CNN-LSTM)."""
        if name == MODEL_NAME:
            return self.metrics
        out = dict(self.evaluation.metrics(name))
        for other in self.evaluation.rows:
            if other != name:
                out.update({f"{other}.{k}": v for k, v in self.evaluation.metrics(other).items()})
        return out

    @property
    def metrics(self) -> dict[str, float]:
        """The manifest's metrics: the model's test-fold figures, its backtest, and each baseline's
        figures under ``<baseline>.<metric>`` so a later reader can see the margin."""
        out = dict(self.evaluation.metrics(MODEL_NAME))
        for key, value in self.backtest.summary().items():
            if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
                out[f"backtest_{key}"] = float(value)
        for name in self.evaluation.rows:
            if name != MODEL_NAME:
                out.update({f"{name}.{k}": v for k, v in self.evaluation.metrics(name).items()})
        return out


def train_candidate(
    tables: pa.Table | Sequence[pa.Table],
    config: CandidateConfig | None = None,
    *,
    spec: FeatureSpec | None = None,
) -> Candidate:
    """Train and evaluate a CNN-LSTM candidate on labelled_features tables (any symbols and days).

    Chronological train | validation | test split with a purge gap; the preprocessor is fitted on the rows
    the training windows read and nothing else; the baselines see the same preprocessed vectors; every
    model is calibrated on the validation block (``ml.candidate.fit_fold``). The evaluation holds the
    calibrated test-fold metrics; the evidence the gate needs is kept with the candidate.
    """
    config = config or CandidateConfig()
    spec = spec or feature_spec()
    started = time.perf_counter()
    rows = LabelledRows.from_tables(tables, spec=spec)
    raw_ds = rows.windowed(stride=config.stride)
    if len(raw_ds) < 3:
        raise InsufficientData(
            f"only {len(raw_ds)} windows of 60 consecutive labelled rows: record more data before training"
        )
    split = train_val_test_split(raw_ds, config.fractions, interval_ms=rows.interval_ms)
    fold = fit_fold(rows, raw_ds, split, config)
    test = fold.test
    report = EvaluationReport(test.horizons_s)
    for name, fit in fold.fits.items():
        report.add(name, fit.proba, test.direction)
    result = backtest(fold.fits[MODEL_NAME].proba, test, config.backtest)
    evidence = evidence_from_fold(
        test.horizons_s,
        test.ts_ms,
        test.symbols,
        test.direction,
        {name: fit.proba for name, fit in fold.fits.items()},
        fold.rows.features,
        test.ends,
    )
    return Candidate(
        model=fold.model,
        preprocessor=fold.preprocessor,
        config=config,
        spec=spec,
        history=fold.history,
        evaluation=report,
        backtest=result,
        split=split.describe(raw_ds),
        data_window=_data_window(raw_ds, split),
        train_seconds=time.perf_counter() - started,
        fold=fold,
        evidence=evidence,
    )


def _data_window(ds: WindowedDataset, split: Split) -> DataWindow:
    return DataWindow(
        symbols=sorted({str(s) for s in ds.symbols}),
        start_ms=int(ds.ts_ms.min()),
        end_ms=int(ds.ts_ms.max()),
        n_train=len(split.train),
        n_validation=len(split.validation),
        n_test=len(split.test),
    )


def register_candidate(
    registry: ModelRegistry,
    candidate: Candidate,
    *,
    parent_version: str | None = None,
    model: str = MODEL_NAME,
) -> ModelManifest:
    """Save one model of the run as a new model version (status candidate), with the run's gate evidence.

    ``model`` is the CNN-LSTM (default) or the name of a baseline of the run (``majority``, ``logistic``,
    ``gradient_boosting``), exported as a served module (``ml.models.served``) behind the same
    preprocessor, so the registry and the predictor treat it like any model.
    """
    params = candidate.config.to_params()
    params["run_model"] = model
    params["split"] = candidate.split
    params["evaluation"] = candidate.evaluation.to_dict()
    params["train_seconds"] = round(candidate.train_seconds, 3)
    fold = candidate.fold
    calibration = None if fold is None else fold.fits[model].calibration if model in fold.fits else None
    if calibration is not None:
        params["calibration"] = calibration.to_dict()
    evidence = None if candidate.evidence is None else candidate.evidence.to_bytes()
    if model == MODEL_NAME:
        params["history"] = candidate.history.to_dict()
        params["backtest_summary"] = candidate.backtest.summary()
        module, model_type = candidate.model, MODEL_TYPE
    else:
        if fold is None:
            raise ValueError(f"candidate has no fitted baselines to register {model!r} from")
        baseline = fitted_baseline(fold, model)
        module, spec = export_baseline(
            baseline,
            n_features=fold.train.n_features,
            class_move_bps=class_mean_moves(fold.train.direction, fold.train.movement_bps),
            temperatures=None if calibration is None else calibration.temperatures,
            primary_horizon=candidate.config.trainer.primary_horizon,
        )
        params["baseline"] = spec
        params["backtest_summary"] = backtest(
            fold.fits[model].proba, fold.test, candidate.config.backtest
        ).summary()
        model_type = spec["kind"]
    return registry.save(
        module,
        model_type=model_type,
        params=params,
        preprocessor_dict=candidate.preprocessor.to_dict(),
        metrics=candidate.metrics_of(model),
        data_window=candidate.data_window,
        horizons_s=candidate.evaluation.horizons_s,
        feature_spec=candidate.spec,
        parent_version=parent_version,
        evidence=evidence,
    )


def promote_if_better(
    registry: ModelRegistry,
    version: str,
    *,
    metric: str = PROMOTION_METRIC,
    gate: GateConfig | None = None,
    actor: str = "system",
    trace_id: str | None = None,
) -> PromotionDecision:
    """Promote ``version`` when the gate (``ml.gate``) finds it better, beyond the interval of ``metric``,
    than both the production model and every other model of its run; the decision is stored with the
    version and audited (``ModelRegistry.promote_gated``).

    A version registered without gate evidence (not from :func:`register_candidate`) is refused: a
    promotion is never decided on a number without its interval.
    """
    from ml.gate import decide_for_version

    config = gate if gate is not None else GateConfig(metric=metric)
    return registry.promote_gated(
        version,
        lambda candidate, production: decide_for_version(registry, candidate, production, config),
        actor=actor,
        trace_id=trace_id,
    )


# ---- over the database ---------------------------------------------------------------------------------


class NoRecordedData(ValueError):
    """The database holds no recorded rows where training asked for them."""


@dataclass
class TrainingRun:
    """What :func:`train_from_database` did: the candidate, the CNN-LSTM's registered version and its
    promotion decision, the labelled rows used per symbol, and every version the run registered and
    gated (the CNN-LSTM first, then the run's best baseline when the CNN-LSTM was not promoted)."""

    candidate: Candidate
    manifest: ModelManifest
    decision: PromotionDecision
    rows: dict[str, int]
    attempts: list[tuple[ModelManifest, PromotionDecision]] = field(default_factory=list)

    @property
    def promoted(self) -> ModelManifest | None:
        """The version this run put into production, if any."""
        return next((m for m, d in self.attempts if d.promoted), None)


def recorded_span(db: Database, symbol: str) -> tuple[int, int] | None:
    """The ts of the first and the last recorded raw snapshot row of ``symbol``, or None."""
    with db.connect() as conn:
        return snapshot_span(conn, symbol)


def load_labelled_features(
    db: Database, symbol: str, start_ms: int, end_ms: int, *, spec: FeatureSpec
) -> pa.Table:
    """The labelled_features table of ``symbol`` for its recorded rows in [start_ms, end_ms], computed
    with the candle history K(t) needs (CANDLE_WINDOW minutes before the first row).

    Raises :class:`NoRecordedData` when no row of ``symbol`` lies in the range.
    """
    with db.connect() as conn:
        rows = read_snapshots(conn, symbol, start_ms, end_ms + 1)
        candles = read_candles(conn, symbol, start_ms - (CANDLE_WINDOW + 1) * CANDLE_INTERVAL_MS, end_ms + 1)
    if rows.num_rows == 0:
        raise NoRecordedData(f"no rows of {symbol} recorded between {start_ms} and {end_ms}")
    return labelled_features(rows, candles, spec=spec)


def train_from_database(
    db: Database,
    symbols: Sequence[str],
    *,
    models_dir: Path,
    spec: FeatureSpec,
    config: CandidateConfig,
    start_ms: int | None = None,
    end_ms: int | None = None,
    gate: GateConfig | None = None,
) -> TrainingRun:
    """Train a candidate on the recorded rows of ``symbols`` in [start_ms, end_ms] (default: from the
    first to the last row recorded of any of them), register it under ``models_dir`` and pass it through
    the gate; when the gate refuses it and a baseline was the run's best model, register and gate that
    baseline too (module docstring).

    Raises :class:`NoRecordedData` naming the symbols with nothing recorded, and ``ValueError`` when
    the rows are too few to train on.
    """
    chosen = list(symbols)
    if not chosen:
        raise ValueError("name at least one symbol to train on")
    spans = {s: recorded_span(db, s) for s in chosen}
    missing = [s for s, span in spans.items() if span is None]
    if missing:
        raise NoRecordedData(f"nothing recorded for {', '.join(missing)}: record first")
    recorded = [span for span in spans.values() if span is not None]
    first = start_ms if start_ms is not None else min(span[0] for span in recorded)
    last = end_ms if end_ms is not None else max(span[1] for span in recorded)
    tables = [load_labelled_features(db, s, first, last, spec=spec) for s in chosen]
    candidate = train_candidate(tables, config, spec=spec)
    registry = ModelRegistry(db, root=models_dir)
    manifest = register_candidate(registry, candidate)
    decision = promote_if_better(registry, manifest.version, gate=gate)
    attempts = [(manifest, decision)]
    metric = gate.metric if gate is not None else PROMOTION_METRIC
    best = candidate.best_model(metric)
    if not decision.promoted and best != MODEL_NAME:
        baseline = register_candidate(registry, candidate, model=best)
        attempts.append((baseline, promote_if_better(registry, baseline.version, gate=gate)))
    rows = {s: t.num_rows for s, t in zip(chosen, tables, strict=True)}
    return TrainingRun(candidate, manifest, decision, rows, attempts)
