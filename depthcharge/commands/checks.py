"""The checks behind `depthcharge check`: is this configuration ready to run for real?

Each check is a plain function of the config it needs and returns `Check`s, so it can be tested without
the command line; `run_checks` runs every one of them (a failure never stops the others: the operator
gets the whole list at once) and `check.py` prints them. A result says what is wrong and what to do,
and never carries a secret: `run_checks` scrubs the keys, passwords and the database password out of
every line, since venue and driver messages can echo what they were sent (Bybit's "error sign!" quotes
the signed string, API key included).

The exchange checks speak to the venue with the daemon's own client (`BybitHttpClient`); the two
endpoints the client has no method for (`/v5/user/query-api`, `/v5/account/info`, docs/exchange_protocol.md
§4.14) are described here as `BybitEndpoint`s and sent through the same signed transport.
"""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import msgspec
import psycopg
from alembic.script import ScriptDirectory
from psycopg.conninfo import conninfo_to_dict

from infra.configs import ApiConfig, ExchangeConfig, venue_of
from infra.db import migrate, timescale
from infra.db.connection import Database
from infra.db.errors import StorageError
from infra.settings import Settings
from trading_daemon.api.auth import MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, MIN_SECRET_KEY_BYTES
from trading_daemon.exchange.constants import (
    BUCKET_ACCOUNT,
    CATEGORY,
    DEFAULT_RECV_WINDOW_MS,
    MAX_CLOCK_OFFSET_WARN_MS,
    BybitBreakerGroup,
    BybitEndpoint,
    BybitEndpoints,
    BybitRetCode,
)
from trading_daemon.exchange.errors import (
    BybitAuthError,
    BybitError,
    BybitProtocolError,
)
from trading_daemon.exchange.http import BybitHttpClient, wall_clock_ms
from trading_daemon.exchange.messages import BybitPositionList
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.rest_base import decode_result

Status = Literal["ok", "warn", "FAIL", "skip"]
_RANK: dict[Status, int] = {"ok": 0, "skip": 0, "warn": 1, "FAIL": 2}

GIB = 1 << 30
DISK_FAIL_BYTES = 1 * GIB  # below this the recorder's spool or a day of the lake may not fit
DISK_WARN_BYTES = 5 * GIB
# The venue refuses a request whose timestamp is off by more than the receive window; the daemon signs with
# a measured offset, but a clock that far off drifts out of the window between measurements.
CLOCK_FAIL_MS = DEFAULT_RECV_WINDOW_MS
CLOCK_WARN_MS = MAX_CLOCK_OFFSET_WARN_MS
EXCHANGE_TIMEOUT_S = 5.0
KEY_EXPIRY_WARN_DAYS = 14

QUERY_API = BybitEndpoint(
    "query_api", "GET", "/v5/user/query-api", True, BUCKET_ACCOUNT, BybitBreakerGroup.ACCOUNT, True
)
ACCOUNT_INFO = BybitEndpoint(
    "account_info", "GET", "/v5/account/info", True, BUCKET_ACCOUNT, BybitBreakerGroup.ACCOUNT, True
)

