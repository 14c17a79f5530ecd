"""Start-up steps that keep trying until the venue lets them succeed.

A daemon under systemd must come up once the exchange does, not die because the exchange had a bad minute
when it started (and be restarted by `Restart=on-failure` into the same bad minute). Each start-up step —
measure the exchange clock, connect the public socket, load a symbol's candles, subscribe — runs through
`StartupRunner.run`, which

* retries what the daemon's failure policy calls transient (`trading_daemon.errors.classify`: network,
  HTTP 5xx, 10000/10016, 10006, 10002, a refused or dropped WebSocket, an HTML page from a venue that
  has answered well before) with the daemon's `Backoff` (tenacity) until the step succeeds or the stop
  event is set (SIGTERM/SIGINT), which raises `StartupStopped` at once, even in the middle of a step;
* waits at least as long as the failure asks (`Decision.after_s`): the rest of an open circuit breaker's
  cool-down, an IP ban;
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
from tenacity import AsyncRetrying, RetryCallState
from websockets.exceptions import InvalidStatus, InvalidURI

from trading_daemon.errors import (
    Backoff,
    FatalError,
    PolicyWait,
    StopRequested,
    classify,
    retry_if_transient,
)
from trading_daemon.exchange.errors import BybitAuthError, BybitProtocolError, BybitRejectedError
from trading_daemon.lifecycle.systemd import SystemdNotifier

__all__ = [
    "StartupError",
    "StartupRunner",
    "StartupStopped",
    "config_error_hint",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

INITIAL_BACKOFF_S = 0.5  # the first wait; the longest is STARTUP_RETRY_MAX_S (`StartupConfig.retry_max_s`)
# Time systemd grants a step beyond its wait: a REST call may retry for tens of seconds by itself.
STEP_TIMEOUT_MARGIN_S = 120.0


class StartupError(FatalError):
    """A start-up step failed in a way retrying cannot fix: a configuration error (the CLI exits 2,
    which the systemd unit does not restart)."""

    def __init__(self, step: str, cause: BaseException, hint: str) -> None:
        super().__init__(f"start-up step {step!r} failed and retrying cannot help: {cause} — {hint}")
        self.step = step
        self.hint = hint


class StartupStopped(StopRequested):
    """The service was asked to stop before the start-up step `step` succeeded."""

    def __init__(self, step: str) -> None:
        super().__init__(f"stopped while starting ({step})")
        self.step = step


def config_error_hint(exc: BaseException) -> str | None:
    """What to check for a configuration error, or None when `exc` is not one (transient, or a bug).

    At start-up every request comes from the configuration, so a refusal (a rejected request, a refused
    subscription) means the configuration names something the venue does not have.
    """
    if classify(exc).retry:
        return None
    if isinstance(exc, BybitAuthError):
        return "check BYBIT_API_KEY and BYBIT_API_SECRET (and the key's permissions and IP whitelist)"
    if isinstance(exc, BybitRejectedError):  # BybitSubscriptionError included
        return "check TRADING_PAIRS: every symbol must be a USDT perpetual listed on the venue"
    if isinstance(exc, BybitProtocolError | InvalidStatus | InvalidURI):
        return "check EXCHANGE and the BYBIT_REST_URL / BYBIT_WS_PUBLIC_URL settings"
    return None


class StartupRunner:
    """Runs start-up steps, each until it succeeds, a configuration error stops it, or `stop` is set."""

    def __init__(
        self,
        stop: asyncio.Event,
        *,
        notifier: SystemdNotifier | None = None,
        max_backoff_s: float,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        clock: Callable[[], int] | None = None,
    ) -> None:
        """`max_backoff_s`: STARTUP_RETRY_MAX_S. `clock`: the exchange clock in ms that deadlines inside
        errors refer to (an IP ban measured by the REST client: pass `BybitHttpClient.now_ms`); the local
        wall clock by default."""
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError(
                f"start-up backoff must satisfy 0 < initial <= max, got {initial_backoff_s} s, {max_backoff_s} s"
            )
        self.stop = stop
        self.notifier = notifier
        self._wait = PolicyWait(Backoff(initial_backoff_s, max_backoff_s), clock=clock)
        self.failures = 0  # over every step: how often start-up had to wait

    async def run(self, step: str, fn: Callable[[], Awaitable[T]]) -> T:
        """`await fn()` until it succeeds; `step` names it in logs and in the systemd status."""
        if self.stop.is_set():
            raise StartupStopped(step)
        self._status(f"starting: {step}")
        retrying = AsyncRetrying(
            retry=retry_if_transient,
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
            if self.stop.is_set() and classify(exc).retry:
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
