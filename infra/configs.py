"""The per-component configurations the settings are turned into at the edge (`infra.settings`).

Each is a typed, frozen dataclass with no defaults of its own: `Settings` builds them (its properties
`database`, `exchange`, `feed`, …), and a component receives the one of its concern. The parsers of the
settings' list-valued strings (strategy names and weights) live here beside the configs that hold them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from schemas.enums import EntryStyle

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


def venue_of(url: str) -> Literal["local", "testnet", "demo", "mainnet", "other"]:
    """Which kind of venue a URL points at. Any Bybit host that is neither testnet nor demo counts as
    mainnet (real money), regional domains included: the safe side."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127."):
        return "local"
    if "testnet" in host:
        return "testnet"
    if host.startswith(("api-demo.", "stream-demo.")):
        return "demo"
    if any(name in host for name in ("bybit", "bytick", "byhkbit")):
        return "mainnet"
    return "other"


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
    live_trading_mainnet: bool  # LIVE_TRADING_MAINNET=yes: the operator's opt-in to orders on mainnet
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
class ExecutionConfig:
    """How execution trades, recovers and reconciles (trading_daemon.execution)."""

    trading_enabled: bool
    auto_recovery: bool
    hanging_order_check: bool
    fsm_auto_restore: bool
    hanging_order_timeout_s: float
    max_reconciliation_retries: int
    reconciliation_retry_delay_s: float
    detailed_hanging_order_logging: bool
    reconcile_interval_s: float
    idempotency_ttl_s: int
    order_poll_interval_s: float
    post_only_timeout_s: float
    post_only_max_reprices: int
    recv_window_margin_ms: int
    intent_resend_max_age_s: float
    account_lock_wait_s: float
    scripted_intent_interval_s: float
    scripted_intent_notional_usdt: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """The daemon's status and control API, its authentication and the dashboard it serves."""

    enabled: bool
    host: str
    port: int
    secret_key: SecretStr | None  # never log it
    secret_key_file: Path  # where a generated key is kept when SECRET_KEY is unset
    admin_username: str
    admin_password: SecretStr | None  # never log it
    access_token_s: int
    refresh_token_s: int
    login_attempts_per_minute: int
    cors_origins: tuple[str, ...]
    ws_client_queue: int
    dashboard_dir: Path
    dagster_ui_url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DagsterConfig:
    """The Dagster instance directory (its `dagster.yaml` is copied there by `depthcharge dagster`)."""

    home: Path


# ---- orchestration: the Dagster code location (issue 10; docs/orchestration.md) -----------------------

