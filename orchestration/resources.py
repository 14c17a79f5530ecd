"""Dagster resources: thin wrappers over infra and ml, configured from the environment (`dg.EnvVar`).

* `database`: the project database (`DatabaseResource`), also how sensors append audit rows;
* `lake`: where the Parquet lake and the reports live (`LakeResource`);
* `registry`: the model registry over that database and MODELS_DIR (`ModelRegistryResource`);
* `settings`: the pipeline's knobs (`PipelineSettingsResource`: symbols, feature cadence, training window
  and profile, check thresholds, the retraining severity);
* `lake_io_manager`: the Parquet lake as the IO manager of the partitioned assets (`orchestration.io`).

`resources_from_env()` binds every field to the environment variable of the setting it carries, so secrets
never sit in Dagster config. `depthcharge dagster` starts Dagster with all of them set from the one
settings object (DATABASE_URL to the embedded server's address when the project runs on it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from psycopg import Connection

from infra.db.connection import Database, normalise_url
from infra.db.repositories import AuditRepository
from ml.lake import LakeLayout
from ml.registry import ModelRegistry
from orchestration.io import LakeIOManager
from schemas.features import FeatureSpec, feature_spec
from schemas.trading import AuditEvent


class DatabaseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The project database: its URL (DATABASE_URL), connect timeout (DB_CONNECT_TIMEOUT_S) and the
    market-data retention (MARKET_DATA_RETENTION_DAYS)."""

    database_url: str
    connect_timeout_s: int
    retention_days: int

    def database(self) -> Database:
        return Database(
            normalise_url(self.database_url), "DATABASE_URL", connect_timeout_s=self.connect_timeout_s
        )

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        """An autocommit connection, closed on exit."""
        with self.database().connect(autocommit=True) as conn:
            yield conn

    def audit(self, event: AuditEvent) -> AuditEvent:
        """Append ``event`` to the audit log (the hash chain is the repository's; sync callers only)."""

        async def append() -> AuditEvent:
            pool = await self.database().open_pool(min_size=1, max_size=1)
            try:
                return await AuditRepository(pool).append(event)
            finally:
                await pool.close()

        return asyncio.run(append())


class LakeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where files go: the Parquet lake (LAKE_DIR) and the reports and plots (REPORTS_DIR)."""

    lake_dir: str
    reports_dir: str

    def layout(self) -> LakeLayout:
        return LakeLayout(Path(self.lake_dir))

    def report_dir(self, *parts: str) -> Path:
        """A directory under REPORTS_DIR (created)."""
        path = Path(self.reports_dir).joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


class ModelRegistryResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The model registry: versions in the project database (DATABASE_URL), files under MODELS_DIR.

    It names the database itself instead of nesting DatabaseResource: Dagster 1.13 warns (deprecated
    InitResourceContext.dagster_run) whenever it initialises a nested resource."""

    database_url: str
    connect_timeout_s: int
    models_dir: str

    def registry(self) -> ModelRegistry:
        db = Database(
            normalise_url(self.database_url), "DATABASE_URL", connect_timeout_s=self.connect_timeout_s
        )
        return ModelRegistry(db, root=Path(self.models_dir))


class PipelineSettingsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The knobs the assets, checks and sensors read (each field is the setting of the same name)."""

    trading_pairs: str
    snapshot_interval_ms: int
    partition_close_grace_s: int
    training_window_partitions: int
    training_profile: str
    training_epochs: int
    retrain_drift_severity: str
    # Dagster's config has no float source for environment variables: these three are read as text and
    # parsed by the properties below (the settings validated them already).
    label_coverage_min: str
    class_share_min: str
    class_share_max: str
    drift_max_rows: int

    @property
    def symbols(self) -> list[str]:
        return [s for s in self.trading_pairs.split(",") if s]

    @property
    def coverage_min(self) -> float:
        return _fraction("LABEL_COVERAGE_MIN", self.label_coverage_min)

    @property
    def share_bounds(self) -> tuple[float, float]:
        return _fraction("CLASS_SHARE_MIN", self.class_share_min), _fraction(
            "CLASS_SHARE_MAX", self.class_share_max
        )

    def spec(self) -> FeatureSpec:
        """The feature spec the pipeline computes (its hash is what files and models carry)."""
        return feature_spec(self.snapshot_interval_ms)


def _fraction(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {text!r}")
    return value


def database_resource_from_env() -> DatabaseResource:
    """The resource as `definitions.py` wires it: every field read from its environment variable."""
    return DatabaseResource(
        database_url=dg.EnvVar("DATABASE_URL"),
        connect_timeout_s=dg.EnvVar.int("DB_CONNECT_TIMEOUT_S"),
        retention_days=dg.EnvVar.int("MARKET_DATA_RETENTION_DAYS"),
    )


def resources_from_env() -> dict[str, Any]:
    """Every resource of the location, each field read from its environment variable."""
    database = database_resource_from_env()
    lake = LakeResource(lake_dir=dg.EnvVar("LAKE_DIR"), reports_dir=dg.EnvVar("REPORTS_DIR"))
    settings = PipelineSettingsResource(
        trading_pairs=dg.EnvVar("TRADING_PAIRS"),
        snapshot_interval_ms=dg.EnvVar.int("SNAPSHOT_INTERVAL_MS"),
        partition_close_grace_s=dg.EnvVar.int("PARTITION_CLOSE_GRACE_S"),
        training_window_partitions=dg.EnvVar.int("TRAINING_WINDOW_PARTITIONS"),
        training_profile=dg.EnvVar("TRAINING_PROFILE"),
        training_epochs=dg.EnvVar.int("TRAINING_EPOCHS"),
        retrain_drift_severity=dg.EnvVar("RETRAIN_DRIFT_SEVERITY"),
        label_coverage_min=dg.EnvVar("LABEL_COVERAGE_MIN"),
        class_share_min=dg.EnvVar("CLASS_SHARE_MIN"),
        class_share_max=dg.EnvVar("CLASS_SHARE_MAX"),
        drift_max_rows=dg.EnvVar.int("DRIFT_MAX_ROWS"),
    )
    return {
        "database": database,
        "lake": lake,
        "registry": ModelRegistryResource(
            database_url=dg.EnvVar("DATABASE_URL"),
            connect_timeout_s=dg.EnvVar.int("DB_CONNECT_TIMEOUT_S"),
            models_dir=dg.EnvVar("MODELS_DIR"),
        ),
        "settings": settings,
        "lake_io_manager": LakeIOManager(
            lake_dir=dg.EnvVar("LAKE_DIR"), snapshot_interval_ms=dg.EnvVar.int("SNAPSHOT_INTERVAL_MS")
        ),
    }
