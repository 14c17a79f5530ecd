"""`depthcharge check` against a real paper exchange and real databases (migrated, empty, half-migrated)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from depthcharge.cli import cli
from depthcharge.commands.checks import (
    Check,
    api_host_check,
    disk_checks,
    login_check,
    run_checks,
    secret_key_check,
    venue_check,
    venue_of,
)
from exchange_sim.config import AccountConfig, SimConfig
from exchange_sim.server.app import SimServer
from infra.db import migrate
from infra.db.connection import Database
from infra.settings import Settings, load_settings
from trading_daemon.exchange.http import wall_clock_ms

API_KEY = "XkCheckApiKey0001"
API_SECRET = "CheckSecretNotReal0123456789abcdefABCDEF"
WRONG_SECRET = "WrongSecretNotReal0123456789abcdefABCDEF"
SECRET_KEY = "k" * 40 + "SecretKeyOfTheApi"
APP_PASSWORD = "AdminPasswordNotReal-42"
SECRETS = (API_KEY, API_SECRET, WRONG_SECRET, SECRET_KEY, APP_PASSWORD)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    config = SimConfig(
        port=0, symbols=("BTCUSDT",), accounts=(AccountConfig(API_KEY, API_SECRET, Decimal(50_000)),)
    )
    server = SimServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _env(sim_url: str, db: Database, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A configuration good for going live on the paper exchange, with `overrides`."""
    return {
        "DATABASE_URL": db.conninfo,
        "EXCHANGE": "sim",
        "BYBIT_REST_URL": sim_url,
        "BYBIT_API_KEY": API_KEY,
        "BYBIT_API_SECRET": API_SECRET,
        "TRADING_ENABLED": "true",
        "TRADING_PAIRS": "BTCUSDT",
        "SECRET_KEY": SECRET_KEY,
        "APP_PASSWORD": APP_PASSWORD,
        "VAR_DIR": str(tmp_path / "var"),
        "API_HOST": "127.0.0.1",
        **overrides,
    }


def _settings(env: dict[str, str]) -> Settings:
    # The daemon's default (tests/conftest.py turns the API off for the daemons other tests start).
    return load_settings(
        _env_file=None, **({"API_ENABLED": "true"} | {k: v for k, v in env.items() if v is not None})
    )


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_a_good_configuration_passes(sim: SimServer, db: Database, tmp_path: Path) -> None:
    checks = await run_checks(_settings(_env(sim.base_url, db, tmp_path)), db)
    found = _by_name(checks)
    assert not [c for c in checks if c.status == "FAIL"], checks
    machine_dependent = {"timescaledb"} | {c.name for c in checks if c.name.startswith("disk")}
    assert all(c.status == "ok" for c in checks if c.name not in machine_dependent), checks
    assert f"at head {migrate.head_revision()}" in found["migrations"].detail
    assert found["timescaledb"].status in ("ok", "warn")  # plain mode is supported: at worst a warning
    assert "read-write" in found["key permissions"].detail and "Order" in found["key permissions"].detail
    assert "one-way" in found["position mode"].detail and "unified" in found["account type"].detail
    assert "no API user exists" in found["logins"].detail
    _assert_no_secret("\n".join(c.line() for c in checks))


async def test_a_wrong_secret_fails_naming_the_keys(sim: SimServer, db: Database, tmp_path: Path) -> None:
    env = _env(sim.base_url, db, tmp_path, BYBIT_API_SECRET=WRONG_SECRET)
    found = _by_name(await run_checks(_settings(env), db))
    keys = found["api keys"]
    assert keys.status == "FAIL" and "BYBIT_API_KEY / BYBIT_API_SECRET" in keys.detail
    assert "retCode 10004" in keys.detail and "BYBIT_API_SECRET is not this key's secret" in keys.detail
    assert found["exchange"].status == "ok"  # the venue itself answers
    assert {found[n].status for n in ("key permissions", "account type", "position mode")} == {"skip"}
    _assert_no_secret("\n".join(c.line() for c in found.values()))  # the venue's text quotes the key


