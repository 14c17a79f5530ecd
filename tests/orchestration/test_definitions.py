"""The real Dagster definitions: they load, every job and schedule resolves and runs, and the resources
take their configuration from the environment (`dg.EnvVar`), the variables `depthcharge dagster` sets."""

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

JOBS = {"market_data_retention_job"}
SCHEDULES = {"market_data_retention_job_schedule": "market_data_retention_job"}
RESOURCE_ENV = {
    "database": {
        "database_url": "DATABASE_URL",
        "connect_timeout_s": "DB_CONNECT_TIMEOUT_S",
        "retention_days": "MARKET_DATA_RETENTION_DAYS",
    }
}


def test_definitions_load_and_every_job_and_schedule_resolves() -> None:
    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert jobs == JOBS
    for job_name in jobs:
        assert defs.resolve_job_def(job_name).name == job_name
    schedules = {s.name: s.job_name for s in defs.schedules or []}  # type: ignore[union-attr]
    assert schedules == SCHEDULES
    for name, job_name in schedules.items():
        schedule = defs.resolve_schedule_def(name)
        assert schedule.cron_schedule == "17 3 * * *"
        with dg.instance_for_test() as instance:
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime(2026, 1, 2, 3, 17, tzinfo=UTC)
            )
            requests = schedule.evaluate_tick(context).run_requests or []
        assert [r.job_name or schedule.job_name for r in requests] == [job_name]


def test_resources_read_every_field_from_the_environment() -> None:
    """No value (and so no secret) is written into the definitions: each field is an EnvVar."""
    assert set(defs.resources or {}) == set(RESOURCE_ENV)
    for key, fields in RESOURCE_ENV.items():
        resource = (defs.resources or {})[key]
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
    assert deleted == {"market_snapshots": 5, "public_trades": 0, "candles": 0}


def test_a_missing_variable_fails_the_run_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/depthcharge")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")
    monkeypatch.delenv("MARKET_DATA_RETENTION_DAYS", raising=False)
    with pytest.raises(dg.DagsterInvalidConfigError, match="MARKET_DATA_RETENTION_DAYS"):
        defs.resolve_job_def("market_data_retention_job").execute_in_process()
