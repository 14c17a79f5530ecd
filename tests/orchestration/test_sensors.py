"""Sensors: the drift sensor launches retraining only for a report at RETRAIN_DRIFT_SEVERITY or worse, and
never twice for one report (cursor) or one window of one production model (run key); the run-failure
sensor writes a hash-chained audit row for a failed run, and records a failed retraining."""

from __future__ import annotations

import asyncio

import dagster as dg
import pytest

from infra.db.connection import Database
from infra.db.repositories import (
    AuditRepository,
    DriftReportRecord,
    DriftReportRepository,
    RetrainingRunRepository,
    verify_chain,
)
from orchestration.definitions import defs
from orchestration.resources import database_resource_from_env
from schemas.enums import AuditAction
from schemas.trading import AuditEvent
from tests.orchestration.conftest import HOUR_MS, Pipeline

H0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def add_report(db: Database, symbol: str, severity: str, start_ms: int) -> DriftReportRecord:
    with db.connect() as conn:
        return DriftReportRepository(conn).add(
            DriftReportRecord(
                partition_key=f"{symbol}|{start_ms}",
                symbol=symbol,
                window_start_ms=start_ms,
                window_end_ms=start_ms + HOUR_MS,
                production_version=None,
                severity=severity,  # type: ignore[arg-type]
                feature_drift_score=0.4 if severity == "high" else 0.1,
                prediction_psi=None,
                accuracy_drop=None,
                drivers=[f"feature drift ({severity})"],
                drifted_features=["update_frequency"],
                recommendation="…",
                html_path="/r.html",
                json_path="/r.json",
                n_reference=100,
                n_current=100,
            )
        )


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorExecutionData:
    sensor = defs.resolve_sensor_def("drift_retraining_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=dict(defs.resources or {}))
    return sensor.evaluate_tick(context)


def test_the_drift_sensor_requests_retraining_at_the_severity_and_never_twice(pipeline: Pipeline) -> None:
    db = pipeline.db  # RETRAIN_DRIFT_SEVERITY=medium in this environment
    with dg.instance_for_test() as instance:
        first = tick(instance, None)
        assert not first.run_requests and first.skip_message == "no drift report after #0"

        low = add_report(db, "BTCUSDT", "low", H0)
        quiet = tick(instance, first.cursor)
        assert not quiet.run_requests and quiet.cursor == str(low.id)
        assert "none medium or worse (worst: low" in str(quiet.skip_message)

        medium = add_report(db, "BTCUSDT", "medium", H0 + HOUR_MS)
        high = add_report(db, "ETHUSDT", "high", H0 + HOUR_MS)
        fired = tick(instance, quiet.cursor)
        assert fired.cursor == str(high.id)
        [request] = fired.run_requests or []
        assert request.run_key == "drift:none:20260101T0100Z"
        assert request.tags["depthcharge/trigger"] == "drift"
        assert request.tags["depthcharge/drift_report_ids"] == f"{medium.id},{high.id}"

        again = tick(instance, fired.cursor)  # the same reports are never read twice
        assert not again.run_requests and again.skip_message == f"no drift report after #{high.id}"

        # A report written again for the same window and production model asks for the same run key,
        # which Dagster launches once per sensor.
        rerun = add_report(db, "BTCUSDT", "high", H0 + HOUR_MS)
        repeat = tick(instance, again.cursor)
        assert [r.run_key for r in repeat.run_requests or []] == [request.run_key]
        assert repeat.cursor == str(rerun.id)


def test_the_threshold_is_the_setting(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_DRIFT_SEVERITY", "high")
    add_report(pipeline.db, "BTCUSDT", "medium", H0)
    with dg.instance_for_test() as instance:
        result = tick(instance, None)
    assert not result.run_requests and "none high or worse (worst: medium" in str(result.skip_message)


def test_a_failed_run_leaves_an_audit_row_and_a_failed_retraining(pipeline: Pipeline) -> None:
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("retraining_job").execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={"depthcharge/trigger": "drift", "depthcharge/drift_report_ids": "7"},
        )
        assert not result.success  # the lake is empty: nothing to train on
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        records = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        event = records[0].event_log_entry.dagster_event
        assert event is not None
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_audit", dagster_event=event, dagster_instance=instance, dagster_run=run
        ).for_run_failure()
        defs.resolve_sensor_def("run_failure_audit")(context, database=database_resource_from_env())  # type: ignore[call-arg]

    async def audit_rows() -> list[AuditEvent]:
        pool = await pipeline.db.open_pool(min_size=1, max_size=1)
        try:
            return await AuditRepository(pool).by_entity("dagster_run", result.run_id)
        finally:
            await pool.close()

    [row] = asyncio.run(audit_rows())
    assert row.action is AuditAction.PIPELINE_RUN_FAILED and not row.success and row.actor == "dagster"
    assert row.context is not None and row.context["job"] == "retraining_job"
    assert row.context["failed_steps"] == ["training_dataset"] and row.context["trigger"] == "drift"
    with pipeline.db.connect() as conn:
        assert verify_chain(conn).ok
        failed = RetrainingRunRepository(conn).by_run_id(result.run_id)
    assert failed is not None and failed.status == "failed" and failed.drift_report_ids == [7]
    assert failed.candidate_version is None and "no labelled_features partitions" in failed.reason
    assert row.error_message is not None and row.error_message.startswith(
        "training_dataset: ml.lake.LakeError: no labelled_features"
    )
