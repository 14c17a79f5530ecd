"""Fixtures of the orchestration tests: a recorded market stored in a test database, and the environment
the resources read (what `depthcharge dagster` would set), pointing at temporary lake/report/model dirs.

The recording: two symbols, 80 minutes from 2026-01-01 00:20 UTC in the calm regime, with the synthetic
market's scheduled shift at 01:00 (docs/exchange_sim_market.md §7): the hourly partitions 00:00 and 01:00
of each symbol hold 40 minutes each, the first before the shift, the second after it. As short as a
training window allows (its validation fold must survive the purge); recording costs about a second of CPU
per 50-100 seconds of market per symbol, and is cached on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import torch
from psycopg import sql
from threadpoolctl import threadpool_limits

from depthcharge.commands.dagster import dagster_environment, resource_environment
from depthcharge.offline_recording import DEFAULT_START_MS, SimRecording
from infra.db.connection import DAGSTER_DATABASE, Database
from infra.db.repositories import MarketDataRepository
from infra.settings import Settings, load_settings
from tests.fixtures.recorded import recorded_market

HOUR_MS = 3_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
SHIFT_AT_MS = DEFAULT_START_MS + HOUR_MS
RECORDING_START_MS = DEFAULT_START_MS + 20 * 60_000
RECORDING_SECONDS = 80 * 60
HOURS = ("2026-01-01-00:00", "2026-01-01-01:00")


def shifted_market() -> SimRecording:
    """00:20-01:40 of two symbols, calm, shifted at 01:00 (cached on disk by the recorded fixture)."""
    return recorded_market(
        seconds=RECORDING_SECONDS,
        symbols=SYMBOLS,
        seed=7,
        shift_at_ms=SHIFT_AT_MS,
        start_ms=RECORDING_START_MS,
        fixed_regime="calm",
    )


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread and one torch thread: on a shared machine, scikit-learn's gradient boosting
    runs an order of magnitude slower with a thread per core than with one (oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


def key(hour: str, symbol: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"time": hour, "symbol": symbol})


async def _store(db: Database, recording: SimRecording) -> None:
    pool = await db.open_pool(min_size=1, max_size=2)
    try:
        repo = MarketDataRepository(pool)
        for symbol in recording.symbols:
            await repo.ingest_snapshots(recording.rows[symbol])
            await repo.ingest_trades(recording.trades[symbol])
            await repo.ingest_candles(recording.candles[symbol])
    finally:
        await pool.close()


def store(db: Database, recording: SimRecording) -> None:
    asyncio.run(_store(db, recording))


@dataclass
class Pipeline:
    """What a test of the graph needs: the database, the settings the environment was built from, dirs."""

    db: Database
    settings: Settings
    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def models(self) -> Path:
        return self.root / "models"


def pipeline_settings(db: Database, root: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": db.conninfo,
        "VAR_DIR": str(root),
        "TRADING_PAIRS": ",".join(SYMBOLS),
        "TRAINING_WINDOW_PARTITIONS": 1,
        "TRAINING_EPOCHS": 2,
        "RETRAIN_DRIFT_SEVERITY": "medium",
        **overrides,
    }
    return load_settings(_env_file=None, **values)


@pytest.fixture
def pipeline(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """The resources' environment for ``db`` (empty of market data) and temporary directories."""
    settings = pipeline_settings(db, tmp_path)
    for name, value in resource_environment(settings, db).items():
        monkeypatch.setenv(name, value)
    yield Pipeline(db, settings, tmp_path)


@pytest.fixture
def recorded_pipeline(pipeline: Pipeline) -> Pipeline:
    """``pipeline`` with the shifted two-hour market stored in its database."""
    store(pipeline.db, shifted_market())
    return pipeline


@pytest.fixture
def pg_instance(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """The project's Dagster instance as `depthcharge dagster` prepares it: dagster.yaml copied into
    DAGSTER_HOME, runs, events and schedules in the server's `dagster` database (dropped afterwards)."""
    env = dagster_environment(pipeline.settings, pipeline.db)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            yield instance
    finally:
        with pipeline.db.with_dbname("postgres").connect(autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DAGSTER_DATABASE))
            )