# What a key refused with each retCode most likely means, for the operator.
_AUTH_HINTS: dict[int, str] = {
    BybitRetCode.INVALID_KEY: "the venue does not know BYBIT_API_KEY (testnet and mainnet keys differ: "
    "check EXCHANGE)",
    BybitRetCode.SIGNATURE: "the signature does not match: BYBIT_API_SECRET is not this key's secret",
    BybitRetCode.PERMISSION: "the key lacks a permission this call needs",
    BybitRetCode.AUTH_FAILED: "authentication failed",
    BybitRetCode.IP_NOT_WHITELISTED: "this machine's IP address is not in the key's IP whitelist",
    BybitRetCode.BANNED: "the account is banned",
    BybitRetCode.KEY_EXPIRED: "the key has expired: create a new one",
}


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, how it stands, and what is wrong and what to do."""

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<16} {self.detail}"


def failed(checks: Iterable[Check]) -> bool:
    return any(c.status == "FAIL" for c in checks)


def _worst(name: str, findings: list[tuple[Status, str]], fallback: str) -> Check:
    """Several findings of one check as one line, at the status of the worst."""
    if not findings:
        return Check(name, "ok", fallback)
    status = max((s for s, _ in findings), key=_RANK.__getitem__)
    return Check(name, status, "; ".join(text for _, text in findings))


# ---- the database ----------------------------------------------------------------------------------------


def database_checks(db: Database) -> list[Check]:
    """Reachable, migrated to head (naming the revision it is at), TimescaleDB or plain mode."""
    try:
        with db.connect(dict_rows=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()["server_version"]  # type: ignore[index]
            stored = {}
            if conn.execute("SELECT to_regclass('storage_settings') AS t").fetchone()["t"]:  # type: ignore[index]
                stored = {
                    r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM storage_settings")
                }
            support = timescale.check_support(conn)
        current = migrate.current_revision(db)
    except (StorageError, psycopg.Error) as exc:
        return [
            Check("database", "FAIL", f"{exc}: check DATABASE_URL and that the server is up"),
            Check("migrations", "skip", "the database is unreachable"),
            Check("timescaledb", "skip", "the database is unreachable"),
        ]
    where = "embedded server in $VAR_DIR/pg" if db.source == "embedded" else db.source
    return [
        Check("database", "ok", f"{db.redacted} ({where}), PostgreSQL {version}"),
        migration_check(current),
        timescale_check(stored, support),
    ]


def migration_check(current: str | None) -> Check:
    head = migrate.head_revision()
    if current == head:
        return Check("migrations", "ok", f"at head {head}")
    if current is None:
        return Check(
            "migrations", "FAIL", f"not migrated (no revision, head is {head}): run `depthcharge db migrate`"
        )
    known = {s.revision for s in ScriptDirectory(str(migrate.MIGRATIONS_DIR)).walk_revisions()}
    if current not in known:
        return Check(
            "migrations",
            "FAIL",
            f"at {current}, a revision this checkout does not have (head {head}): a newer version migrated "
            "this database; install that version",
        )
    return Check(
        "migrations",
        "FAIL",
        f"at {current}, behind head {head}: back up, then run `depthcharge db migrate` (docs/operations.md)",
    )


def timescale_check(stored: Mapping[str, object], support: timescale.TimescaleSupport) -> Check:
    """What the migration recorded in storage_settings; before the migration, what the server offers."""
    if stored.get("timescaledb"):
        version = stored.get("timescaledb_version") or "?"
        return Check("timescaledb", "ok", f"TimescaleDB {version}: market data in compressed hypertables")
    plain = "plain PostgreSQL mode (supported: BRIN indexes, retention by the scheduled job)"
    if stored:
        reason = stored.get("timescaledb_reason") or support.reason or "not recorded"
        if support.possible and support.version:
            reason = f"{reason}; timescaledb {support.version} is on the server now, but only a new database gets it"
        return Check("timescaledb", "warn", f"{plain}: {reason}")
    if support.possible:
        return Check(
            "timescaledb", "ok", f"timescaledb {support.version} available: the migration will try it"
        )
    return Check("timescaledb", "warn", f"{plain}: {support.reason}")


def count_users(db: Database) -> int | None:
    """API users in the database: 0 before the migration creates the table, None when unreachable."""
    try:
        with db.connect() as conn:
            if not conn.execute("SELECT to_regclass('users')").fetchone()[0]:  # type: ignore[index]
                return 0
            return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])  # type: ignore[index]
    except (StorageError, psycopg.Error):
        return None


# ---- the exchange ----------------------------------------------------------------------------------------


class _ApiKeyInfo(msgspec.Struct, kw_only=True):
    """The fields of `/v5/user/query-api` the checks read."""

    readOnly: int = 0
    permissions: dict[str, list[str]] = msgspec.field(default_factory=dict)
    ips: list[str] = msgspec.field(default_factory=list)
    deadlineDay: int = -1
    expiredAt: str = ""


class _AccountInfo(msgspec.Struct, kw_only=True):
    """The fields of `/v5/account/info` the checks read."""

    unifiedMarginStatus: int = 0
    marginMode: str = ""


async def exchange_checks(
    config: ExchangeConfig,
    *,
    trading_enabled: bool,
    symbol: str,
    clock: Callable[[], int] = wall_clock_ms,
    timeout_s: float = EXCHANGE_TIMEOUT_S,
) -> list[Check]:
    """Reachable (server time), clock skew, the keys (a signed call), their permissions, the account type
    and the position mode. Without keys, only the first two."""
    key = config.api_key.get_secret_value() if config.api_key else None
    secret = config.api_secret.get_secret_value() if config.api_secret else None
    http = BybitHttpClient(
        config.urls.rest,
        api_key=key,
        api_secret=secret,
        timeout_s=timeout_s,
        max_attempts=2,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
        clock=clock,
    )
    names = ("api keys", "key permissions", "account type", "position mode")
    try:
        reached, skew = await _reach(http, config)
        if skew is None:
            return [reached, Check("clock skew", "skip", "the exchange is unreachable")] + [
                Check(name, "skip", "the exchange is unreachable") for name in names
            ]
        if not (key and secret):
            why = "BYBIT_API_KEY and BYBIT_API_SECRET are unset"
            keys = (
                Check("api keys", "FAIL", f"TRADING_ENABLED=true but {why}: the daemon would only record")
                if trading_enabled
                else Check("api keys", "skip", f"{why}: the daemon records market data only")
            )
            return [reached, skew, keys] + [Check(n, "skip", "no API keys") for n in names[1:]]
        keys = await _keys(http, config)
        if keys.status == "FAIL":
            return [reached, skew, keys] + [Check(n, "skip", "the keys were refused") for n in names[1:]]
        return [
            reached,
            skew,
            keys,
            await _permissions(http, config, trading_enabled),
            await _account_type(http),
            await _position_mode(http, symbol),
        ]
    finally:
        await http.close()


async def _reach(http: BybitHttpClient, config: ExchangeConfig) -> tuple[Check, Check | None]:
    """The server time: the venue answers, and how far this machine's clock is from it."""
    url = config.urls.rest
    before = http.clock()
    try:
        response = await http.request(BybitEndpoints.SERVER_TIME)
    except BybitError as exc:
        if isinstance(exc, BybitProtocolError):
            todo = "it is not a Bybit v5 venue: check BYBIT_REST_URL"
        elif venue_of(url) == "local":
            todo = "start the paper exchange (`depthcharge exchange-sim`) or check BYBIT_REST_URL"
        else:
            todo = "check EXCHANGE / BYBIT_REST_URL and this machine's network"
        return Check("exchange", "FAIL", f"{url} did not answer the server time ({exc}): {todo}"), None
    after = http.clock()
    # Sign what follows with the venue's time, as the daemon does after its own measurement.
    offset = response.time_ms - (before + after) // 2
    http.time_offset_ms = offset
    reached = Check("exchange", "ok", f"{url} ({config.name}) answered in {after - before} ms")
    return reached, skew_check(offset, round_trip_ms=after - before)


