"""The daemon's one failure policy: every exception type it can meet, and what `classify` says about it;
the one backoff's bounds and jitter."""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import psycopg
import psycopg_pool
import pytest
from psycopg import errors as pg
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_fixed
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidMessage, InvalidStatus, InvalidURI
from websockets.http11 import Response

import ml.registry as registry
from infra.db.errors import (
    AuditChainBroken,
    DatabaseUnavailable,
    MigrationError,
    NotFound,
    PromotionConflict,
    VersionConflict,
    storage_error_for,
)
from trading_daemon.errors import Backoff, DaemonError, Decision, Kind, PolicyWait, classify
from trading_daemon.exchange.errors import (
    BybitAuthError,
    BybitIpBannedError,
    BybitNetworkError,
    BybitProtocolError,
    BybitRateLimitError,
    BybitSubscriptionError,
    error_for,
    should_retry,
)
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.lifecycle.startup import StartupError, StartupStopped
from trading_daemon.resilience.circuit_breaker import CircuitBreakerError, CircuitState
from trading_daemon.resilience.rate_limiter import RateLimitExceeded

NOW_MS = 1_760_000_000_000
RETRY, REJECT, FATAL = Kind.RETRY, Kind.REJECT, Kind.FATAL


def _handshake(status: int) -> InvalidStatus:
    return InvalidStatus(Response(status, "", Headers()))


def _db(exc: psycopg.Error) -> Exception:
    """What a repository raises for a driver exception (the one mapping in infra.db.errors)."""
    return storage_error_for(exc)


