"""What a retraining run leaves in Postgres, and the run tags that say why it ran.

The drift sensor tags its runs with TRIGGER_TAG=drift and the ids of the reports behind them; the nightly
schedule's runs carry Dagster's schedule tag; anything else was started by a person. `model_evaluation`
records how the run ended (promoted or kept), the run-failure sensor how it failed.
"""

from __future__ import annotations

from collections.abc import Mapping

from infra.db.repositories import RetrainingRunRecord, RetrainingRunRepository
from infra.db.repositories.orchestration import RetrainingTrigger
from ml.registry import PromotionDecision
from ml.review import CandidateEvidence
from orchestration.resources import DatabaseResource
from schemas.enums import AuditAction
from schemas.trading import AuditEvent

TRIGGER_TAG = "depthcharge/trigger"
DRIFT_REPORTS_TAG = "depthcharge/drift_report_ids"
SCHEDULE_TAG = "dagster/schedule_name"


def trigger_of(tags: Mapping[str, str]) -> RetrainingTrigger:
    """drift, schedule or manual, from a run's tags."""
    if tags.get(TRIGGER_TAG) == "drift":
        return "drift"
    if SCHEDULE_TAG in tags or tags.get(TRIGGER_TAG) == "schedule":
        return "schedule"
    return "manual"


def drift_report_ids(tags: Mapping[str, str]) -> list[int]:
    text = tags.get(DRIFT_REPORTS_TAG, "")
    return [int(x) for x in text.split(",") if x.strip()]


def record_retraining(
    database: DatabaseResource,
    run_id: str,
    tags: Mapping[str, str],
    evidence: CandidateEvidence,
    decision: PromotionDecision,
) -> RetrainingRunRecord:
    """Record a retraining run that reached the gate; ``decision`` is the last one (the promoted version's,
    or the last refused)."""
    record = RetrainingRunRecord(
        dagster_run_id=run_id,
        trigger=trigger_of(tags),
        status="promoted" if decision.promoted else "kept",
        reason=decision.reason,
        drift_report_ids=drift_report_ids(tags),
        candidate_version=decision.version if decision.promoted else evidence.version,
        production_version_before=decision.production_version,
        metric=decision.metric,
        candidate_value=decision.candidate_value,
        production_value=decision.production_value,
        symbols=list(evidence.symbols),
        window_start_ms=evidence.data_start_ms,
        window_end_ms=evidence.data_end_ms,
    )
    with database.connection() as conn:
        return RetrainingRunRepository(conn).add(record)


def record_failed_retraining(
    database: DatabaseResource, run_id: str, tags: Mapping[str, str], reason: str
) -> RetrainingRunRecord:
    """Record a retraining run that failed before the gate."""
    record = RetrainingRunRecord(
        dagster_run_id=run_id,
        trigger=trigger_of(tags),
        status="failed",
        reason=reason,
        drift_report_ids=drift_report_ids(tags),
    )
    with database.connection() as conn:
        return RetrainingRunRepository(conn).add(record)


def run_failure_event(
    run_id: str, job_name: str, tags: Mapping[str, str], message: str, failed_steps: list[str]
) -> AuditEvent:
    """The audit row of a failed Dagster run."""
    partition = tags.get("dagster/partition")
    return AuditEvent(
        action=AuditAction.PIPELINE_RUN_FAILED,
        entity_type="dagster_run",
        entity_id=run_id,
        actor="dagster",
        reason=f"run of {job_name}{f' for partition {partition}' if partition else ''} failed",
        success=False,
        error_message=message[:2000],
        context={
            "job": job_name,
            "partition": partition,
            "failed_steps": failed_steps,
            "trigger": trigger_of(tags),
            "tags": {k: v for k, v in tags.items() if not k.startswith(".dagster")},
        },
    )
