"""The one settings object, read from the environment and `.env` with the original spec's names, and the
per-component configurations derived from it.

Every setting is a flat field of `Settings` named by its environment variable (`TRADING_PAIRS`,
`SNAPSHOT_INTERVAL_MS`, …); its default and its description are written once, in the mixin of its concern
in `infra.settings_fields` (`database`, `exchange`, `feed`, `decisions`, `strategies` and
`strategy_params`, `detection`, `logs`, `execution`, `api`, `dagster`), which `Settings` composes.
Components do not read `Settings`: each receives the typed, frozen config of its concern, built from it
at the edge (the CLI, the daemon's service, the Dagster launcher):

    settings.database  -> DatabaseConfig   infra.db.connection.open_database, the pools, migrations
    settings.exchange  -> ExchangeConfig   the Bybit client: venue URLs, credentials, clock, breakers
    settings.startup   -> StartupConfig    trading_daemon.lifecycle.startup.StartupRunner
    settings.feed      -> FeedConfig       trading_daemon.market.feed.MarketFeed and its row builders
    settings.spool     -> SpoolConfig      trading_daemon.recorder.Recorder
    settings.logging   -> LoggingConfig    trading_daemon.observability.logging.configure_logging
    settings.execution -> ExecutionConfig  trading_daemon.execution (orders, recovery, reconciliation)
    settings.api       -> ApiConfig        trading_daemon.api (FastAPI app, auth, WebSocket, dashboard)
    settings.dagster   -> DagsterConfig    `depthcharge dagster` (the Dagster instance)
    settings.orchestration -> OrchestrationConfig  the Dagster code location (partitions, executor, resources)
    settings.models_dir                    ml.registry.ModelRegistry
    settings.ml_gate   -> MLGateConfig     trading_daemon.ml_gate.MLGate (model serving, signal validation)
    settings.risk      -> RiskConfig       trading_daemon.risk.RiskManager and TradingHealth
    settings.decisions -> DecisionConfig   trading_daemon.decisions.DecisionEngine (TRADING_ENABLED)
    settings.analyzer  -> AnalyzerConfig   trading_daemon.analysis.MarketAnalyzer (screener metrics)
    settings.strategies -> StrategyConfig  trading_daemon.strategies.StrategyManager (and each strategy)
    settings.detection -> DetectionConfig  trading_daemon.detection.DetectionService (the detectors)

The config classes themselves live in `infra.configs` (re-exported here). A mixin builds the config of its
concern when that needs only its own fields; the configs that join several concerns (`execution`, `api`,
`orchestration`, `analyzer`) are built here.

The config classes have no defaults of their own. Code that runs without the environment (tests, the
offline recorder) takes them from `code_defaults()`: the settings exactly as written. `.env.example`
is rendered from this module (`python -m infra.settings > .env.example`) and a test keeps it current.
"""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The configs are defined in infra.configs; callers import them from here with the settings.
from infra.configs import (
    IMBALANCE_DEPTHS,
    STRATEGY_NAMES,
    VENUE_URLS,
    AnalyzerConfig,
    ApiConfig,
    ConsensusMode,
    CostConfig,
    DagsterConfig,
    DagsterExecutorName,
    DatabaseConfig,
    DecisionConfig,
    DetectionConfig,
    EntryStyleName,
    ExchangeConfig,
    ExchangeName,
    ExecutionConfig,
    FeedConfig,
    ImbalanceConfig,
    LoggingConfig,
    LogLevel,
    MLGateConfig,
    MomentumConfig,
    OrchestrationConfig,
    PartitionGranularity,
    RetrainSeverity,
    RiskConfig,
    SarWaveConfig,
    SpoolConfig,
    StartupConfig,
    StrategyConfig,
    SuperTrendConfig,
    TrainingProfile,
    VenueUrls,
    VolumeProfileConfig,
    parse_strategy_names,
    parse_strategy_weights,
    venue_of,
)
from infra.settings_fields.api import ApiFields
from infra.settings_fields.dagster import DagsterFields
from infra.settings_fields.database import DatabaseFields
from infra.settings_fields.decisions import DecisionFields, parse_symbol_limits
from infra.settings_fields.detection import DetectionFields
from infra.settings_fields.exchange import ExchangeFields
from infra.settings_fields.execution import ExecutionFields
from infra.settings_fields.feed import FeedFields
from infra.settings_fields.logs import LoggingFields
from infra.settings_fields.strategy_params import StrategyFields

