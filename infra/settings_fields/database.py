"""Database and storage settings: DatabaseConfig."""

from __future__ import annotations

from typing import Self

from pydantic import SecretStr, field_validator, model_validator

from infra.configs import DatabaseConfig
from infra.settings_fields.base import RuntimeStateFields, blank_is_none, setting


class DatabaseFields(RuntimeStateFields):
    """Which PostgreSQL, how to connect and pool, how long market data is kept."""

    database_url: SecretStr | None = setting(
        None,
        "DATABASE_URL",
        "database",
        "PostgreSQL to use, a postgresql:// URL or a libpq conninfo, e.g. "
        "postgresql://user:password@127.0.0.1:5432/depthcharge. Unset: the embedded server in $VAR_DIR/pg.",
    )
    db_connect_timeout_s: int = setting(
        5,
        "DB_CONNECT_TIMEOUT_S",
        "database",
        "Seconds to wait for a database connection before reporting the database unreachable.",
        ge=1,
    )
    db_pool_min_size: int = setting(
        1,
        "DB_POOL_MIN_SIZE",
        "database",
        "Connections each async pool (the daemon's recorder, bulk loads) keeps open.",
        ge=0,
    )
    db_pool_max_size: int = setting(
        10, "DB_POOL_MAX_SIZE", "database", "Most connections one async pool opens.", ge=1
    )
    market_data_retention_days: int = setting(
        30,
        "MARKET_DATA_RETENTION_DAYS",
        "database",
        "Days of market_snapshots, public_trades and candles kept (the TimescaleDB retention policy, or "
        "the daily retention job on plain PostgreSQL).",
        ge=1,
    )

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url_empty_is_unset(cls, value: object) -> object:
        return blank_is_none(value)

    @model_validator(mode="after")
    def _pool_range_ordered(self) -> Self:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError(
                f"DB_POOL_MIN_SIZE ({self.db_pool_min_size}) must not exceed "
                f"DB_POOL_MAX_SIZE ({self.db_pool_max_size})"
            )
        return self

    @property
    def database(self) -> DatabaseConfig:
        return DatabaseConfig(
            url=self.database_url,
            pg_dir=self.var_dir / "pg",
            connect_timeout_s=self.db_connect_timeout_s,
            pool_min_size=self.db_pool_min_size,
            pool_max_size=self.db_pool_max_size,
            retention_days=self.market_data_retention_days,
        )
