"""Which start-up failures are waited out and which are configuration errors, and what each one asks for.
(The runner itself is exercised against the paper exchange in tests/trading_daemon/test_service_resilience.py.)"""

from __future__ import annotations

import asyncio

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.http11 import Response

from trading_daemon.exchange.errors import error_for
from trading_daemon.exchange.websocket import BybitSubscriptionError
from trading_daemon.lifecycle.startup import (
    StartupError,
    StartupRunner,
    StartupStopped,
    breaker_wait_s,
    config_error_hint,
    is_transient,
)
from trading_daemon.resilience.circuit_breaker import CircuitBreakerError, CircuitState


def _handshake(status: int) -> InvalidStatus:
    return InvalidStatus(Response(status, "", Headers()))


@pytest.mark.parametrize(
    "exc",
    [
        error_for(None, "unavailable", http_status=503),
        error_for(10016, "server error"),
        error_for(10006, "too many visits"),
        error_for(10002, "timestamp"),
        error_for(None, "access too frequent", http_status=403),  # an IP ban lifts
        CircuitBreakerError("bybit_market", 12.0, CircuitState.OPEN),
        ConnectionRefusedError("refused"),
        TimeoutError(),
        _handshake(502),
    ],
    ids=repr,
)
def test_transient_failures_are_waited_out(exc: BaseException) -> None:
    assert is_transient(exc)
    assert config_error_hint(exc) is None


@pytest.mark.parametrize(
    ("exc", "hint"),
    [
        (error_for(10003, "API key is invalid."), "BYBIT_API_KEY"),
        (error_for(10004, "error sign!"), "BYBIT_API_KEY"),
        (error_for(10001, "params error: symbol 'XRPUSDT' is not listed"), "TRADING_PAIRS"),
        (BybitSubscriptionError("error:handler not found,topic:kline.1.XRPUSDT"), "TRADING_PAIRS"),
        (error_for(None, "not found", http_status=404), "BYBIT_REST_URL"),
        (_handshake(404), "BYBIT_WS_PUBLIC_URL"),
        (InvalidURI("htp://x", "scheme isn't ws or wss"), "BYBIT_WS_PUBLIC_URL"),
    ],
    ids=repr,
)
def test_configuration_errors_are_not_retried(exc: BaseException, hint: str) -> None:
    assert not is_transient(exc)
    assert hint in (config_error_hint(exc) or "")


def test_an_open_breaker_is_waited_out_to_its_trial() -> None:
    assert breaker_wait_s(CircuitBreakerError("bybit_market", 12.0, CircuitState.OPEN)) > 12.0
    assert breaker_wait_s(error_for(None, "unavailable", http_status=503)) == 0.0


async def test_runner_retries_transient_failures_and_stops_on_the_rest() -> None:
    stop = asyncio.Event()
    runner = StartupRunner(stop, initial_backoff_s=0.01, max_backoff_s=0.02)
    failures = [error_for(None, "unavailable", http_status=503), TimeoutError()]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "up"

    assert await runner.run("flaky", flaky) == "up" and runner.failures == 2

    async def refused() -> None:
        raise error_for(10003, "API key is invalid.")

    with pytest.raises(StartupError, match=r"'credentials' failed and retrying cannot help.*10003"):
        await runner.run("credentials", refused)

    async def bug() -> None:
        raise KeyError("a bug stays a bug")

    with pytest.raises(KeyError):
        await runner.run("buggy", bug)
    stop.set()
    with pytest.raises(StartupStopped, match="stopped while starting"):
        await runner.run("late", flaky)


def test_runner_checks_its_backoff() -> None:
    with pytest.raises(ValueError, match="0 < initial <= max"):
        StartupRunner(asyncio.Event(), initial_backoff_s=2.0, max_backoff_s=1.0)
