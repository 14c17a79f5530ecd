"""Start-up steps that keep trying until the venue lets them succeed.

A daemon under systemd must come up once the exchange does, not die because the exchange had a bad minute
when it started (and be restarted by `Restart=on-failure` into the same bad minute). Each start-up step —
measure the exchange clock, connect the public socket, load a symbol's candles, subscribe — runs through
`StartupRunner.run`, which

* retries a transient failure (network, HTTP 5xx, 10000/10016, 10006, 10002, a refused or dropped
  WebSocket) with capped, jittered exponential backoff (tenacity) until the step succeeds or the stop
  event is set (SIGTERM/SIGINT), which raises `StartupStopped` at once, even in the middle of a step;
* waits out an open circuit breaker (the rest of its cool-down) and, given `retry_after`, an IP ban,
  instead of treating them as fatal;
* logs each failure, tells systemd `STATUS=starting: waiting for <step> …` and extends the start timeout
  by the wait (`EXTEND_TIMEOUT_USEC`), so `TimeoutStartSec=` does not kill a daemon that is waiting;
* turns a configuration error (bad credentials: 10003/10004 and the other auth codes; an unknown symbol;
  a URL that is no Bybit v5 venue) into a `StartupError` naming the step, the cause and what to check.
  Anything else (a bug) propagates unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from trading_daemon.exchange.errors import (
    BybitAuthError,
    BybitError,
    BybitIpBannedError,
    BybitProtocolError,
    BybitRejectedError,
    BybitTransientError,
)
from trading_daemon.exchange.websocket import BybitSubscriptionError
from trading_daemon.lifecycle.systemd import SystemdNotifier
from trading_daemon.resilience.circuit_breaker import CircuitBreakerError

__all__ = [
    "StartupError",
    "StartupRunner",
    "StartupStopped",
    "config_error_hint",
    "is_transient",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
# Time systemd grants a step beyond its wait: a REST call may retry for tens of seconds by itself.
STEP_TIMEOUT_MARGIN_S = 120.0
# A breaker lets its trial call through only once the cool-down has fully passed.
BREAKER_MARGIN_S = 0.05


class StartupError(RuntimeError):
    """A start-up step failed in a way retrying cannot fix: a configuration error."""

    def __init__(self, step: str, cause: BaseException, hint: str) -> None:
        super().__init__(f"start-up step {step!r} failed and retrying cannot help: {cause} — {hint}")
        self.step = step
        self.hint = hint


class StartupStopped(Exception):
    """The service was asked to stop before the start-up step `step` succeeded."""

    def __init__(self, step: str) -> None:
        super().__init__(f"stopped while starting ({step})")
        self.step = step


def is_transient(exc: BaseException) -> bool:
    """Whether a start-up step that failed with `exc` may succeed later on its own."""
    if isinstance(exc, BybitTransientError | BybitIpBannedError | CircuitBreakerError):
        return True
    if isinstance(exc, BybitError):
        return False  # credentials, a refused request or subscription, a reply of the wrong shape
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return status >= 500 or status == 429  # a 404 or 403 on the handshake is a wrong URL
    if isinstance(exc, InvalidURI):
        return False
    return isinstance(exc, OSError | TimeoutError | WebSocketException)


def config_error_hint(exc: BaseException) -> str | None:
    """What to check for a configuration error, or None when `exc` is not one (transient, or a bug)."""
    if is_transient(exc):
        return None
    if isinstance(exc, BybitAuthError):
        return "check BYBIT_API_KEY and BYBIT_API_SECRET (and the key's permissions and IP whitelist)"
    if isinstance(exc, BybitRejectedError | BybitSubscriptionError):
        return "check TRADING_PAIRS: every symbol must be a USDT perpetual listed on the venue"
    if isinstance(exc, BybitProtocolError | InvalidStatus | InvalidURI):
        return "check EXCHANGE and the BYBIT_REST_URL / BYBIT_WS_PUBLIC_URL settings"
    return None


def breaker_wait_s(exc: BaseException) -> float:
    """How long an open circuit breaker asks callers to stay away (0 for any other failure)."""
    if isinstance(exc, CircuitBreakerError) and exc.retry_after > 0:
        return exc.retry_after + BREAKER_MARGIN_S
    return 0.0


class StartupRunner:
    """Runs start-up steps, each until it succeeds, a configuration error stops it, or `stop` is set."""

    def __init__(
        self,
        stop: asyncio.Event,
        *,
        notifier: SystemdNotifier | None = None,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        retry_after: Callable[[BaseException], float] | None = None,
    ) -> None:
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError(
                f"start-up backoff must satisfy 0 < initial <= max, got {initial_backoff_s} s, {max_backoff_s} s"
            )
        self.stop = stop
        self.notifier = notifier
        # initial·2^n plus up to `initial` of jitter, capped at `max` (as the REST client's own retries).
        self._backoff = wait_exponential_jitter(
            multiplier=initial_backoff_s, max=max_backoff_s, jitter=initial_backoff_s
        )
        self._retry_after = retry_after
        self.failures = 0  # over every step: how often start-up had to wait

    async def run(self, step: str, fn: Callable[[], Awaitable[T]]) -> T:
        """`await fn()` until it succeeds; `step` names it in logs and in the systemd status."""
        if self.stop.is_set():
            raise StartupStopped(step)
        self._status(f"starting: {step}")
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=self._wait,
            stop=lambda _state: self.stop.is_set(),
            sleep=self._sleep,
            before_sleep=lambda state: self._report(step, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._until_stopped(step, fn)
        except StartupStopped:
            raise
        except Exception as exc:
            if self.stop.is_set() and is_transient(exc):
                raise StartupStopped(step) from exc
            hint = config_error_hint(exc)
            if hint is None:
                raise
            log.error("start-up step failed: configuration error", step=step, error=str(exc), hint=hint)
            raise StartupError(step, exc, hint) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _until_stopped(self, step: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One attempt, abandoned (cancelled) as soon as `stop` is set."""
        if self.stop.is_set():
            raise StartupStopped(step)
        attempt: asyncio.Future[T] = asyncio.ensure_future(fn())
        stopped = asyncio.ensure_future(self.stop.wait())
        either: set[asyncio.Future[Any]] = {attempt, stopped}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (attempt, stopped):
                future.cancel()
            await asyncio.gather(attempt, stopped, return_exceptions=True)
        if attempt.cancelled():
            raise StartupStopped(step)
        return attempt.result()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = float(self._backoff(state))
        if exc is not None:
            wait = max(wait, breaker_wait_s(exc))
            if self._retry_after is not None:
                wait = max(wait, self._retry_after(exc))
        return wait

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def _report(self, step: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        error = str(exc) or repr(exc)
        self.failures += 1
        log.warning(
            "start-up step failed, retrying",
            step=step,
            attempt=state.attempt_number,
            retry_in_s=round(delay, 2),
            error=error,
        )
        self._status(
            f"starting: waiting for {step} (attempt {state.attempt_number} failed: {error}; "
            f"retrying in {delay:.1f} s)"
        )
        if self.notifier is not None:
            self.notifier.extend_timeout(delay + STEP_TIMEOUT_MARGIN_S)

    def _status(self, text: str) -> None:
        if self.notifier is not None:
            self.notifier.status(text)