__all__ = [
    "IMBALANCE_DEPTHS",
    "STRATEGY_NAMES",
    "VENUE_URLS",
    "AnalyzerConfig",
    "ConsensusMode",
    "CostConfig",
    "DagsterConfig",
    "DagsterExecutorName",
    "DatabaseConfig",
    "DecisionConfig",
    "DetectionConfig",
    "EntryStyleName",
    "ExchangeConfig",
    "ExchangeName",
    "ExecutionConfig",
    "FeedConfig",
    "ImbalanceConfig",
    "LogLevel",
    "LoggingConfig",
    "MLGateConfig",
    "MomentumConfig",
    "OrchestrationConfig",
    "PartitionGranularity",
    "RetrainSeverity",
    "RiskConfig",
    "SarWaveConfig",
    "Settings",
    "SpoolConfig",
    "StartupConfig",
    "StrategyConfig",
    "SuperTrendConfig",
    "TrainingProfile",
    "VenueUrls",
    "VolumeProfileConfig",
    "code_defaults",
    "load_settings",
    "parse_strategy_names",
    "parse_strategy_weights",
    "parse_symbol_limits",
    "render_env_example",
]


# ---- the settings ------------------------------------------------------------------------------------


# pydantic orders the fields of several bases by reversed MRO: the last base's fields come first. The
# bases are therefore listed in the reverse of the order of the groups in .env.example (and `redacted()`).
class Settings(
    DagsterFields,
    ApiFields,
    ExecutionFields,
    LoggingFields,
    DetectionFields,
    StrategyFields,
    DecisionFields,
    FeedFields,
    ExchangeFields,
    DatabaseFields,
    BaseSettings,
):
    """Every process reads its configuration from one instance of this class (see the module docstring)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    @model_validator(mode="after")
    def _mainnet_opted_in(self) -> Settings:
        opt_in = self.live_trading_mainnet.strip()
        if opt_in not in ("", "yes"):
            raise ValueError(
                f"LIVE_TRADING_MAINNET must be `yes` or unset, got {self.live_trading_mainnet!r}"
            )
        if self.exchange_name == "mainnet" and self.trading_enabled and opt_in != "yes":
            raise ValueError(
                "EXCHANGE=mainnet with TRADING_ENABLED=true trades real money: set LIVE_TRADING_MAINNET=yes "
                "to confirm, or TRADING_ENABLED=false to record only"
            )
        # An override URL on Bybit's mainnet is real money too, whatever EXCHANGE says.
        urls = self.exchange.urls
        mainnet = [u for u in (urls.rest, urls.ws_public, urls.ws_private) if venue_of(u) == "mainnet"]
        if mainnet and self.trading_enabled and opt_in != "yes":
            raise ValueError(
                f"{mainnet[0]} is Bybit mainnet and TRADING_ENABLED=true trades real money: set "
                "LIVE_TRADING_MAINNET=yes to confirm, or TRADING_ENABLED=false to record only"
            )
        return self

    # ---- the component configs that join several concerns ----

    @property
    def execution(self) -> ExecutionConfig:
        return ExecutionConfig(
            trading_enabled=self.trading_enabled,
            auto_recovery=self.enable_auto_recovery,
            hanging_order_check=self.enable_hanging_order_check,
            fsm_auto_restore=self.enable_fsm_auto_restore,
            hanging_order_timeout_s=self.hanging_order_timeout_minutes * 60,
            max_reconciliation_retries=self.max_reconciliation_retries,
            reconciliation_retry_delay_s=self.reconciliation_retry_delay,
            detailed_hanging_order_logging=self.detailed_hanging_order_logging,
            reconcile_interval_s=self.reconcile_interval_s,
            idempotency_ttl_s=self.idempotency_ttl_minutes * 60,
            order_poll_interval_s=self.order_poll_interval_s,
            post_only_timeout_s=self.post_only_timeout_s,
            post_only_max_reprices=self.post_only_max_reprices,
            recv_window_margin_ms=self.recv_window_margin_ms,
            intent_resend_max_age_s=self.intent_resend_max_age_s,
            account_lock_wait_s=self.account_lock_wait_s,
            scripted_intent_interval_s=self.scripted_intent_interval_s,
            scripted_intent_notional_usdt=self.scripted_intent_notional_usdt,
        )

    @property
    def api(self) -> ApiConfig:
        return ApiConfig(
            enabled=self.api_enabled,
            host=self.api_host,
            port=self.api_port,
            secret_key=self.secret_key,
            secret_key_file=self.var_dir / "api" / "secret_key",
            admin_username=self.app_username,
            admin_password=self.app_password,
            access_token_s=self.access_token_minutes * 60,
            refresh_token_s=self.refresh_token_hours * 3600,
            login_attempts_per_minute=self.login_attempts_per_minute,
            cors_origins=tuple(o.strip() for o in self.cors_origins.split(",") if o.strip()),
            ws_client_queue=self.ws_client_queue,
            dashboard_dir=self.dashboard_dir or Path(__file__).resolve().parents[1] / "dashboard" / "dist",
            dagster_ui_url=f"http://{self.dagster_ui_host}:{self.dagster_ui_port}",
        )

    @property
    def orchestration(self) -> OrchestrationConfig:
        broker = self.celery_broker_url
        backend = self.celery_result_backend or (
            broker if broker.startswith(("redis://", "rediss://")) else "rpc://"
        )
        return OrchestrationConfig(
            symbols=tuple(self.trading_pairs.split(",")),
            snapshot_interval_ms=self.snapshot_interval_ms,
            ui_host=self.dagster_ui_host,
            ui_port=self.dagster_ui_port,
            partition=self.dagster_partition,
            partition_start=self.dagster_partition_start,
            partition_close_grace_s=self.partition_close_grace_s,
            executor=self.dagster_executor,
            celery_broker_url=broker,
            celery_result_backend=backend,
            lake_dir=self.lake_dir or self.var_dir / "lake",
            reports_dir=self.reports_dir or self.var_dir / "reports",
            models_dir=self.models_dir,
            training_window_partitions=self.training_window_partitions,
            training_profile=self.training_profile,
            training_epochs=self.training_epochs,
            retrain_drift_severity=self.retrain_drift_severity,
            retrain_schedule_cron=self.retrain_schedule_cron,
            sensor_interval_s=self.sensor_interval_s,
            label_coverage_min=self.label_coverage_min,
            class_share_min=self.class_share_min,
            class_share_max=self.class_share_max,
            drift_max_rows=self.drift_max_rows,
        )

    @property
    def analyzer(self) -> AnalyzerConfig:
        return AnalyzerConfig(
            symbols=tuple(self.trading_pairs.split(",")),
            snapshot_interval_ms=self.snapshot_interval_ms,
            min_cluster_volume=self.min_cluster_volume,
        )

    def redacted(self) -> dict[str, dict[str, Any]]:
        """Every setting by group as {VARIABLE: value}, for an operator's eyes: a secret shows only whether
        it is set, and a URL's password is masked."""
        groups: dict[str, dict[str, Any]] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "set (hidden)" if value.get_secret_value() else None
            elif isinstance(value, str) and "://" in value:
                value = _mask_url_password(value)
            elif isinstance(value, Path | Decimal):
                value = str(value)
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            groups.setdefault(str(extra.get("group", "other")), {})[str(info.alias)] = value
        return groups

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


def _mask_url_password(url: str) -> str:
    """`redis://user:pw@host/0` → `redis://user:***@host/0` (a URL without a password is unchanged)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


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
        "The Dagster instance's storage (infra/dagster/dagster.yaml): `depthcharge dagster` sets it from "
        "DATABASE_URL; set it only for the systemd units that run dagster-webserver and dagster-daemon "
        "directly (infra/systemd/README.md), as `depthcharge db url --dagster` prints it.",
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