def skew_check(offset_ms: int, *, round_trip_ms: int) -> Check:
    """FAIL beyond the receive window, warn beyond the daemon's own alert threshold."""
    text = f"this clock is {abs(offset_ms)} ms {'behind' if offset_ms > 0 else 'ahead of'} the exchange"
    text += f" (±{round_trip_ms // 2 + 1} ms)"
    todo = "synchronise the clock (NTP: `timedatectl set-ntp true`, chrony)"
    if abs(offset_ms) > CLOCK_FAIL_MS:
        return Check("clock skew", "FAIL", f"{text}, beyond the {CLOCK_FAIL_MS} ms receive window: {todo}")
    if abs(offset_ms) > CLOCK_WARN_MS:
        return Check("clock skew", "warn", f"{text}, above {CLOCK_WARN_MS} ms: {todo}")
    return Check("clock skew", "ok", text)


async def _keys(http: BybitHttpClient, config: ExchangeConfig) -> Check:
    """A signed call: the unified account's wallet balance."""
    try:
        wallet = await BybitRestClient(http).get_wallet_balance()
    except BybitAuthError as exc:
        hint = _AUTH_HINTS.get(exc.ret_code or 0, "check both values")
        return Check(
            "api keys",
            "FAIL",
            f"BYBIT_API_KEY / BYBIT_API_SECRET refused by {config.urls.rest} ({exc}): {hint}",
        )
    except BybitError as exc:
        return Check("api keys", "FAIL", f"the signed wallet-balance call failed: {exc}")
    usdt = wallet.coins.get("USDT")
    equity = f"USDT equity {usdt.equity:,.2f}" if usdt is not None else f"equity {wallet.total_equity:,.2f}"
    return Check("api keys", "ok", f"accepted: the signed wallet-balance call answered ({equity})")


