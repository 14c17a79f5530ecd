"""Every asset check of the location, invoked as Dagster defines it, passes on a recorded partition and
fails (severity ERROR, blocking) on the same data corrupted."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from infra.db.connection import Database
from ml.lake import RawPartition
from orchestration.assets.features import (
    feature_spec_matches_registry,
    features_finite,
    label_coverage,
    no_lookahead,
)
from orchestration.assets.market_data import raw_rows_in_order
from orchestration.assets.training import class_balance, training_window_clean
from orchestration.definitions import defs
from orchestration.resources import ModelRegistryResource, PipelineSettingsResource
from tests.ml.test_data_checks import partition

SETTINGS = PipelineSettingsResource(
    trading_pairs="BTCUSDT",
    snapshot_interval_ms=1000,
    partition_close_grace_s=120,
    training_window_partitions=1,
    training_profile="quick",
    training_epochs=1,
    retrain_drift_severity="high",
    label_coverage_min="0.9",
    class_share_min="0.02",
    class_share_max="0.9",
    drift_max_rows=500,
)


def replaced(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values)).cast(table.schema)


def failed(result: dg.AssetCheckResult) -> bool:
    return not result.passed and result.severity is dg.AssetCheckSeverity.ERROR


def test_every_check_is_blocking_and_known() -> None:
    checks = {
        spec.key.name: spec
        for c in defs.asset_checks or []
        if isinstance(c, dg.AssetChecksDefinition)
        for spec in c.check_specs
    }
    assert set(checks) == {
        "raw_rows_in_order",
        "features_finite",
        "feature_spec_matches_registry",
        "label_coverage",
        "no_lookahead",
        "class_balance",
        "training_window_clean",
    }
    assert all(spec.blocking for spec in checks.values())


def test_raw_and_feature_checks_fail_on_corrupted_partitions(db: Database, tmp_path: Path) -> None:
    raw, features = partition()
    registry = ModelRegistryResource(database_url=db.conninfo, connect_timeout_s=5, models_dir=str(tmp_path))
    context = dg.build_op_context()
    assert raw_rows_in_order(context, raw_snapshots=raw, settings=SETTINGS).passed
    assert features_finite(labelled_features=features, settings=SETTINGS).passed
    assert feature_spec_matches_registry(
        labelled_features=features, settings=SETTINGS, registry=registry
    ).passed
    assert label_coverage(labelled_features=features, raw_snapshots=raw, settings=SETTINGS).passed
    assert no_lookahead(labelled_features=features, raw_snapshots=raw, settings=SETTINGS).passed

    duplicated = RawPartition(
        raw.symbol,
        raw.start_ms,
        raw.end_ms,
        pa.concat_tables([raw.rows, raw.rows.slice(10, 3)]).sort_by("ts"),
        raw.trades,
        raw.candles,
        raw.lookback,
    )
    assert failed(raw_rows_in_order(context, raw_snapshots=duplicated, settings=SETTINGS))

    nan = features.column("mid_price").to_numpy().copy()
    nan[5] = np.nan
    assert failed(features_finite(labelled_features=replaced(features, "mid_price", nan), settings=SETTINGS))

    foreign = features.replace_schema_metadata(
        {**features.schema.metadata, b"depthcharge.feature_spec_hash": b"0" * 64}
    )
    assert failed(
        feature_spec_matches_registry(labelled_features=foreign, settings=SETTINGS, registry=registry)
    )

    assert failed(
        label_coverage(labelled_features=features.slice(0, 100), raw_snapshots=raw, settings=SETTINGS)
    )

    shifted = features
    for name in SETTINGS.spec().names:
        values = features.column(name).to_numpy()
        shifted = replaced(shifted, name, np.roll(values, -1))
    assert failed(no_lookahead(labelled_features=shifted, raw_snapshots=raw, settings=SETTINGS))


def test_training_window_checks_fail_on_corrupted_windows(db: Database, tmp_path: Path) -> None:
    _, features = partition()
    registry = ModelRegistryResource(database_url=db.conninfo, connect_timeout_s=5, models_dir=str(tmp_path))
    assert class_balance(training_dataset=features, settings=SETTINGS).passed
    assert training_window_clean(training_dataset=features, settings=SETTINGS, registry=registry).passed

    flat = replaced(features, "direction_30s", np.zeros(features.num_rows, dtype=np.int8))
    result = class_balance(training_dataset=flat, settings=SETTINGS)
    assert failed(result) and "30 s" in str(result.description)

    name = SETTINGS.spec().names[-1]
    values = features.column(name).to_numpy().copy()
    values[0] = np.inf
    assert failed(
        training_window_clean(
            training_dataset=replaced(features, name, values), settings=SETTINGS, registry=registry
        )
    )
    foreign = features.replace_schema_metadata(
        {**features.schema.metadata, b"depthcharge.feature_spec_hash": b"1" * 64}
    )
    assert failed(training_window_clean(training_dataset=foreign, settings=SETTINGS, registry=registry))


@pytest.mark.parametrize("coverage", ["1.5", "x"])
def test_a_bad_threshold_is_named(coverage: str) -> None:
    settings = SETTINGS.model_copy(update={"label_coverage_min": coverage})
    with pytest.raises(ValueError, match="LABEL_COVERAGE_MIN"):
        _ = settings.coverage_min
