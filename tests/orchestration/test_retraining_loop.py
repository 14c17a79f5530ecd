"""The retraining loop end to end, on the Postgres-backed Dagster instance: the synthetic market recorded
across its scheduled regime shift → its partitions materialise → a first production model → the drift
report of the hour after the shift reaches RETRAIN_DRIFT_SEVERITY → the sensor launches retraining → the
new candidate is evaluated and promoted only because it passes the gate against production → a LISTEN
connection receives model_promoted for exactly the versions promoted; a deliberately worse candidate is
then kept as a candidate."""

from __future__ import annotations

from typing import Any

import dagster as dg
import psycopg
import pytest

from infra.db.repositories import DriftReportRepository, ModelVersionRepository, RetrainingRunRepository
from infra.db.repositories.model_versions import PROMOTION_CHANNEL
from ml.drift import SEVERITIES
from ml.registry import ModelRegistry
from orchestration.definitions import defs
from schemas.enums import ModelStatus
from tests.orchestration.conftest import HOURS, SYMBOLS, Pipeline, key

PARTITION_JOB = defs.resolve_job_def("market_partition_job")
RETRAINING_JOB = defs.resolve_job_def("retraining_job")
FEATURES = [dg.AssetKey("raw_snapshots"), dg.AssetKey("labelled_features")]


def candidate_config(**extra: Any) -> dict[str, Any]:
    return {"ops": {"model_candidate": {"config": {"profile": "tiny", "epochs": 2, **extra}}}}


def evaluation_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("model_evaluation")
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def notified(conn: psycopg.Connection[Any]) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=1.0, stop_after=None)]


@pytest.mark.slow(seconds=80)  # about two minutes: four partitions, three tiny trainings, two drift reports
def test_drift_launches_retraining_and_the_gate_decides(
    recorded_pipeline: Pipeline, pg_instance: dg.DagsterInstance
) -> None:
    db, instance = recorded_pipeline.db, pg_instance
    registry = ModelRegistry(db, root=recorded_pipeline.models)
    listener = psycopg.connect(db.conninfo, autocommit=True)
    listener.execute(f"LISTEN {PROMOTION_CHANNEL}")
    promoted: list[str] = []
    try:
        # The hour before the shift, and a first production model trained on it: a barely trained one,
        # put into production by hand (as an operator may force a version), so that a retrained model has
        # a clear margin to beat.
        for symbol in SYMBOLS:
            assert PARTITION_JOB.execute_in_process(
                partition_key=key(HOURS[0], symbol), instance=instance, asset_selection=FEATURES
            ).success
        first = RETRAINING_JOB.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey("training_dataset"), dg.AssetKey("model_candidate")],
            run_config={
                "ops": {
                    **candidate_config(epochs=1, learning_rate=1e-7)["ops"],
                    "training_dataset": {"config": {"end_partition": HOURS[0], "partitions": 1}},
                }
            },
        )
        assert first.success
        [event] = [
            e
            for e in first.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("model_candidate")
        ]
        weak = str(event.materialization.metadata["model_version"].value)
        with db.connect(autocommit=True) as conn:
            ModelVersionRepository(conn).promote(weak, expected_production=None)
        promoted.append(weak)
        production = registry.production()
        assert production is not None and production.version == weak
        assert production.data_window.end_ms < 1_767_229_200_000  # trained before the shift (01:00)
        assert notified(listener) == promoted

        # The hour after the shift: exported, featured, and judged against that model.
        for symbol in SYMBOLS:
            assert PARTITION_JOB.execute_in_process(
                partition_key=key(HOURS[1], symbol),
                instance=instance,
                asset_selection=[*FEATURES, dg.AssetKey("drift_report")],
            ).success
        with db.connect() as conn:
            reports = DriftReportRepository(conn).recent()
        assert {r.symbol for r in reports} == set(SYMBOLS)
        assert all(r.production_version == production.version for r in reports)
        worst = max(reports, key=lambda r: SEVERITIES.index(r.severity))
        assert SEVERITIES.index(worst.severity) >= SEVERITIES.index("medium"), [
            (r.severity, r.drivers) for r in reports
        ]

        # The sensor reads the reports and asks for one retraining.
        sensor = defs.resolve_sensor_def("drift_retraining_sensor")
        tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=None, resources=dict(defs.resources or {}))
        )
        [request] = tick.run_requests or []
        assert request.tags["depthcharge/trigger"] == "drift"
        assert str(worst.id) in request.tags["depthcharge/drift_report_ids"].split(",")
        again = sensor.evaluate_tick(
            dg.build_sensor_context(
                instance=instance, cursor=tick.cursor, resources=dict(defs.resources or {})
            )
        )
        assert not again.run_requests

        # The requested run (the newest partition: after the shift), then the gate against production.
        retrain = RETRAINING_JOB.execute_in_process(
            instance=instance,
            run_config=candidate_config(),
            tags={**request.tags, "dagster/run_key": request.run_key},
        )
        assert retrain.success
        decision = evaluation_of(retrain)
        before = production.version
        with db.connect() as conn:
            record = RetrainingRunRepository(conn).by_run_id(retrain.run_id)
        assert record is not None and record.trigger == "drift" and record.production_version_before == before
        assert record.drift_report_ids == [
            int(x) for x in request.tags["depthcharge/drift_report_ids"].split(",")
        ]
        now = registry.production()
        assert now is not None
        assert decision["promoted"], decision["gate"]  # a trained model beats a barely trained one
        promoted.append(str(decision["promoted_version"]))
        assert now.version == decision["promoted_version"] != before and record.status == "promoted"
        assert "| " + str(decision["model_version"]) + " |" in str(decision["gate"])
        assert notified(listener) == promoted[1:]

        # A deliberately worse candidate (barely trained) is refused and stays a candidate.
        worse = RETRAINING_JOB.execute_in_process(
            instance=instance, run_config=candidate_config(epochs=1, learning_rate=1e-7)
        )
        assert worse.success
        refused = evaluation_of(worse)
        assert registry.get(str(refused["model_version"])).status is ModelStatus.CANDIDATE
        if refused["promoted"]:  # the run's best baseline may still beat production, never the CNN-LSTM
            assert refused["promoted_version"] != refused["model_version"]
            promoted.append(str(refused["promoted_version"]))
        # Exactly the promoted versions were announced, in order, on the channel the daemon listens to.
        assert notified(listener) == promoted[2:]
        production_now = registry.production()
        assert production_now is not None and production_now.version == promoted[-1]
        runs = instance.get_runs()
        assert {r.job_name for r in runs} == {"market_partition_job", "retraining_job"}
        assert all(r.status is dg.DagsterRunStatus.SUCCESS for r in runs)
    finally:
        listener.close()
