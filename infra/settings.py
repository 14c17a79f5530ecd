"""The one settings object, read from the environment and `.env` with the original spec's names, and the
per-component configurations derived from it.

Every setting is a flat field of `Settings` named by its environment variable (`TRADING_PAIRS`,
`SNAPSHOT_INTERVAL_MS`, …); its default and its description are written there and nowhere else.
Components do not read `Settings`: each receives the typed, frozen config of its concern, built from it
at the edge (the CLI, the daemon's service, the Dagster launcher):

    settings.database  -> DatabaseConfig   infra.db.connection.open_database, the pools, migrations
    settings.exchange  -> ExchangeConfig   the Bybit client: venue URLs, credentials, clock, breakers
    settings.startup   -> StartupConfig    trading_daemon.lifecycle.startup.StartupRunner
    settings.feed      -> FeedConfig       trading_daemon.market.feed.MarketFeed and its row builders
    settings.spool     -> SpoolConfig      trading_daemon.recorder.Recorder
    settings.logging   -> LoggingConfig    trading_daemon.observability.logging.configure_logging
    settings.dagster   -> DagsterConfig    `depthcharge dagster` (the Dagster instance)
    settings.models_dir                    ml.registry.ModelRegistry

The config classes have no defaults of their own. Code that runs without the environment (tests, the
offline recorder) takes them from `code_defaults()`: the settings exactly as written here. `.env.example`
is rendered from this module (`python -m infra.settings > .env.example`) and a test keeps it current.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.features import DEFAULT_SNAPSHOT_INTERVAL_MS

ExchangeName = Literal["sim", "testnet", "mainnet"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


@dataclass(frozen=True, slots=True)
class VenueUrls:
    """The three base URLs of one venue: REST, the public linear stream, the private stream."""

    rest: str
    ws_public: str
    ws_private: str


# The one table of venue URLs (`EXCHANGE` picks a row; the `BYBIT_*_URL` settings override a column).
VENUE_URLS: dict[ExchangeName, VenueUrls] = {
    "sim": VenueUrls(
        "http://127.0.0.1:8090",
        "ws://127.0.0.1:8090/v5/public/linear",
        "ws://127.0.0.1:8090/v5/private",
    ),
    "testnet": VenueUrls(
        "https://api-testnet.bybit.com",
        "wss://stream-testnet.bybit.com/v5/public/linear",
        "wss://stream-testnet.bybit.com/v5/private",
    ),
    "mainnet": VenueUrls(
        "https://api.bybit.com",
        "wss://stream.bybit.com/v5/public/linear",
        "wss://stream.bybit.com/v5/private",
    ),
}


# ---- per-component configs (no defaults: they come from Settings) ------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    """Where the database is and how to connect to it."""

    url: SecretStr | None  # None: the embedded server in `pg_dir`
    pg_dir: Path
    connect_timeout_s: int
    pool_min_size: int
    pool_max_size: int
    retention_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeConfig:
    """The venue the daemon speaks to and how its client behaves."""

    name: ExchangeName
    urls: VenueUrls
    api_key: SecretStr | None
    api_secret: SecretStr | None
    clock_sync_interval_s: float
    breaker_failure_threshold: int
    breaker_cooldown_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StartupConfig:
    """How the daemon's start-up steps retry."""

    retry_max_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig:
    """The symbols streamed, the raw snapshot cadence and the candle back-fill throttle."""

    symbols: tuple[str, ...]
    snapshot_interval_ms: int
    row_grace_ms: int
    backfill_min_interval_s: float
    backfill_max_interval_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolConfig:
    """Where the recorder spools market data while the database is unreachable."""

    dir: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """Where logs go, from which level, and for how long they are kept."""

    dir: Path
    level: LogLevel
    retention_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DagsterConfig:
    """The Dagster instance directory (its `dagster.yaml` is copied there by `depthcharge dagster`)."""

    home: Path


# ---- the settings ------------------------------------------------------------------------------------


def _setting(default: Any, env: str, group: str, description: str, **constraints: Any) -> Any:
    """A field read from environment variable `env`, shown under `group` in .env.example."""
    return Field(
        default=default, alias=env, description=description, json_schema_extra={"group": group}, **constraints
    )


