# No `from __future__ import annotations`: Dagster reads the parameter annotations at definition time.
"""Stage 4, monitoring: each new partition against the production model's training reference."""

import dagster as dg
import pyarrow as pa

from infra.db.repositories import DriftReportRecord, DriftReportRepository
from ml.monitoring import TooFewRows, drift_against_model, reference_tables, serving_predictor
from orchestration.assets.training import model_evaluation
from orchestration.metadata import md_table, number, path
from orchestration.partitions import MARKET_PARTITIONS, partition_window
from orchestration.resources import (
    DatabaseResource,
    LakeResource,
    ModelRegistryResource,
    PipelineSettingsResource,
)

GROUP = "monitoring"


@dg.asset(
    partitions_def=MARKET_PARTITIONS,
    # The reference is the production model: a new one re-judges the newest partition.
    deps=[model_evaluation],
    group_name=GROUP,
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"evidently", "postgres"},
    description="Drift of the partition's features, predictions and accuracy against the production model's "
    "training reference: an evidently HTML report and a JSON summary under REPORTS_DIR/drift, indexed in "
    "drift_reports (the retraining sensor reads it).",
)
def drift_report(
    context: dg.AssetExecutionContext,
    labelled_features: pa.Table,
    registry: ModelRegistryResource,
    lake: LakeResource,
    settings: PipelineSettingsResource,
    database: DatabaseResource,
) -> dg.MaterializeResult[None]:
    window = partition_window(context)
    spec = settings.spec()
    loaded = registry.registry().load_production(spec.spec_hash)
    if loaded is None:
        return dg.MaterializeResult(
            metadata={"severity": "n/a", "skipped": "no production model to compare with"}
        )
    manifest = loaded.manifest
    partition_ms = window.end_ms - window.start_ms
    reference = reference_tables(lake.layout(), manifest, window.symbol, spec, partition_ms=partition_ms)
    out_dir = lake.report_dir(
        "drift", window.symbol, context.partition_time_window.start.strftime("%Y%m%dT%H%MZ")
    )
    try:
        result = drift_against_model(
            serving_predictor(loaded, spec),
            reference,
            labelled_features,
            out_dir,
            spec=spec,
            name="drift",
            max_rows=settings.drift_max_rows,
        )
    except TooFewRows as exc:
        return dg.MaterializeResult(metadata={"severity": "n/a", "skipped": str(exc)})
    with database.connection() as conn:
        record = DriftReportRepository(conn).add(
            DriftReportRecord(
                partition_key=window.key,
                symbol=window.symbol,
                window_start_ms=window.start_ms,
                window_end_ms=window.end_ms,
                production_version=manifest.version,
                severity=result.severity,
                feature_drift_score=result.feature_drift_score,
                prediction_psi=result.prediction_psi,
                accuracy_drop=result.accuracy_drop,
                drivers=list(result.drivers),
                drifted_features=list(result.drifted_features),
                recommendation=result.recommendation,
                html_path=result.html_path,
                json_path=result.json_path,
                n_reference=result.n_reference,
                n_current=result.n_current,
                dagster_run_id=context.run.run_id,
            )
        )
    context.log.info(result.log_text())
    return dg.MaterializeResult(
        metadata={
            "severity": result.severity,
            "drift_report_id": record.id,
            "drivers": "; ".join(result.drivers) or "none",
            "recommendation": result.recommendation,
            "feature_drift_score": result.feature_drift_score,
            "prediction_psi": result.prediction_psi,
            "accuracy_drop": result.accuracy_drop,
            "production_version": manifest.version,
            "reference_rows": result.n_reference,
            "current_rows": result.n_current,
            "top_drifted_features": md_table(
                ["feature", "drifted", "test", "score", "distance", "natural distance"],
                [
                    [c.name, c.drifted, c.method, c.score, number(c.distance), number(c.natural_distance)]
                    for c in result.top_features
                ],
            ),
            "report_html": path(result.html_path),
            "report_json": path(result.json_path),
        }
    )