# (exception, kind, after_s, outcome_unknown); after_s is measured from NOW_MS.
TABLE: list[tuple[BaseException, Kind, float | None, bool]] = [
    # -- the venue, transient: the outcome of a write is unknown after a failure of Bybit itself
    (error_for(10000, "server timeout"), RETRY, None, True),
    (error_for(10016, "server error"), RETRY, None, True),
    (error_for(None, "bad gateway", http_status=502), RETRY, None, True),
    (BybitNetworkError("no reply within 10s (outcome unknown)"), RETRY, None, True),
    # -- the venue, transient and rejected before processing: the error says when to come back
    (error_for(10006, "too many visits", reset_ms=NOW_MS + 2_000), RETRY, 2.05, False),
    (error_for(10006, "too many visits"), RETRY, 1.5, False),  # §8.4: no reset header
    (error_for(None, "too many requests", http_status=429), RETRY, 1.5, False),
    (BybitRateLimitError("local rate limiter: bucket 'rest_trade' exhausted"), RETRY, 1.5, False),
    (error_for(10002, "req_timestamp ... server_timestamp ..."), RETRY, 0.0, False),
    (error_for(None, "ban", http_status=403, banned_until_ms=NOW_MS + 600_000), RETRY, 600.0, False),
    (BybitIpBannedError("IP ban in force; not sending"), RETRY, 600.0, False),
    # -- the venue refused, nothing happened
    (error_for(10001, "params error"), REJECT, None, False),
    (error_for(None, "bad request", http_status=400), REJECT, None, False),
    (error_for(110007, "ab not enough"), REJECT, None, False),
    (error_for(110012, "insufficient available balance"), REJECT, None, False),
    (error_for(110001, "order does not exist"), REJECT, None, False),
    (error_for(110072, "OrderLinkedID is duplicate"), REJECT, None, False),
    (error_for(110094, "order value too low"), REJECT, None, False),
    (BybitSubscriptionError("error:handler not found,topic:kline.1.XRPUSDT"), REJECT, None, False),
    # -- the venue, fatal: credentials, a wrong URL
    (error_for(10003, "API key is invalid."), FATAL, None, False),
    (error_for(10004, "error sign!"), FATAL, None, False),
    (error_for(33004, "api key expired"), FATAL, None, False),
    (error_for(None, "unauthorized", http_status=401), FATAL, None, False),
    (BybitAuthError("websocket auth refused: 'Params Error'"), FATAL, None, False),
    (error_for(None, "<html>not found</html>", http_status=404), FATAL, None, False),
    (error_for(None, "I'm a teapot", http_status=418), FATAL, None, False),
    (BybitProtocolError("reply is not a Bybit envelope: b'<html>'", http_status=200), FATAL, None, False),
    (error_for(10017, "route not found", venue_answered=True), FATAL, None, False),  # the venue's word
    # -- the same unreadable replies from a venue that has answered well before: a CDN/maintenance page
    (BybitProtocolError("b'<html>'", http_status=200, venue_answered=True), RETRY, None, True),
    (error_for(None, "<html>", http_status=404, venue_answered=True), RETRY, None, True),
    # -- resilience
    (CircuitBreakerError("bybit_market", 12.0, CircuitState.OPEN), RETRY, 12.05, False),
    (CircuitBreakerError("bybit_market", 0.0, CircuitState.HALF_OPEN), RETRY, None, False),
    (RateLimitExceeded("rest_trade", 0.7), RETRY, 0.7, False),
    # -- start-up
    (StartupError("credentials", error_for(10003, "x"), "check BYBIT_API_KEY"), FATAL, None, False),
    (StartupStopped("exchange clock"), FATAL, None, False),
    # -- storage, through the one psycopg mapping: the database is down or interrupted the statement
    (_db(psycopg.OperationalError("connection failed: Connection refused")), RETRY, None, False),
    (_db(psycopg.InterfaceError("the connection is lost")), RETRY, None, False),
    (_db(psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec")), RETRY, None, False),
    (_db(pg.AdminShutdown("terminating connection due to administrator command")), RETRY, None, False),
    (_db(pg.CannotConnectNow("the database system is starting up")), RETRY, None, False),
    (_db(pg.TooManyConnections("too many clients already")), RETRY, None, False),
    (_db(pg.SerializationFailure("could not serialize access")), RETRY, None, False),
    (_db(pg.DeadlockDetected("deadlock detected")), RETRY, None, False),
    (_db(pg.QueryCanceled("canceling statement due to statement timeout")), RETRY, None, False),
    (_db(pg.LockNotAvailable("could not obtain lock")), RETRY, None, False),
    (DatabaseUnavailable("cannot connect to DATABASE_URL"), RETRY, None, False),
    # -- storage: the database refuses this data
    (_db(pg.UniqueViolation("duplicate key value")), REJECT, None, False),
    (_db(pg.ForeignKeyViolation("violates foreign key constraint")), REJECT, None, False),
    (_db(pg.CheckViolation("violates check constraint")), REJECT, None, False),
    (_db(pg.NotNullViolation("null value in column")), REJECT, None, False),
    (_db(pg.InvalidTextRepresentation("invalid input value for enum")), REJECT, None, False),
    (_db(pg.NumericValueOutOfRange("smallint out of range")), REJECT, None, False),
    (NotFound("no order 'x'"), REJECT, None, False),
    (VersionConflict("order", "x", 1, 2), REJECT, None, False),
    (PromotionConflict("v1", "v2"), REJECT, None, False),
    # -- storage, fatal: the SQL does not fit the database, or the audit chain was tampered with
    (_db(pg.UndefinedTable('relation "orders" does not exist')), FATAL, None, False),
    (_db(pg.InsufficientPrivilege("audit_log is append-only")), FATAL, None, False),
    (_db(pg.InFailedSqlTransaction("current transaction is aborted")), FATAL, None, False),
    (MigrationError("upgrade to 'head' failed"), FATAL, None, False),
    (AuditChainBroken("2 rows do not hold"), FATAL, None, False),
    # -- the model registry: a version is refused, the model in use stays; a bad argument is a bug
    (registry.ModelNotFound("unknown model version 'v9'"), REJECT, None, False),
    (registry.UnknownModelType("no factory for 'x'"), REJECT, None, False),
    (registry.FeatureSpecMismatch("trained on spec a, not b"), REJECT, None, False),
    (registry.ArtifactMissing("weights.pt is missing"), REJECT, None, False),
    (registry.ArtifactCorrupt("sha256 differs"), REJECT, None, False),
    (registry.RegistryError("production changed 3 times"), REJECT, None, False),
    (registry.InvalidModelInput("reject needs a reason"), FATAL, None, False),
    # -- network and WebSocket exceptions that reach the start-up runner and the reconnect loop
    (TimeoutError(), RETRY, None, True),
    (TimeoutError(), RETRY, None, True),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), RETRY, None, False),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), RETRY, None, False),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), RETRY, None, True),
    (ConnectionError("websocket closed"), RETRY, None, True),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), RETRY, None, True),
    (aiohttp.ServerDisconnectedError(), RETRY, None, True),
    (aiohttp.ClientPayloadError("response payload is not completed"), RETRY, None, True),
    (_handshake(503), RETRY, None, False),
    (_handshake(429), RETRY, None, False),
    (ConnectionClosedError(None, None), RETRY, None, False),
    (InvalidMessage("did not receive a valid HTTP response"), RETRY, None, False),
    (_handshake(404), FATAL, None, False),
    (_handshake(403), FATAL, None, False),
    (InvalidURI("htp://x", "scheme isn't ws or wss"), FATAL, None, False),
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), FATAL, None, False),
    (PermissionError(errno.EACCES, "Permission denied"), FATAL, None, False),
    # -- anything else is a bug
    (KeyError("a bug stays a bug"), FATAL, None, False),
    (ValueError("bad"), FATAL, None, False),
    (asyncio.CancelledError(), FATAL, None, False),
]


