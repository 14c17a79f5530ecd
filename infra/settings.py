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
    settings.execution -> ExecutionConfig  trading_daemon.execution (orders, recovery, reconciliation)
    settings.dagster   -> DagsterConfig    `depthcharge dagster` (the Dagster instance)
    settings.orchestration -> OrchestrationConfig  the Dagster code location (partitions, executor, resources)
    settings.models_dir                    ml.registry.ModelRegistry
    settings.ml_gate   -> MLGateConfig     trading_daemon.ml_gate.MLGate (model serving, signal validation)
    settings.risk      -> RiskConfig       trading_daemon.risk.RiskManager and TradingHealth
    settings.decisions -> DecisionConfig   trading_daemon.decisions.DecisionEngine (TRADING_ENABLED)
    settings.analyzer  -> AnalyzerConfig   trading_daemon.analysis.MarketAnalyzer (screener metrics)
    settings.strategies -> StrategyConfig  trading_daemon.strategies.StrategyManager (and each strategy)
    settings.detection -> DetectionConfig  trading_daemon.detection.DetectionService (the detectors)

The config classes themselves live in `infra.configs` (re-exported here).

The config classes have no defaults of their own. Code that runs without the environment (tests, the
offline recorder) takes them from `code_defaults()`: the settings exactly as written here. `.env.example`
is rendered from this module (`python -m infra.settings > .env.example`) and a test keeps it current.
"""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The configs are defined in infra.configs; callers import them from here with the settings.
from infra.configs import (
    IMBALANCE_DEPTHS,
    STRATEGY_NAMES,
    VENUE_URLS,
    AnalyzerConfig,
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
)
from schemas.enums import EntryStyle
from schemas.features import DEFAULT_SNAPSHOT_INTERVAL_MS

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
    live_trading_mainnet: str = _setting(
        "",
        "LIVE_TRADING_MAINNET",
        "exchange",
        "Must be `yes` for the daemon to trade with EXCHANGE=mainnet (real money); without it a daemon "
        "with TRADING_ENABLED=true on mainnet refuses to start. Recording mainnet needs no opt-in.",
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

    # ---- decisions: the ML gate, risk, the decision engine (issue 12) ----
    trading_enabled: bool = _setting(
        False,
        "TRADING_ENABLED",
        "trading",
        "true: the daemon decides and trades (strategies, detectors, the ML gate, risk, execution); "
        "false: it only records the market.",
    )
    decision_max_lag_ms: int = _setting(
        1500,
        "DECISION_MAX_LAG_MS",
        "trading",
        "An entry decided on a row older than this (ms, by the exchange clock) is not sent: the market "
        "it was decided on has moved.",
        gt=0,
    )
    model_max_age_hours: float = _setting(
        48.0,
        "MODEL_MAX_AGE_HOURS",
        "ML gate",
        "A production model trained longer ago than this is stale: the gate falls back to the "
        "strategies' consensus alone until a newer model is promoted.",
        gt=0,
    )
    ml_min_confidence: float = _setting(
        0.55,
        "ML_MIN_CONFIDENCE",
        "ML gate",
        "Below this confidence the model's view counts as neutral: it can neither confirm nor veto.",
        ge=0,
        le=1,
    )
    ml_weight: float = _setting(
        0.5,
        "ML_WEIGHT",
        "ML gate",
        "Weight of the model's support in a validated signal's confidence (the consensus has 1 - this).",
        ge=0,
        le=1,
    )
    ml_min_validated_confidence: float = _setting(
        0.5,
        "ML_MIN_VALIDATED_CONFIDENCE",
        "ML gate",
        "A signal the model does not contradict is traded only if its validated confidence reaches this.",
        ge=0,
        le=1,
    )
    ml_primary_horizon_s: int = _setting(
        10,
        "ML_PRIMARY_HORIZON_S",
        "ML gate",
        "The prediction horizon (seconds, one of the model's) whose direction validates signals.",
        gt=0,
    )
    ml_inference_threads: int = _setting(
        1,
        "ML_INFERENCE_THREADS",
        "ML gate",
        "Torch threads of the inference worker (the daemon shares the machine; 1-2 is fastest for one window).",
        ge=1,
    )
    ml_inference_timeout_ms: int = _setting(
        250,
        "ML_INFERENCE_TIMEOUT_MS",
        "ML gate",
        "A prediction slower than this (ms) is not waited for: that row falls back to the consensus.",
        gt=0,
    )
    ml_poll_interval_s: float = _setting(
        30.0,
        "ML_POLL_INTERVAL_S",
        "ML gate",
        "Seconds between checks of the registry's production model, the fallback to the "
        "model_promoted notification (and its only source while that connection is down).",
        gt=0,
    )
    ml_shadow_enabled: bool = _setting(
        True,
        "ML_SHADOW_ENABLED",
        "ML gate",
        "Serve the newest candidate model in shadow beside production: it predicts every row, its "
        "predictions are stored for comparison, it never trades.",
    )
    max_open_positions: int = _setting(
        5, "MAX_OPEN_POSITIONS", "risk", "Most positions open at once, all symbols together.", ge=0
    )
    max_exposure_usdt: Decimal = _setting(
        Decimal(10000),
        "MAX_EXPOSURE_USDT",
        "risk",
        "Most notional (USDT) of open positions and open entry orders together.",
        ge=0,
    )
    min_order_size_usdt: Decimal = _setting(
        Decimal(5),
        "MIN_ORDER_SIZE_USDT",
        "risk",
        "An entry whose sized notional (USDT) is below this is not sent.",
        ge=0,
    )
    max_symbol_exposure_usdt: Decimal = _setting(
        Decimal(2500),
        "MAX_SYMBOL_EXPOSURE_USDT",
        "risk",
        "Most notional (USDT) open in any one symbol, unless SYMBOL_EXPOSURE_LIMITS names the symbol.",
        ge=0,
    )
    symbol_exposure_limits: str = _setting(
        "",
        "SYMBOL_EXPOSURE_LIMITS",
        "risk",
        "Per-symbol notional limits overriding MAX_SYMBOL_EXPOSURE_USDT, e.g. BTCUSDT:5000,SOLUSDT:1000 "
        "(0 forbids entries in that symbol).",
    )
    leverage: Decimal = _setting(
        Decimal(1),
        "LEVERAGE",
        "risk",
        "Leverage of the positions: an entry needs notional / LEVERAGE of available balance as margin.",
        ge=1,
        le=100,
    )
    risk_per_trade_pct: Decimal = _setting(
        Decimal(1),
        "RISK_PER_TRADE_PCT",
        "risk",
        "Position sizing: an entry is sized so that its stop-loss loses this percentage of equity.",
        gt=0,
        le=100,
    )
    default_stop_loss_pct: Decimal = _setting(
        Decimal("0.5"),
        "DEFAULT_STOP_LOSS_PCT",
        "risk",
        "Stop-loss distance (percent of the entry price) placed when a strategy names none: no entry "
        "is sent without a protective stop.",
        gt=0,
        le=50,
    )
    daily_loss_limit_usdt: Decimal = _setting(
        Decimal(200),
        "DAILY_LOSS_LIMIT_USDT",
        "risk",
        "Realised plus unrealised loss (USDT, after fees) since 00:00 UTC at which new entries halt "
        "until the next UTC day (exits stay allowed).",
        gt=0,
    )
    book_stale_ms: int = _setting(
        3000,
        "BOOK_STALE_MS",
        "risk",
        "A symbol whose newest valid book row is older than this (ms, exchange clock) takes no new entries.",
        gt=0,
    )
    error_burst_count: int = _setting(
        5,
        "ERROR_BURST_COUNT",
        "risk",
        "Rate-limit refusals or venue service errors within ERROR_BURST_WINDOW_S that halt new entries...",
        ge=1,
    )
    error_burst_window_s: float = _setting(
        60.0,
        "ERROR_BURST_WINDOW_S",
        "risk",
        "...until this many seconds pass with fewer of them.",
        gt=0,
    )

    # ---- analysis and strategies (issue 12; docs/strategies.md) ----
    enabled_strategies: str = _setting(
        ",".join(STRATEGY_NAMES),
        "ENABLED_STRATEGIES",
        "strategies",
        "Comma-separated strategies that vote at start: imbalance, momentum, sar_wave, supertrend, "
        "volume_profile (each can be enabled or disabled at run time).",
    )
    consensus_mode: ConsensusMode = _setting(
        "weighted",
        "CONSENSUS_MODE",
        "strategies",
        "How the strategies' votes combine: majority (more agreeing than opposing votes), weighted "
        "(STRATEGY_WEIGHTS-weighted confidence against all votes) or unanimous (no opposing vote).",
    )
    min_strategies: int = _setting(
        2, "MIN_STRATEGIES", "strategies", "Strategies that must agree for a consensus signal.", ge=1
    )
    min_consensus_confidence: float = _setting(
        0.6,
        "MIN_CONSENSUS_CONFIDENCE",
        "strategies",
        "A consensus below this confidence sends no signal.",
        ge=0,
        le=1,
    )
    strategy_weights: str = _setting(
        "",
        "STRATEGY_WEIGHTS",
        "strategies",
        "Vote weights in weighted consensus, e.g. momentum:1.5,imbalance:0.5 (strategies not named: 1).",
    )
    strategy_atr_period: int = _setting(
        14,
        "STRATEGY_ATR_PERIOD",
        "strategies",
        "ATR period of the momentum, SAR wave and volume profile stops.",
        ge=1,
    )
    taker_fee_bps: float = _setting(
        5.5, "TAKER_FEE_BPS", "strategy costs", "Taker fee per side, in bps of notional (Bybit: 5.5).", ge=0
    )
    maker_fee_bps: float = _setting(
        2.0, "MAKER_FEE_BPS", "strategy costs", "Maker fee per side, in bps of notional (Bybit: 2).", ge=0
    )
    min_expected_edge_bps: float = _setting(
        0.0,
        "MIN_EXPECTED_EDGE_BPS",
        "strategy costs",
        "A signal is sent only if its expected edge after fees and spread (bps) is at least this.",
    )
    edge_prior_signals: int = _setting(
        20,
        "EDGE_PRIOR_SIGNALS",
        "strategy costs",
        "Weight, in signals, of the model estimate of a strategy's edge against its measured signal "
        "outcomes: after this many outcomes the two count equally.",
        ge=0,
    )
    imbalance_buy_threshold: float = _setting(
        0.75,
        "IMBALANCE_BUY_THRESHOLD",
        "strategy: order-book imbalance",
        "Bid share of the book's size (0.0-1.0) at or above which the imbalance strategy buys.",
        ge=0,
        le=1,
    )
    imbalance_sell_threshold: float = _setting(
        0.25,
        "IMBALANCE_SELL_THRESHOLD",
        "strategy: order-book imbalance",
        "Bid share at or below which it sells.",
        ge=0,
        le=1,
    )
    min_cluster_volume: float = _setting(
        10000.0,
        "MIN_CLUSTER_VOLUME",
        "strategy: order-book imbalance",
        "Notional (USDT) from which a book level counts as a cluster (the analyzer's clusters; the "
        "imbalance strategy wants more of it on its own side).",
        ge=0,
    )
    imbalance_depth: int = _setting(
        5,
        "IMBALANCE_DEPTH",
        "strategy: order-book imbalance",
        "Levels per side the imbalance strategy reads: 1, 5, 10, 20 or 50.",
    )
    imbalance_take_profit_bps: float = _setting(
        15.0,
        "IMBALANCE_TAKE_PROFIT_BPS",
        "strategy: order-book imbalance",
        "Take-profit distance, bps.",
        gt=0,
    )
    imbalance_stop_loss_bps: float = _setting(
        10.0, "IMBALANCE_STOP_LOSS_BPS", "strategy: order-book imbalance", "Stop-loss distance, bps.", gt=0
    )
    imbalance_max_hold_s: float = _setting(
        60.0,
        "IMBALANCE_MAX_HOLD_S",
        "strategy: order-book imbalance",
        "Seconds after which its position is closed, and the horizon its signals are measured over.",
        gt=0,
    )
    imbalance_entry_style: EntryStyleName = _setting(
        "maker",
        "IMBALANCE_ENTRY_STYLE",
        "strategy: order-book imbalance",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    momentum_roc_period: int = _setting(
        10, "MOMENTUM_ROC_PERIOD", "strategy: momentum", "Candles of the rate of change.", ge=1
    )
    momentum_roc_threshold_pct: float = _setting(
        0.15,
        "MOMENTUM_ROC_THRESHOLD_PCT",
        "strategy: momentum",
        "Rate of change (percent over MOMENTUM_ROC_PERIOD candles) from which momentum trades.",
        gt=0,
    )
    momentum_rsi_period: int = _setting(
        14, "MOMENTUM_RSI_PERIOD", "strategy: momentum", "Candles of the RSI (Wilder's).", ge=2
    )
    momentum_rsi_overbought: float = _setting(
        70.0,
        "MOMENTUM_RSI_OVERBOUGHT",
        "strategy: momentum",
        "No buying at or above this RSI...",
        ge=0,
        le=100,
    )
    momentum_rsi_oversold: float = _setting(
        30.0,
        "MOMENTUM_RSI_OVERSOLD",
        "strategy: momentum",
        "...and no selling at or below this.",
        ge=0,
        le=100,
    )
    momentum_volume_period: int = _setting(
        20, "MOMENTUM_VOLUME_PERIOD", "strategy: momentum", "Candles of the average volume.", ge=1
    )
    momentum_volume_mult: float = _setting(
        1.2,
        "MOMENTUM_VOLUME_MULT",
        "strategy: momentum",
        "Volume confirmation: the last candle's volume must reach this multiple of the average.",
        ge=0,
    )
    momentum_stop_atr: float = _setting(
        1.5, "MOMENTUM_STOP_ATR", "strategy: momentum", "Stop-loss distance in ATRs.", gt=0
    )
    momentum_take_profit_atr: float = _setting(
        3.0, "MOMENTUM_TAKE_PROFIT_ATR", "strategy: momentum", "Take-profit distance in ATRs.", gt=0
    )
    momentum_max_hold_s: float = _setting(
        1800.0, "MOMENTUM_MAX_HOLD_S", "strategy: momentum", "Longest hold and signal horizon, s.", gt=0
    )
    momentum_entry_style: EntryStyleName = _setting(
        "taker",
        "MOMENTUM_ENTRY_STYLE",
        "strategy: momentum",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    sar_acceleration: float = _setting(
        0.02, "SAR_ACCELERATION", "strategy: SAR wave", "Parabolic SAR acceleration step.", gt=0
    )
    sar_max_acceleration: float = _setting(
        0.2, "SAR_MAX_ACCELERATION", "strategy: SAR wave", "Parabolic SAR maximum acceleration.", gt=0
    )
    sar_adx_period: int = _setting(
        14, "SAR_ADX_PERIOD", "strategy: SAR wave", "Candles of the ADX trend-strength filter.", ge=2
    )
    sar_adx_threshold: float = _setting(
        25.0,
        "SAR_ADX_THRESHOLD",
        "strategy: SAR wave",
        "ADX from which the trend counts as strong enough to trade.",
        ge=0,
        le=100,
    )
    sar_swing_order: int = _setting(
        3,
        "SAR_SWING_ORDER",
        "strategy: SAR wave",
        "A swing high (low) is the highest high (lowest low) of this many candles on each side.",
        ge=1,
    )
    sar_fib_min: float = _setting(
        0.382,
        "SAR_FIB_MIN",
        "strategy: SAR wave",
        "Entries lie between this Fibonacci retracement of the last wave...",
        gt=0,
        lt=1,
    )
    sar_fib_max: float = _setting(0.618, "SAR_FIB_MAX", "strategy: SAR wave", "...and this one.", gt=0, lt=1)
    sar_min_wave_atr: float = _setting(
        2.0, "SAR_MIN_WAVE_ATR", "strategy: SAR wave", "Smallest wave traded, in ATRs.", ge=0
    )
    sar_max_hold_s: float = _setting(
        3600.0, "SAR_MAX_HOLD_S", "strategy: SAR wave", "Longest hold and signal horizon, s.", gt=0
    )
    sar_entry_style: EntryStyleName = _setting(
        "maker",
        "SAR_ENTRY_STYLE",
        "strategy: SAR wave",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    supertrend_atr_period: int = _setting(
        10, "SUPERTREND_ATR_PERIOD", "strategy: SuperTrend", "ATR period of the bands.", ge=1
    )
    supertrend_multiplier: float = _setting(
        3.0, "SUPERTREND_MULTIPLIER", "strategy: SuperTrend", "Band distance in ATRs.", gt=0
    )
    supertrend_signal_bars: int = _setting(
        3,
        "SUPERTREND_SIGNAL_BARS",
        "strategy: SuperTrend",
        "A trend flip is traded for this many candles after it.",
        ge=1,
    )
    supertrend_volume_mult: float = _setting(
        1.0,
        "SUPERTREND_VOLUME_MULT",
        "strategy: SuperTrend",
        "Volume filter: the flip candle's volume must reach this multiple of the 20-candle average.",
        ge=0,
    )
    supertrend_trailing_atr: float = _setting(
        2.0,
        "SUPERTREND_TRAILING_ATR",
        "strategy: SuperTrend",
        "Trailing stop distance from the best close since entry, in ATRs (armed once a trade is one ATR "
        "in profit).",
        gt=0,
    )
    supertrend_take_profit_atr: float = _setting(
        4.0, "SUPERTREND_TAKE_PROFIT_ATR", "strategy: SuperTrend", "Take-profit distance in ATRs.", gt=0
    )
    supertrend_max_hold_s: float = _setting(
        3600.0, "SUPERTREND_MAX_HOLD_S", "strategy: SuperTrend", "Longest hold and signal horizon, s.", gt=0
    )
    supertrend_entry_style: EntryStyleName = _setting(
        "taker",
        "SUPERTREND_ENTRY_STYLE",
        "strategy: SuperTrend",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    volume_profile_lookback: int = _setting(
        120, "VOLUME_PROFILE_LOOKBACK", "strategy: volume profile", "Candles in the profile.", ge=10
    )
    volume_profile_bins: int = _setting(
        40, "VOLUME_PROFILE_BINS", "strategy: volume profile", "Price bins of the profile.", ge=5
    )
    volume_profile_value_area: float = _setting(
        0.70,
        "VOLUME_PROFILE_VALUE_AREA",
        "strategy: volume profile",
        "Share of the volume in the value area around the point of control.",
        gt=0,
        lt=1,
    )
    volume_profile_hvn_mult: float = _setting(
        1.5,
        "VOLUME_PROFILE_HVN_MULT",
        "strategy: volume profile",
        "A bin with at least this multiple of the mean bin volume is a high-volume node...",
        gt=1,
    )
    volume_profile_lvn_mult: float = _setting(
        0.5,
        "VOLUME_PROFILE_LVN_MULT",
        "strategy: volume profile",
        "...and one with at most this multiple a low-volume node.",
        gt=0,
        lt=1,
    )
    volume_profile_breakout_volume_mult: float = _setting(
        1.5,
        "VOLUME_PROFILE_BREAKOUT_VOLUME_MULT",
        "strategy: volume profile",
        "A breakout out of the value area counts when its candle's volume reaches this multiple of the "
        "20-candle average.",
        ge=0,
    )
    volume_profile_stop_atr: float = _setting(
        1.0,
        "VOLUME_PROFILE_STOP_ATR",
        "strategy: volume profile",
        "Stop-loss distance beyond the value-area edge, in ATRs.",
        gt=0,
    )
    volume_profile_max_hold_s: float = _setting(
        1800.0,
        "VOLUME_PROFILE_MAX_HOLD_S",
        "strategy: volume profile",
        "Longest hold and signal horizon, s.",
        gt=0,
    )
    volume_profile_entry_style: EntryStyleName = _setting(
        "maker",
        "VOLUME_PROFILE_ENTRY_STYLE",
        "strategy: volume profile",
        "taker (market order) or maker (PostOnly at the touch).",
    )

    # ---- detection: spoofing, layering, support/resistance (issue 12; docs/detection.md) ----
    detection_enabled: bool = _setting(
        True,
        "DETECTION_ENABLED",
        "detection",
        "Run the spoofing, layering and support/resistance detectors (false: no detection, and no entry "
        "is ever blocked for manipulation).",
    )
    spoofing_min_notional_usdt: float = _setting(
        50_000.0,
        "SPOOFING_MIN_NOTIONAL_USDT",
        "detection",
        "A spoof is a single order of at least this notional (USDT)...",
        gt=0,
    )
    spoofing_min_size_multiple: float = _setting(
        5.0,
        "SPOOFING_MIN_SIZE_MULTIPLE",
        "detection",
        "...and at least this many times the typical level (median size of levels 2-10 of its side)...",
        gt=0,
    )
    spoofing_max_ttl_s: float = _setting(
        10.0,
        "SPOOFING_MAX_TTL_S",
        "detection",
        "...that rested at most this long (seconds) before it left the book...",
        gt=0,
    )
    spoofing_cancel_rate_threshold: float = _setting(
        0.7,
        "SPOOFING_CANCEL_RATE_THRESHOLD",
        "detection",
        "...with at least this share of it cancelled rather than traded (raise to 0.8 against false "
        "positives)...",
        ge=0,
        le=1,
    )
    spoofing_max_distance_ticks: float = _setting(
        8.0,
        "SPOOFING_MAX_DISTANCE_TICKS",
        "detection",
        "...placed at most this many price steps behind the touch (never at it: the touch queue's own growth "
        "is honest liquidity).",
        ge=1,
    )
    spoofing_episode_gap_s: float = _setting(
        15.0,
        "SPOOFING_EPISODE_GAP_S",
        "detection",
        "A spoof placed within this many seconds of the last one on the same side extends that "
        "detection (spoofers repeat) instead of starting a new one.",
        ge=0,
    )
    layering_min_orders: int = _setting(
        3,
        "LAYERING_MIN_ORDERS",
        "detection",
        "Layering: at least this many large orders on one side, near each other, resting together "
        "(raise to 4 against false positives)...",
        ge=2,
    )
    layering_min_order_notional_usdt: float = _setting(
        15_000.0,
        "LAYERING_MIN_ORDER_NOTIONAL_USDT",
        "detection",
        "...each of at least this notional (USDT)...",
        gt=0,
    )
    layering_min_size_multiple: float = _setting(
        2.5,
        "LAYERING_MIN_SIZE_MULTIPLE",
        "detection",
        "...and at least this many times the typical level...",
        gt=0,
    )
    layering_size_tolerance: float = _setting(
        0.15,
        "LAYERING_SIZE_TOLERANCE",
        "detection",
        "...of similar size: each within this fraction of the layer's median size...",
        ge=0,
        le=1,
    )
    layering_max_gap_ticks: int = _setting(
        2,
        "LAYERING_MAX_GAP_TICKS",
        "detection",
        "...neighbouring orders at most this many price steps apart (1: on adjacent ticks; 2 tolerates one "
        "order the book did not show)...",
        ge=1,
    )
    layering_max_placement_s: float = _setting(
        10.0,
        "LAYERING_MAX_PLACEMENT_S",
        "detection",
        "...all placed within this many seconds...",
        gt=0,
    )
    layering_max_ttl_s: float = _setting(
        40.0,
        "LAYERING_MAX_TTL_S",
        "detection",
        "...the layer gone at most this many seconds after its first order was placed...",
        gt=0,
    )
    layering_cancel_window_s: float = _setting(
        1.0,
        "LAYERING_CANCEL_WINDOW_S",
        "detection",
        "...its orders cancelled together, within this many seconds of each other...",
        gt=0,
    )
    layering_cancel_rate_threshold: float = _setting(
        0.5,
        "LAYERING_CANCEL_RATE_THRESHOLD",
        "detection",
        "...and at least this share of the layer's volume cancelled rather than traded (a layerer pulls the "
        "rest the moment the market reaches one of its orders)...",
        ge=0,
        le=1,
    )
    layering_max_distance_ticks: float = _setting(
        8.0,
        "LAYERING_MAX_DISTANCE_TICKS",
        "detection",
        "...the nearest of them placed at most this many price steps behind the touch (the rest may lie "
        "deeper, within the 40 levels the tracker follows).",
        ge=1,
    )
    detection_settle_ms: int = _setting(
        500,
        "DETECTION_SETTLE_MS",
        "detection",
        "How long after a large order left the book its trades may still arrive (trades and book pushes "
        "are separate streams): it is judged only then (ms).",
        ge=0,
    )
    manipulation_block_s: float = _setting(
        120.0,
        "MANIPULATION_BLOCK_S",
        "detection",
        "New entries on a symbol stay blocked for this many seconds after the last evidence of a "
        "detected spoofing or layering episode (exits and protective orders stay allowed).",
        ge=0,
    )
    manipulation_min_confidence: float = _setting(
        0.6,
        "MANIPULATION_MIN_CONFIDENCE",
        "detection",
        "A spoofing or layering detection blocks entries only at this confidence or above.",
        ge=0,
        le=1,
    )
    sr_lookback_candles: int = _setting(
        200,
        "SR_LOOKBACK_CANDLES",
        "detection",
        "Support/resistance: the newest this many closed 1-minute candles are searched for swing points...",
        ge=11,
    )
    sr_swing_window: int = _setting(
        5,
        "SR_SWING_WINDOW",
        "detection",
        "...a swing high (low) is the highest high (lowest low) of this many candles on either side...",
        ge=1,
    )
    sr_cluster_eps_pct: float = _setting(
        0.1,
        "SR_CLUSTER_EPS_PCT",
        "detection",
        "...swings within this percentage of the price of each other form one level (DBSCAN eps)...",
        gt=0,
    )
    sr_min_touches: int = _setting(
        2,
        "SR_MIN_TOUCHES",
        "detection",
        "...a level needs at least this many swings (DBSCAN min_samples)...",
        ge=1,
    )
    sr_max_levels: int = _setting(
        8,
        "SR_MAX_LEVELS",
        "detection",
        "...and the strongest this many levels are kept.",
        ge=1,
    )
    sr_breakout_pct: float = _setting(
        0.05,
        "SR_BREAKOUT_PCT",
        "detection",
        "A breakout: a candle closing this percentage beyond a level's zone...",
        ge=0,
    )
    sr_breakout_volume_multiplier: float = _setting(
        1.5,
        "SR_BREAKOUT_VOLUME_MULTIPLIER",
        "detection",
        "...on at least this multiple of the mean volume of the 20 candles before it (volume validation).",
        ge=0,
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

    # ---- execution (trading_daemon.execution; docs/execution.md) ----
    enable_auto_recovery: bool = _setting(
        True,
        "ENABLE_AUTO_RECOVERY",
        "execution",
        "Reconcile the database with the exchange at start, after every private-stream reconnect and "
        "every RECONCILE_INTERVAL_S, correcting what differs. Off: a pass only reports, and new entries "
        "stay refused while it finds discrepancies.",
    )
    enable_hanging_order_check: bool = _setting(
        True,
        "ENABLE_HANGING_ORDER_CHECK",
        "execution",
        "During reconciliation, cancel orders resting longer than HANGING_ORDER_TIMEOUT_MINUTES.",
    )
    enable_fsm_auto_restore: bool = _setting(
        True,
        "ENABLE_FSM_AUTO_RESTORE",
        "execution",
        "Restore the order and position state machines of live orders and positions from the database "
        "at start.",
    )
    hanging_order_timeout_minutes: float = _setting(
        30,
        "HANGING_ORDER_TIMEOUT_MINUTES",
        "execution",
        "An order still Pending or Placed after this many minutes is hanging.",
        gt=0,
    )
    max_reconciliation_retries: int = _setting(
        3,
        "MAX_RECONCILIATION_RETRIES",
        "execution",
        "Attempts of one reconciliation pass before it is reported failed (entries stay refused and the "
        "next pass comes at RECONCILE_INTERVAL_S).",
        ge=1,
    )
    reconciliation_retry_delay: float = _setting(
        2,
        "RECONCILIATION_RETRY_DELAY",
        "execution",
        "Seconds between the attempts of one reconciliation pass.",
        ge=0,
    )
    detailed_hanging_order_logging: bool = _setting(
        True,
        "DETAILED_HANGING_ORDER_LOGGING",
        "execution",
        "Log every hanging order with the exchange's view of it (else one summary line).",
    )
    reconcile_interval_s: float = _setting(
        60.0,
        "RECONCILE_INTERVAL_S",
        "execution",
        "Seconds between periodic reconciliations of orders, fills, positions and the wallet.",
        gt=0,
    )
    idempotency_ttl_minutes: int = _setting(
        60,
        "IDEMPOTENCY_TTL_MINUTES",
        "execution",
        "How long a submitted intent's result is kept: the same intent within it gets the same result "
        "and no second order.",
        ge=1,
    )
    order_poll_interval_s: float = _setting(
        2.0,
        "ORDER_POLL_INTERVAL_S",
        "execution",
        "While the private stream is down, open orders and executions are polled over REST this often.",
        gt=0,
    )
    post_only_timeout_s: float = _setting(
        15.0,
        "POST_ONLY_TIMEOUT_S",
        "execution",
        "A PostOnly order not filled within this many seconds (or refused for crossing) is cancelled "
        "and re-priced at the touch...",
        gt=0,
    )
    post_only_max_reprices: int = _setting(
        3,
        "POST_ONLY_MAX_REPRICES",
        "execution",
        "...at most this many times; then the intent is left unfilled.",
        ge=0,
    )
    recv_window_margin_ms: int = _setting(
        1000,
        "RECV_WINDOW_MARGIN_MS",
        "execution",
        "Clock uncertainty added to a request's recv window before the exchange's \"no such order\" "
        "counts as final after an unknown outcome (docs/execution.md).",
        ge=0,
    )
    intent_resend_max_age_s: float = _setting(
        10.0,
        "INTENT_RESEND_MAX_AGE_S",
        "execution",
        "An order whose outcome was unknown and that the exchange confirmed it does not have is sent "
        "again (same orderLinkId) only while its intent is younger than this; else it is marked Failed.",
        ge=0,
    )
    account_lock_wait_s: float = _setting(
        0.0,
        "ACCOUNT_LOCK_WAIT_S",
        "execution",
        "A daemon that finds another trading the same account waits this many seconds for its lock, "
        "then exits naming the holder (0: exit at once).",
        ge=0,
    )
    scripted_intent_interval_s: float = _setting(
        0.0,
        "SCRIPTED_INTENT_INTERVAL_S",
        "execution",
        "Demo and tests: a scripted source submits an intent this often (entries, exits, PostOnly "
        "orders in turn). 0: off.",
        ge=0,
    )
    scripted_intent_notional_usdt: float = _setting(
        200.0,
        "SCRIPTED_INTENT_NOTIONAL_USDT",
        "execution",
        "Size of each scripted entry, in USDT.",
        gt=0,
    )

    dagster_home: Path | None = _setting(
        None, "DAGSTER_HOME", "dagster", "The Dagster instance directory. Unset: $VAR_DIR/dagster."
    )

    # ---- orchestration (issue 10; docs/orchestration.md, docs/scaling.md) ----
    dagster_ui_host: str = _setting(
        "127.0.0.1", "DAGSTER_UI_HOST", "dagster", "Interface `depthcharge dagster` serves the Dagster UI on."
    )
    dagster_ui_port: int = _setting(
        3000, "DAGSTER_UI_PORT", "dagster", "Port of the Dagster UI (0: any free port).", ge=0, le=65535
    )
    dagster_partition: PartitionGranularity = _setting(
        "hourly",
        "DAGSTER_PARTITION",
        "dagster",
        "Time partitions of the market-data assets: hourly or daily (each crossed with the TRADING_PAIRS "
        "symbols). Changing it starts a new partition history: materialise again.",
    )
    dagster_partition_start: str = _setting(
        "2026-01-01",
        "DAGSTER_PARTITION_START",
        "dagster",
        "First day (YYYY-MM-DD, UTC) of the time partitions.",
    )
    partition_close_grace_s: int = _setting(
        120,
        "PARTITION_CLOSE_GRACE_S",
        "dagster",
        "Seconds after a partition's end before it is exported, so the recorder's last batch is stored; "
        "the automation runs that many minutes (rounded up, plus one) after each close.",
        ge=0,
        le=3000,
    )
    dagster_executor: DagsterExecutorName = _setting(
        "multiprocess",
        "DAGSTER_EXECUTOR",
        "dagster",
        "How runs execute their steps: multiprocess (a process per step on this machine), celery (on "
        "Celery workers, `depthcharge dagster worker`) or in_process.",
    )
    celery_broker_url: str = _setting(
        "redis://127.0.0.1:6379/0",
        "CELERY_BROKER_URL",
        "dagster",
        "Broker of the Celery executor: redis://host:6379/0 or amqp://user:password@host:5672//.",
    )
    celery_result_backend: str | None = _setting(
        None,
        "CELERY_RESULT_BACKEND",
        "dagster",
        "Result backend of the Celery executor. Unset: the broker itself for Redis, rpc:// for RabbitMQ.",
    )
    lake_dir: Path | None = _setting(
        None, "LAKE_DIR", "dagster", "The Parquet lake the assets write. Unset: $VAR_DIR/lake."
    )
    reports_dir: Path | None = _setting(
        None, "REPORTS_DIR", "dagster", "Drift reports and plots (HTML, JSON, PNG). Unset: $VAR_DIR/reports."
    )
    models_root: Path | None = _setting(
        None, "MODELS_DIR", "dagster", "The model registry's files. Unset: $VAR_DIR/models."
    )
    training_window_partitions: int = _setting(
        24,
        "TRAINING_WINDOW_PARTITIONS",
        "dagster",
        "Time partitions (the newest with labelled features) a retraining reads: 24 hourly = a day.",
        ge=1,
    )
    training_profile: TrainingProfile = _setting(
        "quick",
        "TRAINING_PROFILE",
        "dagster",
        "Model size of scheduled and drift retraining: quick (narrow network, CPU-friendly) or full.",
    )
    training_epochs: int = _setting(
        12,
        "TRAINING_EPOCHS",
        "dagster",
        "Most epochs of a retraining (early stopping may end it sooner).",
        ge=1,
    )
    retrain_drift_severity: RetrainSeverity = _setting(
        "high",
        "RETRAIN_DRIFT_SEVERITY",
        "dagster",
        "A drift report of this severity or worse launches a retraining (low, medium or high).",
    )
    retrain_schedule_cron: str = _setting(
        "30 2 * * *",
        "RETRAIN_SCHEDULE_CRON",
        "dagster",
        "Cron (UTC) of the nightly retraining job.",
    )
    label_coverage_min: float = _setting(
        0.9,
        "LABEL_COVERAGE_MIN",
        "dagster",
        "Least share of a partition's raw rows that must carry labels (blocking check).",
        ge=0,
        le=1,
    )
    class_share_min: float = _setting(
        0.02,
        "CLASS_SHARE_MIN",
        "dagster",
        "Least share of each direction class at every horizon in a training window (blocking check).",
        ge=0,
        lt=1,
    )
    class_share_max: float = _setting(
        0.9,
        "CLASS_SHARE_MAX",
        "dagster",
        "Largest share of any direction class at every horizon in a training window (blocking check).",
        gt=0,
        le=1,
    )
    drift_max_rows: int = _setting(
        2000,
        "DRIFT_MAX_ROWS",
        "dagster",
        "Rows sampled from each side of a drift comparison (evidently renders a plot per feature).",
        ge=30,
    )

    @field_validator("dagster_partition_start")
    @classmethod
    def _partition_start_is_a_date(cls, value: str) -> str:
        from datetime import date

        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"DAGSTER_PARTITION_START must be a date YYYY-MM-DD, got {value!r}") from None
        if len(value) != 10:
            raise ValueError(f"DAGSTER_PARTITION_START must be a date YYYY-MM-DD, got {value!r}")
        return value

    @field_validator("retrain_schedule_cron")
    @classmethod
    def _cron_has_five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"RETRAIN_SCHEDULE_CRON must be a 5-field cron expression, got {value!r}")
        return value

    @model_validator(mode="after")
    def _orchestration_consistent(self) -> Settings:
        if self.class_share_min >= self.class_share_max:
            raise ValueError(
                f"CLASS_SHARE_MIN ({self.class_share_min}) must be below CLASS_SHARE_MAX ({self.class_share_max})"
            )
        return self

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

    @field_validator("symbol_exposure_limits")
    @classmethod
    def _symbol_limits_parse(cls, value: str) -> str:
        parse_symbol_limits(value)  # raises naming the bad entry
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

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
        return self

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

    @field_validator("enabled_strategies")
    @classmethod
    def _strategies_known(cls, value: str) -> str:
        return ",".join(parse_strategy_names(value))  # raises naming an unknown strategy

    @field_validator("strategy_weights")
    @classmethod
    def _weights_parse(cls, value: str) -> str:
        parse_strategy_weights(value)  # raises naming the bad entry
        return value

    @field_validator("imbalance_depth")
    @classmethod
    def _imbalance_depth_held(cls, value: int) -> int:
        if value not in IMBALANCE_DEPTHS:
            raise ValueError(
                f"IMBALANCE_DEPTH must be one of {IMBALANCE_DEPTHS} (the analyzer's depths), got {value}"
            )
        return value

    @model_validator(mode="after")
    def _strategy_settings_consistent(self) -> Settings:
        _ = self.strategies  # StrategyConfig checks thresholds, Fibonacci bounds and RSI levels, naming them
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
            live_trading_mainnet=self.live_trading_mainnet.strip() == "yes",
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
    def dagster(self) -> DagsterConfig:
        return DagsterConfig(home=self.dagster_home or self.var_dir / "dagster")

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
            label_coverage_min=self.label_coverage_min,
            class_share_min=self.class_share_min,
            class_share_max=self.class_share_max,
            drift_max_rows=self.drift_max_rows,
        )

    @property
    def ml_gate(self) -> MLGateConfig:
        return MLGateConfig(
            max_age_hours=self.model_max_age_hours,
            min_confidence=self.ml_min_confidence,
            weight=self.ml_weight,
            min_validated_confidence=self.ml_min_validated_confidence,
            primary_horizon_s=self.ml_primary_horizon_s,
            inference_threads=self.ml_inference_threads,
            inference_timeout_ms=self.ml_inference_timeout_ms,
            poll_interval_s=self.ml_poll_interval_s,
            shadow_enabled=self.ml_shadow_enabled,
        )

    @property
    def risk(self) -> RiskConfig:
        return RiskConfig(
            max_open_positions=self.max_open_positions,
            max_exposure_usdt=Decimal(self.max_exposure_usdt),
            min_order_size_usdt=Decimal(self.min_order_size_usdt),
            max_symbol_exposure_usdt=Decimal(self.max_symbol_exposure_usdt),
            symbol_exposure_limits=parse_symbol_limits(self.symbol_exposure_limits),
            leverage=Decimal(self.leverage),
            risk_per_trade_pct=Decimal(self.risk_per_trade_pct),
            default_stop_loss_pct=Decimal(self.default_stop_loss_pct),
            daily_loss_limit_usdt=Decimal(self.daily_loss_limit_usdt),
            book_stale_ms=self.book_stale_ms,
            error_burst_count=self.error_burst_count,
            error_burst_window_s=self.error_burst_window_s,
        )

    @property
    def decisions(self) -> DecisionConfig:
        return DecisionConfig(trading_enabled=self.trading_enabled, max_lag_ms=self.decision_max_lag_ms)

    @property
    def analyzer(self) -> AnalyzerConfig:
        return AnalyzerConfig(
            symbols=tuple(self.trading_pairs.split(",")),
            snapshot_interval_ms=self.snapshot_interval_ms,
            min_cluster_volume=self.min_cluster_volume,
        )

    @property
    def strategies(self) -> StrategyConfig:
        atr = self.strategy_atr_period
        return StrategyConfig(
            enabled=parse_strategy_names(self.enabled_strategies),
            consensus_mode=self.consensus_mode,
            min_strategies=self.min_strategies,
            min_consensus_confidence=self.min_consensus_confidence,
            weights=parse_strategy_weights(self.strategy_weights),
            costs=CostConfig(
                taker_fee_bps=self.taker_fee_bps,
                maker_fee_bps=self.maker_fee_bps,
                min_expected_edge_bps=self.min_expected_edge_bps,
                edge_prior_signals=self.edge_prior_signals,
            ),
            imbalance=ImbalanceConfig(
                buy_threshold=self.imbalance_buy_threshold,
                sell_threshold=self.imbalance_sell_threshold,
                min_cluster_volume=self.min_cluster_volume,
                depth=self.imbalance_depth,
                take_profit_bps=self.imbalance_take_profit_bps,
                stop_loss_bps=self.imbalance_stop_loss_bps,
                max_hold_s=self.imbalance_max_hold_s,
                entry_style=EntryStyle(self.imbalance_entry_style),
            ),
            momentum=MomentumConfig(
                roc_period=self.momentum_roc_period,
                roc_threshold_pct=self.momentum_roc_threshold_pct,
                rsi_period=self.momentum_rsi_period,
                rsi_overbought=self.momentum_rsi_overbought,
                rsi_oversold=self.momentum_rsi_oversold,
                volume_period=self.momentum_volume_period,
                volume_mult=self.momentum_volume_mult,
                atr_period=atr,
                stop_atr=self.momentum_stop_atr,
                take_profit_atr=self.momentum_take_profit_atr,
                max_hold_s=self.momentum_max_hold_s,
                entry_style=EntryStyle(self.momentum_entry_style),
            ),
            sar_wave=SarWaveConfig(
                acceleration=self.sar_acceleration,
                max_acceleration=self.sar_max_acceleration,
                adx_period=self.sar_adx_period,
                adx_threshold=self.sar_adx_threshold,
                swing_order=self.sar_swing_order,
                fib_min=self.sar_fib_min,
                fib_max=self.sar_fib_max,
                min_wave_atr=self.sar_min_wave_atr,
                atr_period=atr,
                max_hold_s=self.sar_max_hold_s,
                entry_style=EntryStyle(self.sar_entry_style),
            ),
            supertrend=SuperTrendConfig(
                atr_period=self.supertrend_atr_period,
                multiplier=self.supertrend_multiplier,
                signal_bars=self.supertrend_signal_bars,
                roc_period=self.momentum_roc_period,
                volume_period=self.momentum_volume_period,
                volume_mult=self.supertrend_volume_mult,
                trailing_atr=self.supertrend_trailing_atr,
                take_profit_atr=self.supertrend_take_profit_atr,
                max_hold_s=self.supertrend_max_hold_s,
                entry_style=EntryStyle(self.supertrend_entry_style),
            ),
            volume_profile=VolumeProfileConfig(
                lookback=self.volume_profile_lookback,
                bins=self.volume_profile_bins,
                value_area=self.volume_profile_value_area,
                hvn_mult=self.volume_profile_hvn_mult,
                lvn_mult=self.volume_profile_lvn_mult,
                breakout_volume_mult=self.volume_profile_breakout_volume_mult,
                volume_period=self.momentum_volume_period,
                atr_period=atr,
                stop_atr=self.volume_profile_stop_atr,
                max_hold_s=self.volume_profile_max_hold_s,
                entry_style=EntryStyle(self.volume_profile_entry_style),
            ),
        )

    @property
    def detection(self) -> DetectionConfig:
        return DetectionConfig(
            enabled=self.detection_enabled,
            spoofing_min_notional_usdt=self.spoofing_min_notional_usdt,
            spoofing_min_size_multiple=self.spoofing_min_size_multiple,
            spoofing_max_ttl_s=self.spoofing_max_ttl_s,
            spoofing_cancel_rate_threshold=self.spoofing_cancel_rate_threshold,
            spoofing_max_distance_ticks=self.spoofing_max_distance_ticks,
            spoofing_episode_gap_s=self.spoofing_episode_gap_s,
            layering_min_orders=self.layering_min_orders,
            layering_min_order_notional_usdt=self.layering_min_order_notional_usdt,
            layering_min_size_multiple=self.layering_min_size_multiple,
            layering_size_tolerance=self.layering_size_tolerance,
            layering_max_gap_ticks=self.layering_max_gap_ticks,
            layering_max_placement_s=self.layering_max_placement_s,
            layering_max_ttl_s=self.layering_max_ttl_s,
            layering_cancel_window_s=self.layering_cancel_window_s,
            layering_cancel_rate_threshold=self.layering_cancel_rate_threshold,
            layering_max_distance_ticks=self.layering_max_distance_ticks,
            settle_ms=self.detection_settle_ms,
            manipulation_block_s=self.manipulation_block_s,
            manipulation_min_confidence=self.manipulation_min_confidence,
            sr_lookback_candles=self.sr_lookback_candles,
            sr_swing_window=self.sr_swing_window,
            sr_cluster_eps_pct=self.sr_cluster_eps_pct,
            sr_min_touches=self.sr_min_touches,
            sr_max_levels=self.sr_max_levels,
            sr_breakout_pct=self.sr_breakout_pct,
            sr_breakout_volume_multiplier=self.sr_breakout_volume_multiplier,
        )

    @property
    def models_dir(self) -> Path:
        """Model artifacts and manifests (`<models_dir>/<version>/`): MODELS_DIR, else $VAR_DIR/models."""
        return self.models_root or self.var_dir / "models"

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


def parse_symbol_limits(text: str) -> dict[str, Decimal]:
    """`BTCUSDT:5000,SOLUSDT:1000` as {symbol: USDT limit}; an empty text is no override."""
    limits: dict[str, Decimal] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        symbol, sep, amount = item.partition(":")
        try:
            limit = Decimal(amount.strip()) if sep else None
        except ArithmeticError:
            limit = None
        if not symbol.strip().isalnum() or limit is None or not limit.is_finite() or limit < 0:
            raise ValueError(
                f"SYMBOL_EXPOSURE_LIMITS entry {item!r} must be SYMBOL:USDT with a limit >= 0, "
                "e.g. BTCUSDT:5000"
            )
        limits[symbol.strip().upper()] = limit
    return limits


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