async def test_an_unmigrated_database_fails_naming_the_revision(
    sim: SimServer, empty_db: Database, tmp_path: Path
) -> None:
    settings = _settings(_env(sim.base_url, empty_db, tmp_path))
    migrations = _by_name(await run_checks(settings, empty_db))["migrations"]
    head = migrate.head_revision()
    assert migrations.status == "FAIL"
    assert f"not migrated (no revision, head is {head})" in migrations.detail
    assert "depthcharge db migrate" in migrations.detail
    await asyncio.to_thread(migrate.upgrade, empty_db, "0001")
    migrations = _by_name(await run_checks(settings, empty_db))["migrations"]
    assert migrations.status == "FAIL" and f"at 0001, behind head {head}" in migrations.detail


async def test_an_unreachable_exchange_fails(db: Database, tmp_path: Path) -> None:
    env = _env(f"http://127.0.0.1:{_closed_port()}", db, tmp_path)
    found = _by_name(await run_checks(_settings(env), db, timeout_s=2.0))
    assert found["exchange"].status == "FAIL" and "did not answer the server time" in found["exchange"].detail
    assert "depthcharge exchange-sim" in found["exchange"].detail  # a local URL: the paper exchange is down
    assert all(found[n].status == "skip" for n in ("clock skew", "api keys", "position mode"))
    assert found["database"].status == "ok"  # the other checks still ran


async def test_an_unreachable_database_fails_and_the_rest_still_runs(sim: SimServer, tmp_path: Path) -> None:
    env = _env(
        sim.base_url, Database("postgresql://u:DbPasswordNotReal@127.0.0.1:1/x", "DATABASE_URL"), tmp_path
    )
    # A driver's message may quote what it was given: the database password never reaches the output.
    checks = await run_checks(_settings(env), None, db_error="cannot connect (password DbPasswordNotReal)")
    found = _by_name(checks)
    assert "DbPasswordNotReal" not in "\n".join(c.line() for c in checks)
    assert found["database"].status == "FAIL" and found["migrations"].status == "skip"
    assert found["api keys"].status == "ok"
    assert found["logins"].status == "ok"  # APP_PASSWORD would create the first admin


async def test_clock_skew_against_the_exchange(sim: SimServer, db: Database, tmp_path: Path) -> None:
    settings = _settings(_env(sim.base_url, db, tmp_path))
    behind = _by_name(await run_checks(settings, db, clock=lambda: wall_clock_ms() - 10_000))
    assert behind["clock skew"].status == "FAIL" and "5000 ms receive window" in behind["clock skew"].detail
    assert behind["api keys"].status == "ok"  # signed with the measured offset, as the daemon signs
    ahead = _by_name(await run_checks(settings, db, clock=lambda: wall_clock_ms() + 1_500))
    assert ahead["clock skew"].status == "warn" and "ahead of the exchange" in ahead["clock skew"].detail


async def test_no_app_password_and_no_users_fails(sim: SimServer, db: Database, tmp_path: Path) -> None:
    env = _env(sim.base_url, db, tmp_path)
    del env["APP_PASSWORD"]
    logins = _by_name(await run_checks(_settings(env), db))["logins"]
    assert (
        logins.status == "FAIL" and "nobody could log in" in logins.detail and "APP_PASSWORD" in logins.detail
    )
    api = _settings(env).api
    assert login_check(api, users=2).status == "ok"
    short = _settings({**env, "APP_PASSWORD": "short"}).api
    assert login_check(short, users=0).status == "FAIL"


