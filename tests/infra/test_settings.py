"""The settings object: variable names, defaults written once, component configs, .env.example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from infra.settings import (
    VENUE_URLS,
    Settings,
    code_defaults,
    load_settings,
    render_env_example,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = (
    "database",
    "exchange",
    "startup",
    "feed",
    "spool",
    "logging",
    "dagster",
    "api",
    "models_dir",
    "analyzer",
    "strategies",
    "execution",
    "ml_gate",
    "risk",
    "decisions",
    "detection",
    "orchestration",
)
# A value other than the default for every setting, valid on its own.
NON_DEFAULT: dict[str, str] = {
    "VAR_DIR": "/srv/dc",
    "API_ENABLED": "false",
    "API_HOST": "0.0.0.0",
    "API_PORT": "8100",
    "SECRET_KEY": "k" * 40,
    "APP_USERNAME": "root",
    "APP_PASSWORD": "a-long-password-1",
    "ACCESS_TOKEN_MINUTES": "5",
    "REFRESH_TOKEN_HOURS": "48",
    "LOGIN_ATTEMPTS_PER_MINUTE": "9",
    "CORS_ORIGINS": "https://dash.example",
    "WS_CLIENT_QUEUE": "64",
    "DASHBOARD_DIR": "/srv/dc/dashboard",
    "DATABASE_URL": "postgresql://u:pw@db.example:5432/dc",
    "DB_CONNECT_TIMEOUT_S": "9",
    "DB_POOL_MIN_SIZE": "2",
    "DB_POOL_MAX_SIZE": "7",
    "MARKET_DATA_RETENTION_DAYS": "90",
    "EXCHANGE": "testnet",
    "BYBIT_REST_URL": "http://127.0.0.1:9999/",
    "BYBIT_WS_PUBLIC_URL": "ws://127.0.0.1:9999/v5/public/linear",
    "BYBIT_WS_PRIVATE_URL": "ws://127.0.0.1:9999/v5/private",
    "BYBIT_API_KEY": "key",
    "BYBIT_API_SECRET": "secret",
    "LIVE_TRADING_MAINNET": "yes",
    "CLOCK_SYNC_INTERVAL_S": "30",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "2",
    "CIRCUIT_BREAKER_COOLDOWN_S": "5",
    "STARTUP_RETRY_MAX_S": "4",
    "TRADING_PAIRS": "XRPUSDT",
    "SNAPSHOT_INTERVAL_MS": "500",
    "ROW_GRACE_MS": "100",
    "CANDLE_BACKFILL_MIN_INTERVAL_S": "1",
    "CANDLE_BACKFILL_MAX_INTERVAL_S": "9",
    "LOG_DIR": "/tmp/dc-logs",
    "LOG_LEVEL": "DEBUG",
    "LOG_RETENTION_DAYS": "3",
    "DAGSTER_HOME": "/tmp/dc-dagster",
    # decisions: the ML gate, risk, the engine
    "TRADING_ENABLED": "true",
    "DECISION_MAX_LAG_MS": "900",
    "MODEL_MAX_AGE_HOURS": "12",
    "ML_MIN_CONFIDENCE": "0.6",
    "ML_WEIGHT": "0.3",
    "ML_MIN_VALIDATED_CONFIDENCE": "0.55",
    "ML_PRIMARY_HORIZON_S": "30",
    "ML_INFERENCE_THREADS": "2",
    "ML_INFERENCE_TIMEOUT_MS": "100",
    "ML_POLL_INTERVAL_S": "10",
    "ML_SHADOW_ENABLED": "false",
    "MAX_OPEN_POSITIONS": "3",
    "MAX_EXPOSURE_USDT": "5000",
    "MIN_ORDER_SIZE_USDT": "10",
    "MAX_SYMBOL_EXPOSURE_USDT": "1000",
    "SYMBOL_EXPOSURE_LIMITS": "BTCUSDT:2000,SOLUSDT:0",
    "LEVERAGE": "3",
    "RISK_PER_TRADE_PCT": "0.5",
    "DEFAULT_STOP_LOSS_PCT": "1",
    "DAILY_LOSS_LIMIT_USDT": "50",
    "BOOK_STALE_MS": "2000",
    "ERROR_BURST_COUNT": "3",
    "ERROR_BURST_WINDOW_S": "30",
    # execution
    "ENABLE_AUTO_RECOVERY": "false",
    "ENABLE_HANGING_ORDER_CHECK": "false",
    "ENABLE_FSM_AUTO_RESTORE": "false",
    "HANGING_ORDER_TIMEOUT_MINUTES": "45",
    "MAX_RECONCILIATION_RETRIES": "5",
    "RECONCILIATION_RETRY_DELAY": "1",
    "DETAILED_HANGING_ORDER_LOGGING": "false",
    "RECONCILE_INTERVAL_S": "30",
    "IDEMPOTENCY_TTL_MINUTES": "120",
    "ORDER_POLL_INTERVAL_S": "1",
    "POST_ONLY_TIMEOUT_S": "5",
    "POST_ONLY_MAX_REPRICES": "1",
    "RECV_WINDOW_MARGIN_MS": "500",
    "INTENT_RESEND_MAX_AGE_S": "3",
    "ACCOUNT_LOCK_WAIT_S": "30",
    "SCRIPTED_INTENT_INTERVAL_S": "2",
    "SCRIPTED_INTENT_NOTIONAL_USDT": "50",
    # analysis and strategies
    "ENABLED_STRATEGIES": "imbalance,momentum",
    "CONSENSUS_MODE": "majority",
    "MIN_STRATEGIES": "3",
    "MIN_CONSENSUS_CONFIDENCE": "0.5",
    "STRATEGY_WEIGHTS": "momentum:1.5",
    "STRATEGY_ATR_PERIOD": "20",
    "TAKER_FEE_BPS": "5.0",
    "MAKER_FEE_BPS": "1.0",
    "MIN_EXPECTED_EDGE_BPS": "1.5",
    "EDGE_PRIOR_SIGNALS": "50",
    "IMBALANCE_BUY_THRESHOLD": "0.8",
    "IMBALANCE_SELL_THRESHOLD": "0.2",
    "MIN_CLUSTER_VOLUME": "25000",
    "IMBALANCE_DEPTH": "10",
    "IMBALANCE_TAKE_PROFIT_BPS": "20",
    "IMBALANCE_STOP_LOSS_BPS": "12",
    "IMBALANCE_MAX_HOLD_S": "30",
    "IMBALANCE_ENTRY_STYLE": "taker",
    "MOMENTUM_ROC_PERIOD": "12",
    "MOMENTUM_ROC_THRESHOLD_PCT": "0.3",
    "MOMENTUM_RSI_PERIOD": "10",
    "MOMENTUM_RSI_OVERBOUGHT": "75",
    "MOMENTUM_RSI_OVERSOLD": "25",
    "MOMENTUM_VOLUME_PERIOD": "30",
    "MOMENTUM_VOLUME_MULT": "1.5",
    "MOMENTUM_STOP_ATR": "2",
    "MOMENTUM_TAKE_PROFIT_ATR": "4",
    "MOMENTUM_MAX_HOLD_S": "900",
    "MOMENTUM_ENTRY_STYLE": "maker",
    "SAR_ACCELERATION": "0.03",
    "SAR_MAX_ACCELERATION": "0.3",
    "SAR_ADX_PERIOD": "20",
    "SAR_ADX_THRESHOLD": "30",
    "SAR_SWING_ORDER": "4",
    "SAR_FIB_MIN": "0.3",
    "SAR_FIB_MAX": "0.7",
    "SAR_MIN_WAVE_ATR": "1.5",
    "SAR_MAX_HOLD_S": "1200",
    "SAR_ENTRY_STYLE": "taker",
    "SUPERTREND_ATR_PERIOD": "14",
    "SUPERTREND_MULTIPLIER": "2.5",
    "SUPERTREND_SIGNAL_BARS": "2",
    "SUPERTREND_VOLUME_MULT": "1.2",
    "SUPERTREND_TRAILING_ATR": "3",
    "SUPERTREND_TAKE_PROFIT_ATR": "5",
    "SUPERTREND_MAX_HOLD_S": "7200",
    "SUPERTREND_ENTRY_STYLE": "maker",
    "VOLUME_PROFILE_LOOKBACK": "90",
    "VOLUME_PROFILE_BINS": "30",
    "VOLUME_PROFILE_VALUE_AREA": "0.68",
    "VOLUME_PROFILE_HVN_MULT": "2",
    "VOLUME_PROFILE_LVN_MULT": "0.3",
    "VOLUME_PROFILE_BREAKOUT_VOLUME_MULT": "2",
    "VOLUME_PROFILE_STOP_ATR": "1.5",
    "VOLUME_PROFILE_MAX_HOLD_S": "900",
    "VOLUME_PROFILE_ENTRY_STYLE": "taker",
    # detection
    "DETECTION_ENABLED": "false",
    "DETECTION_SETTLE_MS": "700",
    "MANIPULATION_BLOCK_S": "60",
    "MANIPULATION_MIN_CONFIDENCE": "0.7",
    "SPOOFING_CANCEL_RATE_THRESHOLD": "0.8",
    "SPOOFING_EPISODE_GAP_S": "20",
    "SPOOFING_MAX_DISTANCE_TICKS": "6",
    "SPOOFING_MAX_TTL_S": "8",
    "SPOOFING_MIN_NOTIONAL_USDT": "40000",
    "SPOOFING_MIN_SIZE_MULTIPLE": "4",
    "LAYERING_CANCEL_RATE_THRESHOLD": "0.6",
    "LAYERING_CANCEL_WINDOW_S": "2",
    "LAYERING_MAX_DISTANCE_TICKS": "6",
    "LAYERING_MAX_GAP_TICKS": "3",
    "LAYERING_MAX_PLACEMENT_S": "8",
    "LAYERING_MAX_TTL_S": "30",
    "LAYERING_MIN_ORDERS": "4",
    "LAYERING_MIN_ORDER_NOTIONAL_USDT": "12000",
    "LAYERING_MIN_SIZE_MULTIPLE": "2",
    "LAYERING_SIZE_TOLERANCE": "0.2",
    "SR_BREAKOUT_PCT": "0.1",
    "SR_BREAKOUT_VOLUME_MULTIPLIER": "2",
    "SR_CLUSTER_EPS_PCT": "0.2",
    "SR_LOOKBACK_CANDLES": "150",
    "SR_MAX_LEVELS": "6",
    "SR_MIN_TOUCHES": "3",
    "SR_SWING_WINDOW": "4",
    # orchestration
    "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
    "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/3",
    "CLASS_SHARE_MAX": "0.8",
    "CLASS_SHARE_MIN": "0.05",
    "DAGSTER_EXECUTOR": "celery",
    "DAGSTER_PARTITION": "daily",
    "DAGSTER_PARTITION_START": "2026-06-01",
    "DAGSTER_UI_HOST": "0.0.0.0",
    "DAGSTER_UI_PORT": "3100",
    "DRIFT_MAX_ROWS": "5000",
    "LABEL_COVERAGE_MIN": "0.8",
    "LAKE_DIR": "/srv/dc/lake",
    "MODELS_DIR": "/srv/dc/models",
    "PARTITION_CLOSE_GRACE_S": "300",
    "REPORTS_DIR": "/srv/dc/reports",
    "RETRAIN_DRIFT_SEVERITY": "medium",
    "RETRAIN_SCHEDULE_CRON": "0 3 * * *",
    "SENSOR_INTERVAL_S": "30",
    "TRAINING_EPOCHS": "20",
    "TRAINING_PROFILE": "full",
    "TRAINING_WINDOW_PARTITIONS": "48",
}


@pytest.fixture(autouse=True)
def _no_settings_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NON_DEFAULT:
        monkeypatch.delenv(name, raising=False)


def _configs(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in CONFIGS}


def test_env_example_is_current() -> None:
    """`.env.example` lists every setting with its description and default (regenerate it when not)."""
    assert (ROOT / ".env.example").read_text() == render_env_example(), (
        "regenerate it: python -m infra.settings > .env.example"
    )


def test_every_setting_has_a_variable_name_and_a_description() -> None:
    for name, info in Settings.model_fields.items():
        assert info.alias and info.alias.isupper(), name
        assert info.description and len(info.description) > 15, name


def test_every_setting_reaches_a_component_config() -> None:
    """Changing any one setting changes what some component receives: no setting is left unread."""
    assert set(NON_DEFAULT) == {str(info.alias) for info in Settings.model_fields.values()}
    component_configs = {
        name
        for name, member in vars(Settings).items()
        if isinstance(member, property)
        and str(member.fget.__annotations__.get("return", "")).endswith("Config")
    }
    assert component_configs <= set(CONFIGS), f"compare these configs too: {component_configs - set(CONFIGS)}"
    defaults = _configs(load_settings(_env_file=None))
    for variable, value in NON_DEFAULT.items():
        changed = _configs(load_settings(_env_file=None, **{variable: value}))
        assert changed != defaults, f"{variable}={value} reaches no component config"


def test_component_configs_carry_the_settings() -> None:
    s = load_settings(_env_file=None, **NON_DEFAULT)
    assert s.database.url == SecretStr("postgresql://u:pw@db.example:5432/dc")
    assert (s.database.pool_min_size, s.database.pool_max_size, s.database.connect_timeout_s) == (2, 7, 9)
    assert s.database.pg_dir == Path("/srv/dc/pg") and s.database.retention_days == 90
    assert s.exchange.name == "testnet"
    assert s.exchange.urls.rest == "http://127.0.0.1:9999"  # trailing slash dropped
    assert s.exchange.urls.ws_private == "ws://127.0.0.1:9999/v5/private"
    assert s.feed.symbols == ("XRPUSDT",) and (s.feed.snapshot_interval_ms, s.feed.row_grace_ms) == (500, 100)
    assert (s.feed.backfill_min_interval_s, s.feed.backfill_max_interval_s) == (1.0, 9.0)
    assert s.startup.retry_max_s == 4.0 and s.spool.dir == Path("/srv/dc/spool")
    assert (s.logging.dir, s.logging.level, s.logging.retention_days) == (Path("/tmp/dc-logs"), "DEBUG", 3)
    assert s.dagster.home == Path("/tmp/dc-dagster") and s.models_dir == Path("/srv/dc/models")


def test_trading_on_mainnet_needs_the_explicit_opt_in() -> None:
    with pytest.raises(ValidationError, match="LIVE_TRADING_MAINNET=yes"):
        load_settings(_env_file=None, EXCHANGE="mainnet", TRADING_ENABLED=True)
    with pytest.raises(ValidationError, match="LIVE_TRADING_MAINNET must be `yes` or unset, got 'true'"):
        load_settings(_env_file=None, EXCHANGE="mainnet", TRADING_ENABLED=True, LIVE_TRADING_MAINNET="true")
    # Recording mainnet needs no opt-in; trading it with the opt-in is the operator's decision.
    assert not load_settings(
        _env_file=None, EXCHANGE="mainnet", TRADING_ENABLED=False
    ).exchange.live_trading_mainnet
    opted = load_settings(
        _env_file=None, EXCHANGE="mainnet", TRADING_ENABLED=True, LIVE_TRADING_MAINNET="yes"
    )
    assert opted.exchange.live_trading_mainnet and opted.decisions.trading_enabled
    # Testnet and the paper exchange trade without it.
    assert load_settings(_env_file=None, EXCHANGE="testnet", TRADING_ENABLED=True).decisions.trading_enabled
    # ...but not with an override URL on Bybit's mainnet, whatever EXCHANGE says.
    with pytest.raises(ValidationError, match=r"api\.bybit\.com is Bybit mainnet"):
        load_settings(
            _env_file=None, EXCHANGE="testnet", TRADING_ENABLED=True, BYBIT_REST_URL="https://api.bybit.com"
        )


def test_exchange_picks_the_venue_row_and_overrides_replace_one_column() -> None:
    testnet = load_settings(_env_file=None, EXCHANGE="testnet").exchange.urls
    assert testnet == VENUE_URLS["testnet"] and testnet.rest == "https://api-testnet.bybit.com"
    custom = load_settings(_env_file=None, EXCHANGE="sim", BYBIT_REST_URL="http://127.0.0.1:9999/").exchange
    assert custom.urls.rest == "http://127.0.0.1:9999"
    assert custom.urls.ws_private == VENUE_URLS["sim"].ws_private


def test_the_environment_wins_over_the_defaults_and_overrides_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADING_PAIRS", "ETHUSDT, BTCUSDT")
    assert load_settings(_env_file=None).feed.symbols == ("ETHUSDT", "BTCUSDT")
    assert load_settings(_env_file=None, TRADING_PAIRS="SOLUSDT").feed.symbols == ("SOLUSDT",)
    # The code's defaults ignore the environment: the offline recorder and tests build components from them.
    assert code_defaults().feed.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert code_defaults().feed == load_settings(_env_file=None, TRADING_PAIRS="BTCUSDT,ETHUSDT,SOLUSDT").feed


def test_empty_values_mean_unset() -> None:
    s = load_settings(_env_file=None, BYBIT_API_KEY="", BYBIT_API_SECRET=" ", DATABASE_URL="")
    assert (s.exchange.api_key, s.exchange.api_secret, s.database.url) == (None, None, None)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"}, r"DB_POOL_MIN_SIZE \(5\) must not exceed"),
        ({"DB_POOL_MAX_SIZE": "0"}, "DB_POOL_MAX_SIZE"),
        ({"TRADING_PAIRS": "btcusdt"}, "TRADING_PAIRS must list USDT perpetual symbols"),
        ({"EXCHANGE": "binance"}, "EXCHANGE"),
        (
            {"CANDLE_BACKFILL_MIN_INTERVAL_S": "10", "CANDLE_BACKFILL_MAX_INTERVAL_S": "5"},
            r"CANDLE_BACKFILL_MIN_INTERVAL_S .* must not exceed",
        ),
    ],
)
def test_bad_values_are_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_settings(_env_file=None, **values)


def test_to_env_reproduces_the_settings() -> None:
    original = load_settings(_env_file=None, **NON_DEFAULT)
    again = load_settings(_env_file=None, **original.to_env())
    assert _configs(again) == _configs(original)
    assert original.to_env()["BYBIT_API_SECRET"] == "secret"


def test_strategy_settings_reach_the_strategy_config_and_bad_ones_are_named() -> None:
    s = load_settings(_env_file=None, **NON_DEFAULT)
    c = s.strategies
    assert c.enabled == ("imbalance", "momentum") and c.consensus_mode == "majority"
    assert c.weight("momentum") == 1.5 and c.weight("imbalance") == 1.0
    assert (c.imbalance.buy_threshold, c.imbalance.depth, c.imbalance.min_cluster_volume) == (0.8, 10, 25_000)
    assert str(c.momentum.entry_style) == "maker" and c.momentum.atr_period == 20
    assert s.analyzer.min_cluster_volume == 25_000 and s.analyzer.snapshot_interval_ms == 500
    for bad, match in (
        ({"ENABLED_STRATEGIES": "momentum,rsi"}, "unknown strategies"),
        ({"STRATEGY_WEIGHTS": "momentum=2"}, "strategy:weight"),
        ({"IMBALANCE_DEPTH": "7"}, "IMBALANCE_DEPTH"),
        ({"IMBALANCE_BUY_THRESHOLD": "0.4"}, "IMBALANCE_BUY_THRESHOLD"),
        ({"SAR_FIB_MIN": "0.7"}, "SAR_FIB_MIN"),
        ({"MOMENTUM_RSI_OVERSOLD": "80"}, "MOMENTUM_RSI_OVERSOLD"),
        ({"IMBALANCE_ENTRY_STYLE": "aggressive"}, "IMBALANCE_ENTRY_STYLE"),
    ):
        with pytest.raises(ValidationError, match=match):
            load_settings(_env_file=None, **bad)
