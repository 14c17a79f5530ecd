"""The real Dagster definitions: they load, every asset, check, job, schedule and sensor resolves, the
retention job runs, and the resources take their configuration from the environment (`dg.EnvVar`), the
variables `depthcharge dagster` sets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import dagster as dg
import pytest

from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from orchestration.definitions import defs
from schemas.times import now_ms
from testkit.rows import snapshot_rows

ASSETS = {
    "raw_snapshots",
    "labelled_features",
    "training_dataset",
    "model_candidate",
    "model_evaluation",
    "drift_report",
}
JOBS = {"market_data_retention_job", "market_partition_job", "retraining_job"}
SCHEDULES = {
    "market_data_retention_job_schedule": ("market_data_retention_job", "17 3 * * *"),
    "nightly_retraining": ("retraining_job", "30 2 * * *"),
}
SENSORS = {"market_partitions_automation", "drift_retraining_sensor", "run_failure_audit"}
RESOURCE_ENV = {
    "database": {
        "database_url": "DATABASE_URL",
        "connect_timeout_s": "DB_CONNECT_TIMEOUT_S",
        "retention_days": "MARKET_DATA_RETENTION_DAYS",
    },
    "lake": {"lake_dir": "LAKE_DIR", "reports_dir": "REPORTS_DIR"},
    "registry": {
        "database_url": "DATABASE_URL",
        "connect_timeout_s": "DB_CONNECT_TIMEOUT_S",
        "models_dir": "MODELS_DIR",
    },
    "settings": {
        "trading_pairs": "TRADING_PAIRS",
        "snapshot_interval_ms": "SNAPSHOT_INTERVAL_MS",
        "partition_close_grace_s": "PARTITION_CLOSE_GRACE_S",
        "training_window_partitions": "TRAINING_WINDOW_PARTITIONS",
        "training_profile": "TRAINING_PROFILE",
        "training_epochs": "TRAINING_EPOCHS",
        "retrain_drift_severity": "RETRAIN_DRIFT_SEVERITY",
        "label_coverage_min": "LABEL_COVERAGE_MIN",
        "class_share_min": "CLASS_SHARE_MIN",
        "class_share_max": "CLASS_SHARE_MAX",
        "drift_max_rows": "DRIFT_MAX_ROWS",
    },
    "lake_io_manager": {"lake_dir": "LAKE_DIR", "snapshot_interval_ms": "SNAPSHOT_INTERVAL_MS"},
}


def test_definitions_load_and_everything_resolves() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {
        "raw_snapshots": "market_data",
        "labelled_features": "features",
        "training_dataset": "training",
        "model_candidate": "training",
        "model_evaluation": "training",
        "drift_report": "monitoring",
    }
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert jobs == JOBS
    for job_name in jobs:
        assert defs.resolve_job_def(job_name).executor_def.name == "multiprocess"  # DAGSTER_EXECUTOR default
    for name, (job_name, cron) in SCHEDULES.items():
        schedule = defs.resolve_schedule_def(name)
        assert (schedule.job_name, schedule.cron_schedule) == (job_name, cron)
        assert schedule.default_status is dg.DefaultScheduleStatus.RUNNING
    assert {s.name for s in defs.sensors or []} == SENSORS  # type: ignore[union-attr]
    for name in SENSORS:
        assert defs.resolve_sensor_def(name).default_status is dg.DefaultSensorStatus.RUNNING


def test_the_nightly_schedule_requests_a_tagged_retraining() -> None:
    schedule = defs.resolve_schedule_def("nightly_retraining")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 1, 2, 2, 30, tzinfo=UTC)
        )
        requests = schedule.evaluate_tick(context).run_requests or []
    assert len(requests) == 1 and requests[0].tags["depthcharge/trigger"] == "schedule"


def test_resources_read_every_field_from_the_environment() -> None:
    """No value (and so no secret) is written into the definitions: each field is an EnvVar."""
    assert set(defs.resources or {}) == set(RESOURCE_ENV)
    for key, fields in RESOURCE_ENV.items():
        resource = (defs.resources or {})[key]
        assert set(type(resource).model_fields) == set(fields), key
        for field, variable in fields.items():
            value = getattr(resource, field)  # an EnvVar (str) or IntEnvVar (int), never a plain value
            assert getattr(value, "env_var_name", None) == variable, (key, field)


async def _seed(db: Database) -> None:
    # Rows of 2026-01-01 and of the last minute: only the old ones are past a 30-day window.
    pool = await db.open_pool()
    try:
        repo = MarketDataRepository(pool)
        await repo.copy_snapshots(list(snapshot_rows(5)))
        await repo.copy_snapshots(list(snapshot_rows(3, start_ms=(now_ms() // 1000 - 60) * 1000)))
    finally:
        await pool.close()


# Sync on purpose: execute_in_process runs its own event loop.
def test_retention_job_runs_with_the_resources_from_the_environment(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_seed(db))
    monkeypatch.setenv("DATABASE_URL", db.conninfo)
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "5")
    monkeypatch.setenv("MARKET_DATA_RETENTION_DAYS", "30")
    result = defs.resolve_job_def("market_data_retention_job").execute_in_process()
    assert result.success
    deleted = result.output_for_node("enforce_market_data_retention")
    # Only the old snapshots go; every other table under retention (infra.db.retention) loses nothing.
    assert {"market_snapshots", "public_trades", "candles"} <= set(deleted)
    assert deleted == {table: 5 if table == "market_snapshots" else 0 for table in deleted}


def test_a_missing_variable_fails_the_run_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/depthcharge")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")
    monkeypatch.delenv("MARKET_DATA_RETENTION_DAYS", raising=False)
    with pytest.raises(dg.DagsterInvalidConfigError, match="MARKET_DATA_RETENTION_DAYS"):
        defs.resolve_job_def("market_data_retention_job").execute_in_process()