def _id(case: tuple[BaseException, Kind, float | None, bool]) -> str:
    exc = case[0]
    return f"{type(exc).__name__}:{str(exc)[:30]}"


@pytest.mark.parametrize(("exc", "kind", "after_s", "outcome_unknown"), TABLE, ids=[_id(c) for c in TABLE])
def test_classify(exc: BaseException, kind: Kind, after_s: float | None, outcome_unknown: bool) -> None:
    decision = classify(exc, now_ms=NOW_MS)
    assert decision.kind is kind
    assert decision.after_s == (None if after_s is None else pytest.approx(after_s))
    assert decision.outcome_unknown is outcome_unknown
    assert decision.retry is (kind is RETRY)


def test_the_daemons_own_exceptions_are_one_tree_whose_branch_is_the_kind() -> None:
    for exc, kind, _, _ in TABLE:
        if isinstance(exc, DaemonError):
            assert type(exc).kind is kind or isinstance(exc, BybitProtocolError), type(exc)


def test_the_ban_and_the_reset_are_measured_on_the_clock_given() -> None:
    ban = error_for(None, "ban", http_status=403, banned_until_ms=NOW_MS + 600_000)
    assert classify(ban, now_ms=NOW_MS + 599_000).after_s == pytest.approx(1.0)
    assert classify(ban, now_ms=NOW_MS + 700_000).after_s == 0.0  # lifted
    reset = error_for(10006, "x", reset_ms=NOW_MS - 5)
    assert classify(reset, now_ms=NOW_MS).after_s == pytest.approx(0.05)  # reset passed: just the margin


