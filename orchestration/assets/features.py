# No `from __future__ import annotations`: Dagster reads the parameter annotations at definition time.
"""Stage 2, features: the 110 features and the 10/30/60 s labels of each partition, from its lake files."""

import dagster as dg
import pyarrow as pa

from ml.data_checks import (
    check_features_finite,
    check_label_coverage,
    check_no_lookahead,
    check_spec_hash,
    class_shares,
    feature_summary,
)
from ml.lake import RawPartition, partition_labelled_features
from orchestration.metadata import check_result, feature_table, shares_table
from orchestration.partitions import MARKET_PARTITIONS, partition_check
from orchestration.resources import ModelRegistryResource, PipelineSettingsResource

GROUP = "features"
RAW_IN = {"raw_snapshots": dg.AssetIn("raw_snapshots")}


@dg.asset(
    partitions_def=MARKET_PARTITIONS,
    group_name=GROUP,
    io_manager_key="lake_io_manager",
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"parquet"},
    description="The 110 features of every row of the partition and its labels at 10/30/60 s (rows whose "
    "horizon runs past the partition are dropped), computed from the partition's lake files alone.",
)
def labelled_features(
    context: dg.AssetExecutionContext, raw_snapshots: RawPartition, settings: PipelineSettingsResource
) -> dg.Output[pa.Table]:
    spec = settings.spec()
    table = partition_labelled_features(raw_snapshots, spec=spec)
    n_raw = raw_snapshots.rows.num_rows
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "raw_rows": n_raw,
            "labelled_rows": table.num_rows,
            "label_coverage": table.num_rows / n_raw if n_raw else 0.0,
            "feature_spec_hash": spec.spec_hash,
            "class_shares": shares_table(class_shares(table)),
            "feature_summary": feature_table(feature_summary(table, spec.names)),
        },
    )


@partition_check(labelled_features, blocking=True)
def features_finite(labelled_features: pa.Table, settings: PipelineSettingsResource) -> dg.AssetCheckResult:
    """No NaN or infinite value in any of the 110 features."""
    return check_result(
        check_features_finite(labelled_features, settings.spec().names), severity=dg.AssetCheckSeverity.ERROR
    )


@partition_check(labelled_features, blocking=True)
def feature_spec_matches_registry(
    labelled_features: pa.Table, settings: PipelineSettingsResource, registry: ModelRegistryResource
) -> dg.AssetCheckResult:
    """The features' spec hash is the production model's (the configured spec's before the first model)."""
    production = registry.registry().production()
    if production is None:
        expected, source = settings.spec().spec_hash, "the configured feature spec (no production model yet)"
    else:
        expected, source = production.feature_spec_hash, f"production model {production.version}"
    outcome = check_spec_hash(labelled_features, expected, source)
    return check_result(outcome, severity=dg.AssetCheckSeverity.ERROR)


@partition_check(labelled_features, blocking=True, additional_ins=RAW_IN)
def label_coverage(
    labelled_features: pa.Table, raw_snapshots: RawPartition, settings: PipelineSettingsResource
) -> dg.AssetCheckResult:
    """At least LABEL_COVERAGE_MIN of the partition's raw rows carry all their labels."""
    outcome = check_label_coverage(
        raw_snapshots.rows.num_rows, labelled_features.num_rows, settings.coverage_min
    )
    return check_result(outcome, severity=dg.AssetCheckSeverity.ERROR)


@partition_check(labelled_features, blocking=True, additional_ins=RAW_IN)
def no_lookahead(
    labelled_features: pa.Table, raw_snapshots: RawPartition, settings: PipelineSettingsResource
) -> dg.AssetCheckResult:
    """Features at t are unchanged when the rows and candles after t are removed (five cuts)."""
    outcome = check_no_lookahead(raw_snapshots, labelled_features, settings.spec())
    return check_result(outcome, severity=dg.AssetCheckSeverity.ERROR)


CHECKS = [features_finite, feature_spec_matches_registry, label_coverage, no_lookahead]