async def _permissions(http: BybitHttpClient, config: ExchangeConfig, trading_enabled: bool) -> Check:
    try:
        info = decode_result((await http.request(QUERY_API)).result, _ApiKeyInfo)
    except (BybitProtocolError, BybitAuthError) as exc:
        return Check("key permissions", "skip", f"the venue does not tell ({exc})")
    except BybitError as exc:
        return Check("key permissions", "warn", f"the key information could not be read: {exc}")
    contracts = set(info.permissions.get("ContractTrade", []))
    missing = sorted({"Order", "Position"} - contracts)
    findings: list[tuple[Status, str]] = []
    if info.readOnly:
        findings.append(
            ("FAIL", "the key is read-only: trading needs a read-write key")
            if trading_enabled
            else ("ok", "read-only key: enough to record, not to trade")
        )
    elif missing:
        findings.append(
            (
                "FAIL" if trading_enabled else "warn",
                f"the key lacks Contracts permission {', '.join(missing)}: grant Contract - Orders and "
                "Positions on the venue's API page",
            )
        )
    if "Withdraw" in info.permissions.get("Wallet", []):
        findings.append(
            ("warn", "the key may withdraw funds, which the daemon never needs: use a key without it")
        )
    if venue_of(config.urls.rest) == "mainnet" and (not info.ips or "*" in info.ips):
        findings.append(("warn", "no IP whitelist: bind the mainnet key to this server's address"))
    if 0 <= info.deadlineDay <= KEY_EXPIRY_WARN_DAYS:
        findings.append(("warn", f"the key expires in {info.deadlineDay} days ({info.expiredAt}): renew it"))
    ips = "any IP" if not info.ips or "*" in info.ips else f"{len(info.ips)} whitelisted IP(s)"
    readable = "read-only" if info.readOnly else "read-write"
    return _worst(
        "key permissions", findings, f"{readable}, Contracts: {', '.join(sorted(contracts))}; {ips}"
    )


async def _account_type(http: BybitHttpClient) -> Check:
    """The daemon trades a Unified Trading Account in cross margin (docs/exchange_protocol.md §4.12)."""
    try:
        info = decode_result((await http.request(ACCOUNT_INFO)).result, _AccountInfo)
    except (BybitProtocolError, BybitAuthError) as exc:
        return Check("account type", "skip", f"the venue does not tell ({exc})")
    except BybitError as exc:
        return Check("account type", "warn", f"the account information could not be read: {exc}")
    if info.unifiedMarginStatus == 1:
        return Check(
            "account type",
            "FAIL",
            "a classic account (unifiedMarginStatus 1): the daemon trades a Unified Trading Account; upgrade it "
            "on the venue",
        )
    if info.marginMode != "REGULAR_MARGIN":
        return Check(
            "account type",
            "warn",
            f"margin mode {info.marginMode or '?'}: the daemon sizes against the account-wide available "
            "balance of cross margin; switch the account to cross margin (REGULAR_MARGIN)",
        )
    return Check("account type", "ok", f"unified account (status {info.unifiedMarginStatus}), cross margin")


async def _position_mode(http: BybitHttpClient, symbol: str) -> Check:
    """One-way mode shows as positionIdx 0; hedge mode lists a position per side (1 and 2)."""
    params = {"category": CATEGORY, "symbol": symbol}
    try:
        rows = decode_result(
            (await http.request(BybitEndpoints.POSITIONS, params)).result, BybitPositionList
        ).list
    except BybitError as exc:
        return Check("position mode", "skip", f"the position of {symbol} could not be read: {exc}")
    indexes = sorted({row.positionIdx for row in rows})
    if not indexes:
        return Check("position mode", "skip", f"the venue listed no position of {symbol}, so it cannot tell")
    if indexes != [0]:
        return Check(
            "position mode",
            "FAIL",
            f"hedge mode on {symbol} (positionIdx {indexes}): the daemon trades one-way mode; switch the USDT "
            "contracts to one-way (venue settings, or POST /v5/position/switch-mode mode=0) with no position open",
        )
    return Check("position mode", "ok", f"one-way (positionIdx 0 on {symbol})")


