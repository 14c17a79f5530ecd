from __future__ import annotations

import asyncio

import pytest

from trading_daemon.resilience.circuit_breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerManager,
    CircuitState,
    transport_or_server_error,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class BusinessRejection(Exception):
    """Stands in for an exchange rejection such as 110007 insufficient balance."""


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


async def failing() -> None:
    raise ConnectionError("exchange unreachable")


async def ok() -> str:
    return "ok"


def make(
    clock: Clock, config: BreakerConfig
) -> tuple[CircuitBreaker, list[tuple[str, CircuitState, CircuitState]]]:
    changes: list[tuple[str, CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        "bybit_api",
        config,
        clock=clock,
        listener=lambda *c: changes.append(c),
    )
    return breaker, changes


async def test_scenario_3_opens_after_five_failures_and_blocks() -> None:
    clock = Clock()
    breaker, changes = make(clock, BreakerConfig(failure_threshold=5, cooldown_seconds=30.0))
    errors: list[BaseException] = []
    for _ in range(6):
        try:
            await breaker.call_async(failing)
        except Exception as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [ConnectionError] * 5 + [CircuitBreakerError]
    blocked = errors[-1]
    assert isinstance(blocked, CircuitBreakerError)
    assert blocked.breaker == "bybit_api" and blocked.retry_after == pytest.approx(30.0)
    assert "bybit_api" in str(blocked) and "30.0s" in str(blocked)
    assert breaker.state is CircuitState.OPEN
    assert changes == [("bybit_api", CircuitState.CLOSED, CircuitState.OPEN)]


async def test_success_resets_consecutive_failures() -> None:
    breaker, _ = make(Clock(), BreakerConfig(failure_threshold=2))
    with pytest.raises(ConnectionError):
        await breaker.call_async(failing)
    assert await breaker.call_async(ok) == "ok"
    with pytest.raises(ConnectionError):
        await breaker.call_async(failing)
    assert breaker.state is CircuitState.CLOSED and breaker.failure_count == 1


async def test_half_open_success_closes() -> None:
    clock = Clock()
    breaker, changes = make(clock, BreakerConfig(failure_threshold=1, cooldown_seconds=10.0))
    with pytest.raises(ConnectionError):
        await breaker.call_async(failing)
    clock.now = 9.9
    with pytest.raises(CircuitBreakerError):
        await breaker.call_async(ok)
    clock.now = 10.0
    assert breaker.get_status()["state"] == "half_open"
    assert await breaker.call_async(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert [c[2] for c in changes] == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


async def test_half_open_failure_reopens_with_fresh_cooldown() -> None:
    clock = Clock()
    breaker, _ = make(clock, BreakerConfig(failure_threshold=1, cooldown_seconds=10.0))
    with pytest.raises(ConnectionError):
        await breaker.call_async(failing)
    clock.now = 15.0
    with pytest.raises(ConnectionError):
        await breaker.call_async(failing)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == pytest.approx(10.0)


async def test_half_open_admits_limited_trials() -> None:
    clock = Clock()
    breaker, _ = make(clock, BreakerConfig(failure_threshold=1, cooldown_seconds=1.0, half_open_max_calls=2))
    with pytest.raises(ConnectionError):
        breaker.call(lambda: (_ for _ in ()).throw(ConnectionError("down")))
    clock.now = 1.0
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "ok"

    trials = [asyncio.create_task(breaker.call_async(slow)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(CircuitBreakerError, match="trial"):
        await breaker.call_async(ok)
    gate.set()
    assert await asyncio.gather(*trials) == ["ok", "ok"]
    assert breaker.state is CircuitState.CLOSED


async def test_cancelled_trial_frees_its_slot() -> None:
    clock = Clock()
    breaker, _ = make(clock, BreakerConfig(failure_threshold=1, cooldown_seconds=1.0))
    with pytest.raises(ConnectionError):
        await breaker.call_async(failing)
    clock.now = 1.0
    task = asyncio.create_task(breaker.call_async(asyncio.sleep, 60))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call_async(ok) == "ok"


async def test_ignored_and_predicate_exceptions_do_not_count() -> None:
    ignoring, _ = make(Clock(), BreakerConfig(failure_threshold=1, ignored=(BusinessRejection,)))
    with pytest.raises(BusinessRejection):

        async def reject() -> None:
            raise BusinessRejection("110007")

        await ignoring.call_async(reject)
    assert ignoring.state is CircuitState.CLOSED

    transport, _ = make(Clock(), BreakerConfig(failure_threshold=1, is_failure=transport_or_server_error))
    for status in (400, 403, 404):
        with pytest.raises(HttpError):
            transport.call(_raise, HttpError(status))
    assert transport.state is CircuitState.CLOSED
    with pytest.raises(HttpError):
        transport.call(_raise, HttpError(502))
    assert transport.get_status()["state"] == "open"  # via status: mypy narrows the property


def _raise(exc: Exception) -> None:
    raise exc


def test_transport_or_server_error_rule() -> None:
    assert transport_or_server_error(ConnectionResetError())
    assert transport_or_server_error(TimeoutError())
    assert not transport_or_server_error(BusinessRejection())
    assert not transport_or_server_error(ValueError())


async def test_status_reset_and_manager() -> None:
    clock = Clock()
    seen: list[tuple[str, CircuitState, CircuitState]] = []
    manager = CircuitBreakerManager(
        BreakerConfig(failure_threshold=2, cooldown_seconds=5.0),
        clock=clock,
        listener=lambda *c: seen.append(c),
    )
    api = manager.get_breaker("bybit_api")
    assert manager.get_breaker("bybit_api") is api
    ws = manager.get_breaker("bybit_ws", BreakerConfig(failure_threshold=1))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await api.call_async(failing)
    status = manager.get_all_status()
    assert set(status) == {"bybit_api", "bybit_ws"}
    assert status["bybit_api"]["state"] == "open" and status["bybit_api"]["failure_count"] == 2
    assert status["bybit_api"]["retry_after"] == pytest.approx(5.0)
    assert status["bybit_ws"] == ws.get_status() and ws.failure_threshold == 1
    manager.reset("bybit_api")
    assert api.get_status()["state"] == "closed" and api.failure_count == 0
    assert seen[-1] == ("bybit_api", CircuitState.OPEN, CircuitState.CLOSED)
    with pytest.raises(KeyError, match="nope"):
        manager.reset("nope")


async def test_threshold_can_be_raised_live_and_listener_errors_are_contained() -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker("bybit_api", BreakerConfig(failure_threshold=1), clock=Clock(), listener=broken)
    breaker.failure_threshold = 3
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call_async(failing)
    assert breaker.state is CircuitState.OPEN
