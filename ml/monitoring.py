"""Drift of new partitions against the production model: the ``drift_report`` asset's work.

:func:`drift_against_model` compares the labelled rows of a new partition (``current``) with the rows the
production model was trained on (``reference``: the lake's partitions inside its manifest's data window)
through the serving path, so it judges what the model sees:

* features after the model's own preprocessing (row-local variants and its scaler), as ``ml.drift`` asks;
* the model's predictions on the windows of both sides (sampled with a stride to at most ``max_rows``
  windows each) for the prediction PSI;
* its accuracy on the current windows, whose labels exist once the partition is closed, against the test
  accuracy in its manifest, for the accuracy drop.

The result is ``ml.drift.detect_drift``'s: an evidently HTML report and a JSON summary in ``out_dir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.datasets import LabelledRows
from ml.drift import MIN_ROWS, SEVERITIES, DriftResult, DriftThresholds, PredictionSample, detect_drift
from ml.inference import Predictor
from ml.lake import LakeLayout
from ml.preprocessing import FeaturePreprocessor
from ml.registry import LoadedModel
from schemas.features import FeatureSpec
from schemas.model import WINDOW, ModelManifest


class TooFewRows(ValueError):
    """A side of the comparison has fewer rows than a drift test needs; the message says which."""


def serving_predictor(loaded: LoadedModel, spec: FeatureSpec) -> Predictor:
    """The production model with its stored preprocessor, as the daemon would serve it."""
    manifest = loaded.manifest
    if manifest.scaler is None:
        raise ValueError(f"model {manifest.version} has no stored preprocessor: it cannot be served")
    pre = FeaturePreprocessor.from_dict(dict(manifest.scaler), expected_spec_hash=spec.spec_hash)
    return Predictor(loaded.model, pre, manifest)


def raw_windows(rows: LabelledRows, ends: np.ndarray) -> np.ndarray:
    """The (n, WINDOW, 110) float64 raw feature windows ending at rows ``ends`` (the serving input)."""
    idx = ends[:, None] + np.arange(-WINDOW + 1, 1)[None, :]
    return np.asarray(rows.features[idx], dtype=np.float64)


def _sampled_ends(rows: LabelledRows, max_windows: int) -> np.ndarray:
    ends = rows.window_ends()
    if len(ends) > max_windows:
        ends = ends[np.linspace(0, len(ends) - 1, max_windows).round().astype(np.int64)]
    return ends


def _predictions(
    predictor: Predictor, rows: LabelledRows, ends: np.ndarray, labels: bool
) -> PredictionSample:
    batch = predictor.predict_batch(raw_windows(rows, ends))
    return PredictionSample(
        probabilities=batch.probabilities,
        confidence=batch.confidence,
        labels=rows.direction[ends] if labels else None,
    )


def reference_accuracy(manifest: ModelManifest) -> float | None:
    """The test-fold accuracy of the primary horizon recorded in the manifest, if any."""
    value = manifest.metrics.get(f"accuracy_{manifest.horizons_s[0]}s")
    return None if value is None else float(value)


def drift_against_model(
    predictor: Predictor,
    reference: Sequence[pa.Table],
    current: pa.Table,
    out_dir: Path,
    *,
    spec: FeatureSpec,
    name: str,
    max_rows: int,
    thresholds: DriftThresholds | None = None,
    seed: int = 0,
) -> DriftResult:
    """Compare ``current`` with ``reference`` (labelled_features tables) as ``predictor``'s model sees them.

    Raises :class:`TooFewRows` when either side has fewer than ``ml.drift.MIN_ROWS`` labelled rows.
    """
    if not reference:
        raise TooFewRows("no reference rows: the production model's training window is not in the lake")
    ref_rows = LabelledRows.from_tables(list(reference), spec=spec)
    cur_rows = LabelledRows.from_tables(current, spec=spec)
    for what, rows in (("reference", ref_rows), ("current", cur_rows)):
        if len(rows) < MIN_ROWS:
            raise TooFewRows(f"{what} has {len(rows)} labelled rows; drift needs at least {MIN_ROWS}")
    # The reference is compared in time order (ml.drift calibrates on its chronological halves).
    order = np.argsort(ref_rows.ts_ms, kind="stable")
    pre = predictor.preprocessor
    ref_features = pre.transform(ref_rows.features)[order]
    cur_features = pre.transform(cur_rows.features)
    ref_ends, cur_ends = _sampled_ends(ref_rows, max_rows), _sampled_ends(cur_rows, max_rows)
    ref_pred = cur_pred = None
    if len(ref_ends) and len(cur_ends):
        ref_pred = _predictions(predictor, ref_rows, ref_ends, labels=False)
        cur_pred = _predictions(predictor, cur_rows, cur_ends, labels=True)
    manifest = predictor.manifest
    return detect_drift(
        ref_features,
        cur_features,
        out_dir,
        reference_predictions=ref_pred,
        current_predictions=cur_pred,
        reference_accuracy=None if manifest is None or cur_pred is None else reference_accuracy(manifest),
        thresholds=thresholds,
        max_rows=max_rows,
        seed=seed,
        name=name,
        feature_names=spec.names,
    )


def reference_tables(
    layout: LakeLayout,
    manifest: ModelManifest,
    symbol: str,
    spec: FeatureSpec,
    *,
    partition_ms: int,
    dataset: str = "labelled_features",
) -> list[pa.Table]:
    """The lake's labelled rows inside the model's training window (its data window), of ``symbol`` when the
    model was trained on it, else of every symbol it was trained on."""
    window = manifest.data_window
    symbols = [symbol] if symbol in window.symbols else list(window.symbols)
    tables = []
    for s in symbols:
        for start in layout.partitions(dataset, s):
            if start + partition_ms <= window.start_ms or start > window.end_ms:
                continue
            table = layout.read_labelled(dataset=dataset, symbol=s, start_ms=start, spec=spec)
            ts = table.column("ts")
            keep = pc.and_(pc.greater_equal(ts, window.start_ms), pc.less_equal(ts, window.end_ms))
            kept = table.filter(keep)
            if kept.num_rows:
                tables.append(kept)
    return tables


def reaching(severities: Sequence[str], threshold: str) -> list[bool]:
    """Which of ``severities`` are at least ``threshold`` (none < low < medium < high)."""
    if threshold not in SEVERITIES:
        raise ValueError(f"unknown drift severity {threshold!r}: one of {', '.join(SEVERITIES)}")
    floor = SEVERITIES.index(threshold)
    return [SEVERITIES.index(s) >= floor for s in severities]
