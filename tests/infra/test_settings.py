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
CONFIGS = ("database", "exchange", "startup", "feed", "spool", "logging", "dagster", "models_dir")
# A value other than the default for every setting, valid on its own.
NON_DEFAULT: dict[str, str] = {
    "VAR_DIR": "/srv/dc",
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
