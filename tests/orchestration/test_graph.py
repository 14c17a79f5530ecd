"""The whole graph materialised in process on a recorded market (two symbols, two hourly partitions of 40
minutes each):
raw partitions → labelled features → a training window → a registered, evaluated model version → drift
reports, with every check run and every promised file and metadata entry present."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from infra.db.repositories import DriftReportRepository, RetrainingRunRepository
from ml.lake import LakeLayout
from ml.registry import ModelRegistry
from orchestration.definitions import defs
from schemas.arrow import SPEC_HASH_METADATA_KEY
from schemas.enums import ModelStatus
from schemas.features import feature_spec
from tests.orchestration.conftest import HOURS, SYMBOLS, Pipeline, key

TINY = {"ops": {"model_candidate": {"config": {"profile": "tiny", "epochs": 2}}}}
PARTITION_JOB = defs.resolve_job_def("market_partition_job")
RETRAINING_JOB = defs.resolve_job_def("retraining_job")
FEATURES = [dg.AssetKey("raw_snapshots"), dg.AssetKey("labelled_features")]


def materialize_partition(instance: dg.DagsterInstance, hour: str, symbol: str) -> dg.ExecuteInProcessResult:
    """Export and features of one partition, through the job the automation runs."""
    return PARTITION_JOB.execute_in_process(
        partition_key=key(hour, symbol), instance=instance, asset_selection=FEATURES
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    assert events, f"{asset} was not materialised"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


@pytest.mark.slow  # about a minute: 4 partitions, a tiny model, 2 evidently reports (+ recording, cold)
def test_the_whole_graph_on_a_recorded_market(recorded_pipeline: Pipeline) -> None:
    spec = feature_spec()
    with dg.instance_for_test() as instance:
        for hour in HOURS:
            for symbol in SYMBOLS:
                result = materialize_partition(instance, hour, symbol)
                assert result.success
                checks = result.get_asset_check_evaluations()
                assert {c.check_name for c in checks} == {
                    "raw_rows_in_order",
                    "features_finite",
                    "feature_spec_matches_registry",
                    "label_coverage",
                    "no_lookahead",
                }
                assert all(c.passed for c in checks), [
                    (c.check_name, c.metadata) for c in checks if not c.passed
                ]
                raw = metadata(result, "raw_snapshots")
                # 00:20:01-00:59:59 and 01:00:00-01:40:00
                assert raw["symbol"] == symbol and raw["rows"] in (2399, 2401)
                assert abs(raw["coverage"] - 2 / 3) < 0.01
                features = metadata(result, "labelled_features")
                assert 0.97 < features["label_coverage"] < 0.98  # the last minute has no 60 s label
                assert "| mid_price |" in str(features["feature_summary"])

        layout = LakeLayout(recorded_pipeline.lake)
        for dataset in ("raw_snapshots", "public_trades", "candles", "raw_lookback", "labelled_features"):
            for symbol in SYMBOLS:
                assert len(layout.partitions(dataset, symbol)) == 2, (dataset, symbol)
        labelled = layout.partition_path(
            "labelled_features", "BTCUSDT", layout.partitions("labelled_features", "BTCUSDT")[0]
        )
        assert pq.read_schema(labelled).metadata[SPEC_HASH_METADATA_KEY].decode() == spec.spec_hash

        # Retraining on the newest partition of each symbol (TRAINING_WINDOW_PARTITIONS=1): the first model.
        retrain = RETRAINING_JOB.execute_in_process(instance=instance, run_config=TINY)
        assert retrain.success
        assert all(c.passed for c in retrain.get_asset_check_evaluations())
        window = metadata(retrain, "training_dataset")
        assert window["time_partitions"] == 1 and window["partitions"] == 2
        assert "walk-forward fold 1" in str(window["splits"])
        candidate = metadata(retrain, "model_candidate")
        version = str(candidate["model_version"])
        assert (recorded_pipeline.reports / "models" / version / "loss.png").stat().st_size > 0
        assert "gradient_boosting" in str(candidate["test_fold_metrics"])
        evaluation = metadata(retrain, "model_evaluation")
        assert evaluation["model_version"] == version
        for plot in ("confusion_matrix_plot", "equity_curve_plot"):
            assert (recorded_pipeline.reports / "models" / version / f"{plot.split('_')[0]}.png").exists()
        registry = ModelRegistry(recorded_pipeline.db, root=recorded_pipeline.models)
        manifest = registry.get(version)
        assert manifest.data_window.symbols == list(SYMBOLS)
        promoted = str(evaluation["promoted_version"])
        # The gate judged the CNN-LSTM and, if it refused it, the run's best baseline (ml.workflow's order).
        assert "| " + version + " |" in str(evaluation["gate"])
        assert manifest.status is (ModelStatus.PRODUCTION if promoted == version else ModelStatus.CANDIDATE)
        with recorded_pipeline.db.connect() as conn:
            run = RetrainingRunRepository(conn).by_run_id(retrain.run_id)
        assert run is not None and run.trigger == "manual"
        assert run.status == ("promoted" if evaluation["promoted"] else "kept")
        if evaluation["promoted"]:
            production = registry.production()
            assert production is not None and production.version == promoted == run.candidate_version
        else:
            # By hand: drift needs a production model.
            registry.promote(version, metric="macro_f1_10s", higher_is_better=True)
        production_version = registry.production().version  # type: ignore[union-attr]

        # Drift of the newest hour of each symbol against the model trained on it: the reports exist.
        for symbol in SYMBOLS:
            drift = PARTITION_JOB.execute_in_process(
                partition_key=key(HOURS[1], symbol),
                instance=instance,
                asset_selection=[dg.AssetKey("drift_report")],
            )
            assert drift.success
            report = metadata(drift, "drift_report")
            assert report["severity"] in ("none", "low", "medium", "high")
            assert report["production_version"] == production_version
            summary = json.loads(Path(str(report["report_json"])).read_text())
            assert summary["severity"] == report["severity"] and summary["n_current"] > 1000
            assert Path(str(report["report_html"])).read_text()[:200].lower().lstrip().startswith("<")
        with recorded_pipeline.db.connect() as conn:
            reports = DriftReportRepository(conn).recent()
        assert sorted(r.symbol for r in reports) == sorted(SYMBOLS)
        assert all(r.production_version == production_version for r in reports)