class Settings(BaseSettings):
    """Every process reads its configuration from one instance of this class (see the module docstring)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    var_dir: Path = _setting(
        Path("var"),
        "VAR_DIR",
        "runtime state",
        "Directory of runtime state: the embedded database (pg), the recorder's spool, models, logs and "
        "the Dagster instance live under it unless set otherwise.",
    )

    database_url: SecretStr | None = _setting(
        None,
        "DATABASE_URL",
        "database",
        "PostgreSQL to use, a postgresql:// URL or a libpq conninfo, e.g. "
        "postgresql://user:password@127.0.0.1:5432/depthcharge. Unset: the embedded server in $VAR_DIR/pg.",
    )
    db_connect_timeout_s: int = _setting(
        5,
        "DB_CONNECT_TIMEOUT_S",
        "database",
        "Seconds to wait for a database connection before reporting the database unreachable.",
        ge=1,
    )
    db_pool_min_size: int = _setting(
        1,
        "DB_POOL_MIN_SIZE",
        "database",
        "Connections each async pool (the daemon's recorder, bulk loads) keeps open.",
        ge=0,
    )
    db_pool_max_size: int = _setting(
        10, "DB_POOL_MAX_SIZE", "database", "Most connections one async pool opens.", ge=1
    )
    market_data_retention_days: int = _setting(
        30,
        "MARKET_DATA_RETENTION_DAYS",
        "database",
        "Days of market_snapshots, public_trades and candles kept (the TimescaleDB retention policy, or "
        "the daily retention job on plain PostgreSQL).",
        ge=1,
    )

    exchange_name: ExchangeName = _setting(
        "sim",
        "EXCHANGE",
        "exchange",
        "The venue: sim (the paper exchange), testnet or mainnet. Chooses the three URLs below.",
    )
    bybit_rest_url: str | None = _setting(
        None, "BYBIT_REST_URL", "exchange", "Overrides the venue's REST base URL."
    )
    bybit_ws_public_url: str | None = _setting(
        None, "BYBIT_WS_PUBLIC_URL", "exchange", "Overrides the venue's public (linear) stream URL."
    )
    bybit_ws_private_url: str | None = _setting(
        None, "BYBIT_WS_PRIVATE_URL", "exchange", "Overrides the venue's private stream URL."
    )
    bybit_api_key: SecretStr | None = _setting(
        None,
        "BYBIT_API_KEY",
        "exchange",
        "Account API key. Unset: the daemon records market data without credentials; set, they are "
        "checked at start-up.",
    )
    bybit_api_secret: SecretStr | None = _setting(
        None, "BYBIT_API_SECRET", "exchange", "Secret of BYBIT_API_KEY."
    )
    clock_sync_interval_s: float = _setting(
        300.0,
        "CLOCK_SYNC_INTERVAL_S",
        "exchange",
        "Seconds between measurements of the offset to the exchange clock (also re-measured after a "
        "retCode 10002).",
        gt=0,
    )
    circuit_breaker_failure_threshold: int = _setting(
        5,
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        "exchange",
        "Venue failures in a row that open a circuit breaker.",
        ge=1,
    )
    circuit_breaker_cooldown_s: float = _setting(
        60.0,
        "CIRCUIT_BREAKER_COOLDOWN_S",
        "exchange",
        "Seconds after which an open breaker lets one trial call through.",
        ge=0,
    )

    startup_retry_max_s: float = _setting(
        30.0,
        "STARTUP_RETRY_MAX_S",
        "daemon start-up",
        "Start-up steps are retried until they succeed; the longest wait between two attempts, in "
        "seconds (the first wait is 0.5 s).",
        ge=0.5,
    )

    trading_pairs: str = _setting(
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "TRADING_PAIRS",
        "market data",
        "Comma-separated USDT perpetual symbols to stream, record and trade.",
    )
    snapshot_interval_ms: int = _setting(
        DEFAULT_SNAPSHOT_INTERVAL_MS,  # the feature contract's cadence (schemas.features)
        "SNAPSHOT_INTERVAL_MS",
        "market data",
        "Raw snapshot row cadence in ms (enters the feature spec hash).",
        gt=0,
    )
    row_grace_ms: int = _setting(
        250,
        "ROW_GRACE_MS",
        "market data",
        "How long after its boundary a row waits for late messages before it is built, in ms.",
        ge=0,
    )
    candle_backfill_min_interval_s: float = _setting(
        2.0,
        "CANDLE_BACKFILL_MIN_INTERVAL_S",
        "market data",
        "A hole in a symbol's candles is back-filled at most this often, in seconds...",
        gt=0,
    )
    candle_backfill_max_interval_s: float = _setting(
        60.0,
        "CANDLE_BACKFILL_MAX_INTERVAL_S",
        "market data",
        "...backing off up to this interval while the hole persists.",
        gt=0,
    )

    log_dir: Path | None = _setting(
        None, "LOG_DIR", "logging", "Directory of the daily log files. Unset: $VAR_DIR/logs."
    )
    log_level: LogLevel = _setting(
        "INFO", "LOG_LEVEL", "logging", "Lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    log_retention_days: int = _setting(
        14,
        "LOG_RETENTION_DAYS",
        "logging",
        "Daily log files of older days are deleted (at start and at each UTC midnight).",
        ge=1,
    )

    dagster_home: Path | None = _setting(
        None, "DAGSTER_HOME", "dagster", "The Dagster instance directory. Unset: $VAR_DIR/dagster."
    )

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

    @field_validator(
        "database_url",
        "bybit_rest_url",
        "bybit_ws_public_url",
        "bybit_ws_private_url",
        "bybit_api_key",
        "bybit_api_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `BYBIT_API_KEY=` in .env means "not set", as it does for a shell variable.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Settings:
        if self.candle_backfill_min_interval_s > self.candle_backfill_max_interval_s:
            raise ValueError(
                f"CANDLE_BACKFILL_MIN_INTERVAL_S ({self.candle_backfill_min_interval_s}) must not exceed "
                f"CANDLE_BACKFILL_MAX_INTERVAL_S ({self.candle_backfill_max_interval_s})"
            )
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError(
                f"DB_POOL_MIN_SIZE ({self.db_pool_min_size}) must not exceed "
                f"DB_POOL_MAX_SIZE ({self.db_pool_max_size})"
            )
        return self

    # ---- the component configs ----

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

    @property
    def exchange(self) -> ExchangeConfig:
        table = VENUE_URLS[self.exchange_name]
        urls = VenueUrls(
            (self.bybit_rest_url or table.rest).rstrip("/"),
            self.bybit_ws_public_url or table.ws_public,
            self.bybit_ws_private_url or table.ws_private,
        )
        return ExchangeConfig(
            name=self.exchange_name,
            urls=urls,
            api_key=self.bybit_api_key,
            api_secret=self.bybit_api_secret,
            clock_sync_interval_s=self.clock_sync_interval_s,
            breaker_failure_threshold=self.circuit_breaker_failure_threshold,
            breaker_cooldown_s=self.circuit_breaker_cooldown_s,
        )

    @property
    def startup(self) -> StartupConfig:
        return StartupConfig(retry_max_s=self.startup_retry_max_s)

    @property
    def feed(self) -> FeedConfig:
        return FeedConfig(
            symbols=tuple(self.trading_pairs.split(",")),
            snapshot_interval_ms=self.snapshot_interval_ms,
            row_grace_ms=self.row_grace_ms,
            backfill_min_interval_s=self.candle_backfill_min_interval_s,
            backfill_max_interval_s=self.candle_backfill_max_interval_s,
        )

    @property
    def spool(self) -> SpoolConfig:
        return SpoolConfig(dir=self.var_dir / "spool")

    @property
    def logging(self) -> LoggingConfig:
        return LoggingConfig(
            dir=self.log_dir or self.var_dir / "logs",
            level=self.log_level,
            retention_days=self.log_retention_days,
        )

    @property
    def dagster(self) -> DagsterConfig:
        return DagsterConfig(home=self.dagster_home or self.var_dir / "dagster")

    @property
    def models_dir(self) -> Path:
        """Model artifacts and manifests (`<models_dir>/<version>/`)."""
        return self.var_dir / "models"

    def to_env(self) -> dict[str, str]:
        """Every setting that has a value, as the environment variables that would reproduce it
        (secrets in clear: for a child process's environment, never for a log)."""
        env: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[str(info.alias)] = str(value)
        return env


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`; keyword overrides (by variable name) win.

    For the edges of the system only: the CLI, the daemon's entry point, tests. Library code receives
    the config objects instead.
    """
    return Settings(**overrides)  # type: ignore[arg-type]


def code_defaults() -> Settings:
    """The settings as written in this module, with nothing read from the environment or `.env`."""
    return Settings.model_construct()


# Environment variables the project reads that are not settings (listed in .env.example for completeness).
OTHER_VARIABLES: tuple[tuple[str, str], ...] = (
    (
        "DAGSTER_POSTGRES_URL",
        "Set by `depthcharge dagster` for the Dagster instance's storage (infra/dagster/dagster.yaml); "
        "do not set it yourself.",
    ),
    ("TEST_DATABASE_URL", "Tests only: a second, external PostgreSQL to run the storage tests against."),
    ("DEPTHCHARGE_TEST_CACHE", "Tests only: where recorded test markets are cached (default: the temp dir)."),
)


def render_env_example() -> str:
    """The text of `.env.example`: every setting with its description and default, grouped."""
    lines = [
        "# Depthcharge settings, read from the environment and .env (infra/settings.py). Defaults shown;",
        "# an empty value means unset. Regenerate with: python -m infra.settings > .env.example",
    ]
    group = None
    for info in Settings.model_fields.values():
        extra = info.json_schema_extra
        assert isinstance(extra, dict)
        if extra["group"] != group:
            group = extra["group"]
            lines += ["", f"# --- {group} ---"]
        lines += textwrap.wrap(str(info.description), 100, initial_indent="# ", subsequent_indent="# ")
        default = "" if info.default is None else str(info.default)
        lines.append(f"# {info.alias}={default}")
    lines += ["", "# --- not settings: read by the tools named ---"]
    for name, description in OTHER_VARIABLES:
        lines += textwrap.wrap(description, 100, initial_indent="# ", subsequent_indent="# ")
        lines.append(f"# {name}=")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_env_example(), end="")