def venue_check(config: ExchangeConfig, *, trading_enabled: bool) -> Check:
    """Orders to Bybit mainnet need LIVE_TRADING_MAINNET=yes, whether EXCHANGE or the URL overrides say
    mainnet; URLs pointing at different venues are a mistake too."""
    urls = {
        "BYBIT_REST_URL": config.urls.rest,
        "BYBIT_WS_PUBLIC_URL": config.urls.ws_public,
        "BYBIT_WS_PRIVATE_URL": config.urls.ws_private,
    }
    kinds = {name: venue_of(url) for name, url in urls.items()}
    on_mainnet = [name for name, kind in kinds.items() if kind == "mainnet"]
    if config.name == "mainnet":
        on_mainnet.insert(0, "EXCHANGE")
    if on_mainnet and trading_enabled and not config.live_trading_mainnet:
        return Check(
            "venue",
            "FAIL",
            f"{' and '.join(on_mainnet)} {'say' if len(on_mainnet) > 1 else 'says'} Bybit mainnet and "
            "TRADING_ENABLED=true, but LIVE_TRADING_MAINNET "
            "is not `yes`: set it to trade real money, or TRADING_ENABLED=false",
        )
    if len(set(kinds.values())) > 1:
        mixed = ", ".join(f"{name} {kind}" for name, kind in kinds.items())
        return Check("venue", "warn", f"the URLs point at different venues ({mixed}): make them agree")
    if not on_mainnet:
        return Check("venue", "ok", f"EXCHANGE={config.name}, no mainnet URL: no real money at stake")
    if not trading_enabled:
        return Check("venue", "ok", "Bybit mainnet, TRADING_ENABLED=false: records only, places no order")
    return Check("venue", "ok", "Bybit mainnet with LIVE_TRADING_MAINNET=yes: orders trade real money")


# ---- the API ---------------------------------------------------------------------------------------------


def secret_key_check(api: ApiConfig) -> Check:
    if not api.enabled:
        return Check("secret key", "skip", "API_ENABLED=false")
    if api.secret_key is not None:
        size = len(api.secret_key.get_secret_value().encode())
        if size < MIN_SECRET_KEY_BYTES:
            return Check(
                "secret key",
                "FAIL",
                f"SECRET_KEY is {size} bytes, {MIN_SECRET_KEY_BYTES} or more needed: "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
            )
        return Check("secret key", "ok", f"SECRET_KEY set ({size} bytes)")
    path = api.secret_key_file
    if path.exists():
        if path.stat().st_mode & 0o077:
            return Check("secret key", "warn", f"{path} is readable by others: `chmod 600 {path}`")
        return Check("secret key", "ok", f"SECRET_KEY unset: the key generated earlier in {path}; back it up")
    return Check(
        "secret key",
        "warn",
        f"SECRET_KEY unset: the first start generates one into {path}; set SECRET_KEY, or back that file up "
        "with the database",
    )


def login_check(api: ApiConfig, users: int | None) -> Check:
    """Somebody must be able to log in: users in the database, or APP_PASSWORD to create the first admin."""
    if not api.enabled:
        return Check("logins", "skip", "API_ENABLED=false")
    if users:
        return Check("logins", "ok", f"{users} API user(s) in the database")
    state = "no API user exists" if users == 0 else "the users could not be counted"
    if api.admin_password is None:
        return Check(
            "logins",
            "FAIL",
            f"{state} and APP_PASSWORD is unset: nobody could log in; set APP_PASSWORD "
            f"({MIN_PASSWORD_CHARS} characters or more) and the first start creates {api.admin_username!r}",
        )
    password = api.admin_password.get_secret_value()
    if len(password) < MIN_PASSWORD_CHARS or len(password.encode()) > MAX_PASSWORD_BYTES:
        return Check(
            "logins",
            "FAIL",
            f"APP_PASSWORD has {len(password)} characters: {MIN_PASSWORD_CHARS} or more and at most "
            f"{MAX_PASSWORD_BYTES} bytes, or the daemon refuses to start",
        )
    return Check("logins", "ok", f"{state}: the first start creates {api.admin_username!r} from APP_PASSWORD")


def api_host_check(api: ApiConfig) -> Check:
    if not api.enabled:
        return Check("api host", "skip", "API_ENABLED=false")
    host = api.host
    if host == "localhost":
        return Check("api host", "ok", "API_HOST=localhost: reachable from this machine only")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return Check("api host", "warn", f"API_HOST={host} is a name: make sure it is not a public interface")
    if address.is_loopback:
        return Check("api host", "ok", f"API_HOST={host}: reachable from this machine only")
    if address.is_unspecified:
        return Check(
            "api host",
            "warn",
            f"API_HOST={host} listens on every interface: put a firewall or a TLS reverse proxy in front, or "
            "bind 127.0.0.1",
        )
    if address.is_private:
        return Check("api host", "ok", f"API_HOST={host}, a private address: keep that network closed")
    return Check(
        "api host",
        "warn",
        f"API_HOST={host} is a public address: the API would face the internet; bind 127.0.0.1 behind a "
        "TLS reverse proxy",
    )


