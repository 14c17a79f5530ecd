"""The one settings object, read from the environment and `.env`, with the original spec's names."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ExchangeName = Literal["sim", "testnet", "mainnet"]

VENUE_URLS: dict[str, tuple[str, str, str]] = {
    # (REST, public linear stream, private stream)
    "sim": (
        "http://127.0.0.1:8090",
        "ws://127.0.0.1:8090/v5/public/linear",
        "ws://127.0.0.1:8090/v5/private",
    ),
    "testnet": (
        "https://api-testnet.bybit.com",
        "wss://stream-testnet.bybit.com/v5/public/linear",
        "wss://stream-testnet.bybit.com/v5/private",
    ),
    "mainnet": (
        "https://api.bybit.com",
        "wss://stream.bybit.com/v5/public/linear",
        "wss://stream.bybit.com/v5/private",
    ),
}


class Settings(BaseSettings):
    """Every process reads its configuration from one instance of this class."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    var_dir: Path = Field(default=Path("var"), alias="VAR_DIR")
    db_connect_timeout_s: int = Field(default=5, alias="DB_CONNECT_TIMEOUT_S", ge=1)
    db_pool_min_size: int = Field(default=1, alias="DB_POOL_MIN_SIZE", ge=0)
    db_pool_max_size: int = Field(default=10, alias="DB_POOL_MAX_SIZE", ge=1)
    market_data_retention_days: int = Field(default=30, alias="MARKET_DATA_RETENTION_DAYS", ge=1)

    exchange: ExchangeName = Field(default="sim", alias="EXCHANGE")
    bybit_rest_url: str | None = Field(default=None, alias="BYBIT_REST_URL")
    bybit_ws_public_url: str | None = Field(default=None, alias="BYBIT_WS_PUBLIC_URL")
    bybit_ws_private_url: str | None = Field(default=None, alias="BYBIT_WS_PRIVATE_URL")
    bybit_api_key: SecretStr | None = Field(default=None, alias="BYBIT_API_KEY")
    bybit_api_secret: SecretStr | None = Field(default=None, alias="BYBIT_API_SECRET")
    live_trading_mainnet: str | None = Field(default=None, alias="LIVE_TRADING_MAINNET")
    # Daemon resilience: exchange clock re-measure, start-up retries, circuit breakers, candle back-fills.
    clock_sync_interval_s: float = Field(default=300.0, alias="CLOCK_SYNC_INTERVAL_S", gt=0)
    startup_retry_max_s: float = Field(default=30.0, alias="STARTUP_RETRY_MAX_S", ge=0.5)
    circuit_breaker_failure_threshold: int = Field(default=5, alias="CIRCUIT_BREAKER_FAILURE_THRESHOLD", ge=1)
    circuit_breaker_cooldown_s: float = Field(default=60.0, alias="CIRCUIT_BREAKER_COOLDOWN_S", ge=0)
    candle_backfill_min_interval_s: float = Field(default=2.0, alias="CANDLE_BACKFILL_MIN_INTERVAL_S", gt=0)
    candle_backfill_max_interval_s: float = Field(default=60.0, alias="CANDLE_BACKFILL_MAX_INTERVAL_S", gt=0)

    trading_pairs: str = Field(default="BTCUSDT,ETHUSDT,SOLUSDT", alias="TRADING_PAIRS")
    snapshot_interval_ms: int = Field(default=1000, alias="SNAPSHOT_INTERVAL_MS", gt=0)
    row_grace_ms: int = Field(default=250, alias="ROW_GRACE_MS", ge=0)

    api_host: str = Field(default="127.0.0.1", alias="API_HOST")
    api_port: int = Field(default=8000, alias="API_PORT", gt=0, lt=65536)
    secret_key: SecretStr | None = Field(default=None, alias="SECRET_KEY")
    app_password: SecretStr | None = Field(default=None, alias="APP_PASSWORD")

    log_dir: Path | None = Field(default=None, alias="LOG_DIR")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", alias="LOG_LEVEL"
    )
    log_retention_days: int = Field(default=14, alias="LOG_RETENTION_DAYS", ge=1)
    dagster_home: Path | None = Field(default=None, alias="DAGSTER_HOME")

    @field_validator("trading_pairs")
    @classmethod
    def _pairs_are_symbols(cls, value: str) -> str:
        pairs = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in pairs if not (p.isalnum() and p.isupper() and p.endswith("USDT"))]
        if not pairs or bad:
            raise ValueError(
                f"TRADING_PAIRS must list USDT perpetual symbols like BTCUSDT, got {bad or value!r}"
            )
        return ",".join(pairs)

    @model_validator(mode="after")
    def _backfill_intervals_ordered(self) -> Settings:
        if self.candle_backfill_min_interval_s > self.candle_backfill_max_interval_s:
            raise ValueError(
                f"CANDLE_BACKFILL_MIN_INTERVAL_S ({self.candle_backfill_min_interval_s}) must not exceed "
                f"CANDLE_BACKFILL_MAX_INTERVAL_S ({self.candle_backfill_max_interval_s})"
            )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def symbols(self) -> list[str]:
        return self.trading_pairs.split(",")

    @cached_property
    def venue_urls(self) -> tuple[str, str, str]:
        rest, public, private = VENUE_URLS[self.exchange]
        return (
            self.bybit_rest_url or rest,
            self.bybit_ws_public_url or public,
            self.bybit_ws_private_url or private,
        )

    @property
    def pg_dir(self) -> Path:
        return self.var_dir / "pg"

    @property
    def logs_dir(self) -> Path:
        return self.log_dir or self.var_dir / "logs"

    @property
    def dagster_home_dir(self) -> Path:
        return self.dagster_home or self.var_dir / "dagster"

    @property
    def lake_dir(self) -> Path:
        return self.var_dir / "lake"

    @property
    def models_dir(self) -> Path:
        return self.var_dir / "models"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