PartitionGranularity = Literal["hourly", "daily"]
DagsterExecutorName = Literal["multiprocess", "celery", "in_process"]
RetrainSeverity = Literal["low", "medium", "high"]
TrainingProfile = Literal["quick", "full"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationConfig:
    """What shapes the Dagster code location (partitions, executor) and what its resources read."""

    symbols: tuple[str, ...]
    snapshot_interval_ms: int
    ui_host: str
    ui_port: int
    partition: PartitionGranularity
    partition_start: str  # YYYY-MM-DD, UTC
    partition_close_grace_s: int
    executor: DagsterExecutorName
    celery_broker_url: str  # may carry a password: never log it
    celery_result_backend: str
    lake_dir: Path
    reports_dir: Path
    models_dir: Path
    training_window_partitions: int
    training_profile: TrainingProfile
    training_epochs: int
    retrain_drift_severity: RetrainSeverity
    retrain_schedule_cron: str
    sensor_interval_s: int
    label_coverage_min: float
    class_share_min: float
    class_share_max: float
    drift_max_rows: int


# ---- decisions: the ML gate, risk, the decision engine (issue 12) ------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MLGateConfig:
    """How the ML gate serves the production model and validates the strategies' consensus."""

    max_age_hours: float
    min_confidence: float
    weight: float
    min_validated_confidence: float
    primary_horizon_s: int
    inference_threads: int
    inference_timeout_ms: int
    poll_interval_s: float
    shadow_enabled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """The risk manager's limits and the infrastructure-health halts."""

    max_open_positions: int
    max_exposure_usdt: Decimal
    min_order_size_usdt: Decimal
    max_symbol_exposure_usdt: Decimal
    symbol_exposure_limits: dict[str, Decimal]
    leverage: Decimal
    risk_per_trade_pct: Decimal
    default_stop_loss_pct: Decimal
    daily_loss_limit_usdt: Decimal
    book_stale_ms: int
    error_burst_count: int
    error_burst_window_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionConfig:
    """Whether the daemon trades, and how old a row's decision may be when its order would be sent."""

    trading_enabled: bool
    max_lag_ms: int


# ---- analysis and strategies (issue 12: trading_daemon.analysis, trading_daemon.strategies) -----------

STRATEGY_NAMES: tuple[str, ...] = ("imbalance", "momentum", "sar_wave", "supertrend", "volume_profile")
IMBALANCE_DEPTHS: tuple[int, ...] = (1, 5, 10, 20, 50)  # the depths MarketAnalysis holds an imbalance for
ConsensusMode = Literal["majority", "weighted", "unanimous"]
EntryStyleName = Literal["taker", "maker"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyzerConfig:
    """The market analyzer's symbols, the row cadence, and what counts as a cluster (a level of at least
    `min_cluster_volume` USDT)."""

    symbols: tuple[str, ...]
    snapshot_interval_ms: int
    min_cluster_volume: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ImbalanceConfig:
    """The order-book imbalance strategy (docs/strategies.md §2.1)."""

    buy_threshold: float
    sell_threshold: float
    min_cluster_volume: float
    depth: int
    take_profit_bps: float
    stop_loss_bps: float
    max_hold_s: float
    entry_style: EntryStyle


@dataclass(frozen=True, slots=True, kw_only=True)
class MomentumConfig:
    """The momentum strategy: ROC, RSI filter, volume confirmation (docs/strategies.md §2.2)."""

    roc_period: int
    roc_threshold_pct: float
    rsi_period: int
    rsi_overbought: float
    rsi_oversold: float
    volume_period: int
    volume_mult: float
    atr_period: int
    stop_atr: float
    take_profit_atr: float
    max_hold_s: float
    entry_style: EntryStyle


@dataclass(frozen=True, slots=True, kw_only=True)
class SarWaveConfig:
    """The SAR wave strategy: Parabolic SAR, swings, ADX filter, Fibonacci entries (docs/strategies.md §2.3)."""

    acceleration: float
    max_acceleration: float
    adx_period: int
    adx_threshold: float
    swing_order: int
    fib_min: float
    fib_max: float
    min_wave_atr: float
    atr_period: int
    max_hold_s: float
    entry_style: EntryStyle


@dataclass(frozen=True, slots=True, kw_only=True)
class SuperTrendConfig:
    """The SuperTrend strategy: ATR bands, adaptive and trailing stops (docs/strategies.md §2.4)."""

    atr_period: int
    multiplier: float
    signal_bars: int
    roc_period: int
    volume_period: int
    volume_mult: float
    trailing_atr: float
    take_profit_atr: float
    max_hold_s: float
    entry_style: EntryStyle


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeProfileConfig:
    """The volume profile strategy: POC, value area, high/low volume nodes (docs/strategies.md §2.5)."""

    lookback: int
    bins: int
    value_area: float
    hvn_mult: float
    lvn_mult: float
    breakout_volume_mult: float
    volume_period: int
    atr_period: int
    stop_atr: float
    max_hold_s: float
    entry_style: EntryStyle


@dataclass(frozen=True, slots=True, kw_only=True)
class CostConfig:
    """Fees per side and the edge a signal must expect after them (docs/strategies.md §4)."""

    taker_fee_bps: float
    maker_fee_bps: float
    min_expected_edge_bps: float
    edge_prior_signals: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyConfig:
    """The strategy manager: which strategies run, how they agree, what they cost, and each one's settings."""

    enabled: tuple[str, ...]
    consensus_mode: ConsensusMode
    min_strategies: int
    min_consensus_confidence: float
    weights: dict[str, float]
    costs: CostConfig
    imbalance: ImbalanceConfig
    momentum: MomentumConfig
    sar_wave: SarWaveConfig
    supertrend: SuperTrendConfig
    volume_profile: VolumeProfileConfig

    def __post_init__(self) -> None:
        unknown = sorted(set(self.enabled) - set(STRATEGY_NAMES))
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; the strategies are {list(STRATEGY_NAMES)}")
        unknown = sorted(set(self.weights) - set(STRATEGY_NAMES))
        if unknown:
            raise ValueError(
                f"weights name unknown strategies {unknown}; the strategies are {list(STRATEGY_NAMES)}"
            )
        if self.min_strategies < 1:
            raise ValueError(f"MIN_STRATEGIES must be >= 1, got {self.min_strategies}")
        if not 0.0 <= self.min_consensus_confidence <= 1.0:
            raise ValueError(
                f"MIN_CONSENSUS_CONFIDENCE must be in [0, 1], got {self.min_consensus_confidence}"
            )
        if not 0.5 < self.imbalance.buy_threshold <= 1.0 or not 0.0 <= self.imbalance.sell_threshold < 0.5:
            raise ValueError(
                "IMBALANCE_BUY_THRESHOLD must be in (0.5, 1] and IMBALANCE_SELL_THRESHOLD in [0, 0.5), got "
                f"{self.imbalance.buy_threshold} and {self.imbalance.sell_threshold}"
            )
        if not 0.0 < self.sar_wave.fib_min < self.sar_wave.fib_max < 1.0:
            raise ValueError(
                f"SAR_FIB_MIN < SAR_FIB_MAX must both lie in (0, 1), got {self.sar_wave.fib_min}, "
                f"{self.sar_wave.fib_max}"
            )
        if not self.momentum.rsi_oversold < self.momentum.rsi_overbought:
            raise ValueError(
                f"MOMENTUM_RSI_OVERSOLD ({self.momentum.rsi_oversold}) must be below MOMENTUM_RSI_OVERBOUGHT "
                f"({self.momentum.rsi_overbought})"
            )

    def weight(self, strategy: str) -> float:
        """The strategy's vote weight in weighted consensus (1 unless STRATEGY_WEIGHTS names it)."""
        return self.weights.get(strategy, 1.0)


def parse_strategy_names(text: str) -> tuple[str, ...]:
    """`imbalance,momentum` as a tuple of known strategy names (raises naming an unknown one)."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in STRATEGY_NAMES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; the strategies are {list(STRATEGY_NAMES)}")
    return names


def parse_strategy_weights(text: str) -> dict[str, float]:
    """`momentum:1.5,imbalance:0.5` as {name: weight}; weights finite and >= 0 (raises naming the entry)."""
    weights: dict[str, float] = {}
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        name, sep, value = entry.partition(":")
        name = name.strip()
        if not sep or name not in STRATEGY_NAMES:
            raise ValueError(
                f"STRATEGY_WEIGHTS entry {entry!r} must be strategy:weight with a strategy of {list(STRATEGY_NAMES)}"
            )
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"STRATEGY_WEIGHTS entry {entry!r}: {value!r} is not a number") from None
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"STRATEGY_WEIGHTS entry {entry!r}: the weight must be finite and >= 0")
        weights[name] = weight
    return weights


# ---- detection: spoofing, layering, support/resistance (issue 12; docs/detection.md) ------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionConfig:
    """The manipulation detectors, the support/resistance detector and the entry block they impose."""

    enabled: bool
    spoofing_min_notional_usdt: float
    spoofing_min_size_multiple: float
    spoofing_max_ttl_s: float
    spoofing_cancel_rate_threshold: float
    spoofing_max_distance_ticks: float
    spoofing_episode_gap_s: float
    layering_min_orders: int
    layering_min_order_notional_usdt: float
    layering_min_size_multiple: float
    layering_size_tolerance: float
    layering_max_gap_ticks: int
    layering_max_placement_s: float
    layering_max_ttl_s: float
    layering_cancel_window_s: float
    layering_cancel_rate_threshold: float
    layering_max_distance_ticks: float
    settle_ms: int
    manipulation_block_s: float
    manipulation_min_confidence: float
    sr_lookback_candles: int
    sr_swing_window: int
    sr_cluster_eps_pct: float
    sr_min_touches: int
    sr_max_levels: int
    sr_breakout_pct: float
    sr_breakout_volume_multiplier: float

    def __post_init__(self) -> None:
        for name in (
            "spoofing_cancel_rate_threshold",
            "layering_cancel_rate_threshold",
            "layering_size_tolerance",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DetectionConfig.{name} must be in [0, 1], got {value}")
        if self.layering_min_orders < 2:
            raise ValueError(f"LAYERING_MIN_ORDERS must be at least 2, got {self.layering_min_orders}")
        if self.sr_lookback_candles < 2 * self.sr_swing_window + 1:
            raise ValueError(
                f"SR_LOOKBACK_CANDLES ({self.sr_lookback_candles}) must cover at least one swing window "
                f"(2 x SR_SWING_WINDOW + 1 = {2 * self.sr_swing_window + 1})"
            )