# ---- disk space ------------------------------------------------------------------------------------------


def disk_checks(
    dirs: Mapping[str, Path], *, fail_below: int = DISK_FAIL_BYTES, warn_below: int = DISK_WARN_BYTES
) -> list[Check]:
    """Free space per file system holding `dirs` (one line each), and that this user may write there."""
    groups: dict[int, tuple[Path, list[str]]] = {}
    checks: list[Check] = []
    for label, path in dirs.items():
        existing = _nearest_existing(path.absolute())
        if not os.access(existing, os.W_OK):
            checks.append(
                Check(f"disk {label}", "FAIL", f"{path}: {existing} is not writable by {getpass.getuser()}")
            )
        groups.setdefault(existing.stat().st_dev, (existing, []))[1].append(label)
    for existing, labels in groups.values():
        free = shutil.disk_usage(existing).free
        name = f"disk {labels[0]}" if len(labels) == 1 else "disk"
        text = f"{free / GIB:,.1f} GiB free for {', '.join(labels)} ({existing})"
        if free < fail_below:
            checks.append(
                Check(name, "FAIL", f"{text}, under {fail_below / GIB:g} GiB: free space or move them")
            )
        elif free < warn_below:
            checks.append(Check(name, "warn", f"{text}, under {warn_below / GIB:g} GiB"))
        else:
            checks.append(Check(name, "ok", text))
    return checks


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def data_dirs(settings: Settings) -> dict[str, Path]:
    """The directories that grow: the recorder's spool, the lake, models, logs (and the embedded database)."""
    dirs = {
        "spool": settings.spool.dir,
        "lake": settings.orchestration.lake_dir,
        "models": settings.models_dir,
        "logs": settings.logging.dir,
    }
    if settings.database.url is None:
        dirs["database"] = settings.database.pg_dir
    return dirs


# ---- all of them -----------------------------------------------------------------------------------------


def secrets_of(settings: Settings) -> list[str]:
    """Every value that must never be printed."""
    values = [
        s.get_secret_value()
        for s in (
            settings.bybit_api_key,
            settings.bybit_api_secret,
            settings.secret_key,
            settings.app_password,
        )
        if s is not None
    ]
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        try:
            password = conninfo_to_dict(url.replace("postgresql+psycopg://", "postgresql://")).get("password")
        except Exception:  # an unparseable URL is reported by the database check; nothing more to hide
            password = None
        if password:
            values.append(str(password))
    return [v for v in values if len(v) >= 4]


def scrub(checks: Iterable[Check], secrets: Iterable[str]) -> list[Check]:
    """The checks with every secret replaced by ***, longest first (a key before a secret inside it)."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    out = []
    for check in checks:
        detail = check.detail
        for secret in ordered:
            detail = detail.replace(secret, "***")
        out.append(replace(check, detail=detail))
    return out


async def run_checks(
    settings: Settings,
    db: Database | None,
    *,
    db_error: str = "",
    clock: Callable[[], int] = wall_clock_ms,
    timeout_s: float = EXCHANGE_TIMEOUT_S,
) -> list[Check]:
    """Every check, in the order printed. `db` is the opened database, or None with `db_error` saying why
    it could not be opened (the caller owns it: an embedded server must be stopped by whoever started it)."""
    if db is None:
        database = [
            Check("database", "FAIL", f"{db_error}: check DATABASE_URL and that the server is up"),
            Check("migrations", "skip", "the database is unreachable"),
            Check("timescaledb", "skip", "the database is unreachable"),
        ]
        users = None
    else:
        database = await asyncio.to_thread(database_checks, db)
        users = await asyncio.to_thread(count_users, db)
    exchange = await exchange_checks(
        settings.exchange,
        trading_enabled=settings.trading_enabled,
        symbol=settings.feed.symbols[0],
        clock=clock,
        timeout_s=timeout_s,
    )
    api = settings.api
    checks = [
        *database,
        *exchange,
        venue_check(settings.exchange, trading_enabled=settings.trading_enabled),
        secret_key_check(api),
        login_check(api, users),
        *disk_checks(data_dirs(settings)),
        api_host_check(api),
    ]
    return scrub(checks, secrets_of(settings))