async def test_a_real_refused_connection_reaches_the_policy_as_retry() -> None:
    """aiohttp's own exception for a closed port, and the client's translation of it."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get("http://127.0.0.1:1/v5/market/time")
    assert classify(info.value) == Decision(RETRY)  # nothing was sent
    async with BybitHttpClient("http://127.0.0.1:1", max_attempts=1) as http:
        with pytest.raises(BybitNetworkError) as translated:
            await http.sync_time()
    assert classify(translated.value) == Decision(RETRY, outcome_unknown=True)


def test_classify_does_not_import_the_registry() -> None:
    """The registry pulls in torch: the daemon's market path must not pay for it to classify."""
    code = (
        "import sys; from trading_daemon.errors import classify; classify(KeyError()); "
        "assert 'ml.registry' not in sys.modules and 'torch' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_rest_client_resends_only_what_is_safe() -> None:
    unknown = error_for(10016, "busy")
    assert should_retry(unknown, retry_safe=True) and not should_retry(unknown, retry_safe=False)
    page = BybitProtocolError("b'<html>'", http_status=200, venue_answered=True)
    assert should_retry(page, retry_safe=True) and not should_retry(page, retry_safe=False)
    assert should_retry(error_for(10002, "late"), retry_safe=False)  # rejected before processing
    far = error_for(10006, "x", reset_ms=NOW_MS + 60_000)
    assert should_retry(far, retry_safe=True, now_ms=NOW_MS + 59_000)
    assert not should_retry(far, retry_safe=True, now_ms=NOW_MS)  # a minute is the caller's to wait
    assert not should_retry(error_for(None, "ban", http_status=403), retry_safe=True)
    assert not should_retry(CircuitBreakerError("bybit_market", 0.01, CircuitState.OPEN), retry_safe=True)
    assert not should_retry(error_for(110007, "poor"), retry_safe=True)


# -- the one backoff ---------------------------------------------------------------------------------


def test_backoff_bounds_growth_and_cap() -> None:
    backoff = Backoff(0.5, 30.0)
    for n in range(40):
        ceiling = 0.5 * 2**n
        samples = [backoff.delay(n) for _ in range(300)]
        assert all(0.5 <= d <= 30.0 for d in samples)
        assert all(min(ceiling, 30.0) <= d <= min(ceiling * 1.25, 30.0) for d in samples), n
    assert backoff.delay(10_000) == 30.0  # no overflow far past the cap
    assert backoff.delay(-3) >= 0.5  # a negative count is the first retry


def test_backoff_is_jittered_so_that_waiters_drift_apart() -> None:
    backoff = Backoff(1.0, 60.0)
    samples = [backoff.delay(2) for _ in range(2000)]
    assert len(set(samples)) > 1900
    assert 4.0 <= min(samples) < 4.05 and 4.95 < max(samples) <= 5.0  # the whole [4, 5] band is used
    assert statistics.mean(samples) == pytest.approx(4.5, abs=0.05)
    assert {Backoff(1.0, 60.0, jitter=0.0).delay(2) for _ in range(10)} == {4.0}
    # Each wait is at least factor / (1 + jitter) = 1.6 times the one before, until the cap.
    for _ in range(200):
        waits = [backoff.delay(n) for n in range(5)]
        assert all(b > 1.5 * a for a, b in itertools.pairwise(waits)), waits


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.0, 1.0), "0 < initial <= max"),
        ((2.0, 1.0), "0 < initial <= max"),
        ((1.0, 2.0, 0.5), "factor >= 1"),
        ((1.0, 2.0, 2.0, -0.1), "jitter >= 0"),
    ],
)
def test_backoff_checks_its_parameters(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Backoff(*args)


async def _waits(wait: Any, failures: list[BaseException]) -> list[float]:
    """The sleeps tenacity takes with `wait` while `failures` are raised one after another."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    retrying = AsyncRetrying(wait=wait, stop=stop_after_attempt(10), sleep=sleep, reraise=True)
    assert await retrying(flaky) == "done"
    return slept


async def test_backoff_is_a_tenacity_wait() -> None:
    slept = await _waits(Backoff(0.1, 0.5), [OSError("x")] * 4)
    assert len(slept) == 4
    for n, wait in enumerate(slept):
        assert min(0.1 * 2**n, 0.5) <= wait <= min(0.125 * 2**n, 0.5)
    combined = await _waits(Backoff(0.1, 0.5) + wait_fixed(1.0), [OSError("x")])
    assert 1.1 <= combined[0] <= 1.125  # it composes like tenacity's own strategies


async def test_policy_wait_sits_out_what_the_error_asks() -> None:
    breaker = CircuitBreakerError("bybit_market", 3.0, CircuitState.OPEN)
    slept = await _waits(PolicyWait(Backoff(0.1, 0.5)), [breaker, OSError("x")])
    assert slept[0] == pytest.approx(3.05) and 0.2 <= slept[1] <= 0.25
    banned = error_for(None, "ban", http_status=403, banned_until_ms=NOW_MS + 10_000)
    clock: Callable[[], int] = lambda: NOW_MS + 4_000  # noqa: E731
    assert (await _waits(PolicyWait(Backoff(0.1, 0.5), clock=clock), [banned]))[0] == pytest.approx(6.0)


def test_decision_wait_is_the_longer_of_backoff_and_after() -> None:
    assert Decision(RETRY).wait_s(0.7) == 0.7
    assert Decision(RETRY, after_s=0.0).wait_s(0.7) == 0.7
    assert Decision(RETRY, after_s=5.0).wait_s(0.7) == 5.0


def test_wait_state_without_an_exception_is_the_backoff() -> None:
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = 3
    assert 0.4 <= PolicyWait(Backoff(0.1, 1.0))(state) <= 0.5
