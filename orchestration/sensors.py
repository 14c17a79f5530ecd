# No `from __future__ import annotations`: Dagster reads the parameter annotations at definition time.
"""Sensors: retraining when a drift report reaches RETRAIN_DRIFT_SEVERITY, and an audit row for every
failed run."""

from datetime import UTC, datetime

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from infra.db.repositories import DriftReportRecord, DriftReportRepository
from ml.monitoring import reaching
from orchestration.jobs import retraining_job
from orchestration.location import LOCATION
from orchestration.resources import DatabaseResource, PipelineSettingsResource
from orchestration.retraining import (
    DRIFT_REPORTS_TAG,
    TRIGGER_TAG,
    record_failed_retraining,
    run_failure_event,
)

REPORTS_PER_TICK = 500


def retraining_run_key(report: DriftReportRecord) -> str:
    """One retraining per production model and time window: the reports of other symbols of the same
    window, or a report written again for it, do not launch a second one."""
    stamp = datetime.fromtimestamp(report.window_start_ms / 1000, UTC).strftime("%Y%m%dT%H%MZ")
    return f"drift:{report.production_version or 'none'}:{stamp}"


@dg.sensor(
    job=retraining_job,
    minimum_interval_seconds=LOCATION.sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads each new drift report (cursor: the last report id) and launches retraining_job when "
    "one reaches RETRAIN_DRIFT_SEVERITY.",
)
def drift_retraining_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource, settings: PipelineSettingsResource
) -> dg.SensorResult | dg.SkipReason:
    last = int(context.cursor or 0)
    with database.connection() as conn:
        reports = DriftReportRepository(conn).after(last, limit=REPORTS_PER_TICK)
    if not reports:
        return dg.SkipReason(f"no drift report after #{last}")
    cursor = str(reports[-1].id)
    threshold = settings.retrain_drift_severity
    hits = [
        r for r, hit in zip(reports, reaching([r.severity for r in reports], threshold), strict=True) if hit
    ]
    if not hits:
        worst = max(reports, key=lambda r: ("none", "low", "medium", "high").index(r.severity))
        return dg.SensorResult(
            skip_reason=f"{len(reports)} new drift reports, none {threshold} or worse (worst: {worst.severity}, "
            f"#{worst.id} {worst.partition_key})",
            cursor=cursor,
        )
    newest = hits[-1]
    request = dg.RunRequest(
        run_key=retraining_run_key(newest),
        tags={TRIGGER_TAG: "drift", DRIFT_REPORTS_TAG: ",".join(str(r.id) for r in hits)},
    )
    context.log.info(
        f"{len(hits)} drift reports at {threshold} or worse (newest #{newest.id} {newest.partition_key}: "
        f"{newest.severity}): requesting {request.run_key}"
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


def _root_cause(error: SerializableErrorInfo) -> str:
    """The innermost error of Dagster's wrapping (the user code's exception), as "Type: message"."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


@dg.run_failure_sensor(
    name="run_failure_audit",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes an audit row (pipeline_run_failed) for every failed run; a failed retraining is "
    "also recorded in retraining_runs.",
)
def run_failure_audit(context: dg.RunFailureSensorContext, database: DatabaseResource) -> None:
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    failed_steps = [e.step_key for e in step_failures if e.step_key]
    errors = [
        f"{e.step_key}: {_root_cause(e.step_failure_data.error)}"
        for e in step_failures
        if e.step_failure_data.error is not None
    ]
    message = "; ".join(errors) or context.failure_event.message or "the run failed"
    database.audit(run_failure_event(run.run_id, run.job_name, dict(run.tags), message, failed_steps))
    if run.job_name == retraining_job.name:
        record_failed_retraining(database, run.run_id, dict(run.tags), message)
