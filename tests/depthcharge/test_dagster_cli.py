"""`depthcharge dagster`: the instance's dagster.yaml and the resources read variables the launcher sets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from psycopg import sql

from depthcharge.commands.dagster import INSTANCE_YAML, dagster_environment
from infra.db.connection import DAGSTER_DATABASE, Database
from infra.db.repositories import MarketDataRepository
from infra.settings import load_settings
from orchestration.definitions import defs
from testkit.rows import snapshot_rows


def _env_names(node: Any) -> set[str]:
    """Every `{env: NAME}` in a parsed dagster.yaml."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(_env_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node))
    return set()


def _resource_env_names() -> set[str]:
    names: set[str] = set()
    for resource in (defs.resources or {}).values():
        for field in type(resource).model_fields:
            name = getattr(getattr(resource, field), "env_var_name", None)
            if name is not None:
                names.add(name)
    return names


@pytest.fixture
def dagster_db(db: Database) -> Iterator[Database]:
    """The test server's `dagster` database, dropped afterwards."""
    yield db.with_dbname(DAGSTER_DATABASE)
    with db.with_dbname("postgres").connect(autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DAGSTER_DATABASE))
        )


def test_the_instance_reads_what_the_launcher_sets(
    db: Database, dagster_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(_env_file=None, DATABASE_URL=db.conninfo, DAGSTER_HOME=str(tmp_path / "dagster"))
    env = dagster_environment(settings, db)
    copied = tmp_path / "dagster" / "dagster.yaml"
    assert copied.read_text() == INSTANCE_YAML.read_text()
    wanted = _env_names(yaml.safe_load(copied.read_text())) | _resource_env_names()
    assert wanted >= {"DAGSTER_POSTGRES_URL", "DATABASE_URL", "MARKET_DATA_RETENTION_DAYS"}
    assert wanted <= set(env), f"read but not set: {sorted(wanted - set(env))}"
    assert env["DATABASE_URL"] == db.conninfo and env["DAGSTER_HOME"] == str(tmp_path / "dagster")
    # The instance built from that home and environment stores its runs in the `dagster` database.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_runs() == []


async def _seed(db: Database) -> None:
    pool = await db.open_pool()
    try:
        await MarketDataRepository(pool).copy_snapshots(list(snapshot_rows(5)))  # 2026-01-01: past 30 days
    finally:
        await pool.close()


@pytest.mark.slow  # a Dagster process: about 20 s
def test_a_job_runs_through_the_launcher(db: Database, dagster_db: Database, tmp_path: Path) -> None:
    asyncio.run(_seed(db))
    env = {
        **os.environ,
        "DATABASE_URL": db.conninfo,
        "VAR_DIR": str(tmp_path / "var"),
        "MARKET_DATA_RETENTION_DAYS": "30",
    }
    env.pop("DAGSTER_HOME", None)
    env.pop("DAGSTER_POSTGRES_URL", None)
    job = ["job", "execute", "-m", "orchestration.definitions", "-j", "market_data_retention_job"]
    proc = subprocess.run(
        [sys.executable, "-m", "depthcharge", "dagster", *job],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM market_snapshots").fetchone() == (0,)
    with dagster_db.connect() as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("SUCCESS",)]
    assert (tmp_path / "var" / "dagster" / "dagster.yaml").is_file()