def test_mainnet_urls_need_the_opt_in(tmp_path: Path) -> None:
    # The settings themselves refuse to trade there without the opt-in; the check says it for a configuration
    # that records today and would trade tomorrow.
    base = {"EXCHANGE": "testnet", "BYBIT_REST_URL": "https://api.bybit.com"}
    with pytest.raises(ValueError, match="Bybit mainnet"):
        _settings({**base, "TRADING_ENABLED": "true"})
    refused = venue_check(_settings(base).exchange, trading_enabled=True)
    assert refused.status == "FAIL" and "BYBIT_REST_URL" in refused.detail
    assert "LIVE_TRADING_MAINNET" in refused.detail
    private_only = {"EXCHANGE": "testnet", "BYBIT_WS_PRIVATE_URL": "wss://stream.bybit.com/v5/private"}
    assert venue_check(_settings(private_only).exchange, trading_enabled=True).status == "FAIL"
    opted_in = _settings({**base, "LIVE_TRADING_MAINNET": "yes", "TRADING_ENABLED": "true"}).exchange
    assert venue_check(opted_in, trading_enabled=True).status in ("ok", "warn")
    assert venue_check(_settings(base).exchange, trading_enabled=False).status in ("ok", "warn")
    mainnet = _settings({"EXCHANGE": "mainnet", "LIVE_TRADING_MAINNET": "yes", "TRADING_ENABLED": "true"})
    assert venue_check(mainnet.exchange, trading_enabled=True).status == "ok"
    assert venue_check(_settings({"EXCHANGE": "testnet"}).exchange, trading_enabled=True).status == "ok"
    assert [venue_of(u) for u in ("http://127.0.0.1:8090", "https://api-testnet.bybit.com",
                                  "https://api-demo.bybit.com", "https://api.bytick.com")] == [
        "local", "testnet", "demo", "mainnet"
    ]  # fmt: skip


def test_api_host_secret_key_and_disk(tmp_path: Path) -> None:
    def api(**env: str) -> Any:
        return _settings({"VAR_DIR": str(tmp_path), **env}).api

    assert api_host_check(api(API_HOST="127.0.0.1")).status == "ok"
    assert api_host_check(api(API_HOST="10.1.2.3")).status == "ok"
    assert api_host_check(api(API_HOST="0.0.0.0")).status == "warn"
    assert api_host_check(api(API_HOST="8.8.8.8")).status == "warn"
    assert secret_key_check(api(SECRET_KEY="too-short")).status == "FAIL"
    unset = secret_key_check(api())
    assert unset.status == "warn" and "generates one" in unset.detail
    key_file = tmp_path / "api" / "secret_key"
    key_file.parent.mkdir()
    key_file.write_text("x" * 48)
    key_file.chmod(0o600)
    assert secret_key_check(api()).status == "ok"
    dirs = {"spool": tmp_path / "spool", "lake": tmp_path / "lake" / "not" / "yet"}
    (line,) = disk_checks(dirs)  # one file system: one line naming both
    assert "spool, lake" in line.detail
    assert disk_checks(dirs, fail_below=1 << 60, warn_below=1 << 61)[0].status == "FAIL"
    assert disk_checks(dirs, fail_below=0, warn_below=1 << 61)[0].status == "warn"


def _invoke(env: dict[str, str], tmp_path: Path) -> Result:
    cwd = os.getcwd()
    os.chdir(tmp_path)  # no .env of the checkout
    try:
        return CliRunner().invoke(cli, ["check"], env={"API_ENABLED": "true", **env})
    finally:
        os.chdir(cwd)


async def test_the_command_exits_by_the_result_and_prints_no_secret(
    sim: SimServer, db: Database, tmp_path: Path
) -> None:
    # In a thread: the command runs its own event loop, while this one serves the paper exchange.
    good = await asyncio.to_thread(_invoke, _env(sim.base_url, db, tmp_path), tmp_path)
    assert good.exit_code == 0, good.output
    assert good.output.splitlines()[0].startswith("ok    database")
    assert "FAIL" not in good.output
    bad = await asyncio.to_thread(
        _invoke, _env(sim.base_url, db, tmp_path, BYBIT_API_SECRET=WRONG_SECRET), tmp_path
    )
    assert bad.exit_code == 1, bad.output
    assert "FAIL  api keys" in bad.output and "1 FAIL" in bad.output.splitlines()[-1]
    _assert_no_secret(good.output + bad.output)


def test_invalid_settings_are_a_fail_line(tmp_path: Path) -> None:
    env = {
        "EXCHANGE": "mainnet",
        "TRADING_ENABLED": "true",
        "LIVE_TRADING_MAINNET": "",
        "APP_PASSWORD": APP_PASSWORD,
    }
    result = _invoke(env, tmp_path)
    assert result.exit_code == 1
    assert result.output.startswith("FAIL  settings") and "LIVE_TRADING_MAINNET=yes" in result.output
    _assert_no_secret(result.output)
