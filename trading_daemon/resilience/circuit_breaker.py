"""Circuit breakers for calls to the exchange (original spec §4, scenario 3, "Checking Circuit Breakers").

    CLOSED --(failure_threshold consecutive counted failures)--> OPEN
    OPEN --(cooldown_seconds elapsed; the next call is a trial)--> HALF_OPEN
    HALF_OPEN --(half_open_max_calls trials succeed)--> CLOSED
    HALF_OPEN --(a trial fails)--> OPEN, cooldown restarts

While OPEN every call fails fast with `CircuitBreakerError`. Which exceptions count is
configurable: by default every `Exception` except those in `ignored`; `is_failure` replaces that
rule, e.g. with `transport_or_server_error` so only transport errors and 5xx trip the breaker and a
business rejection (insufficient balance, bad price) does not. An exception that does not count is
a success for the breaker: the venue answered. Cancellation is neither.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

import aiohttp
import structlog

from infra.settings import code_defaults
from trading_daemon.errors import TransientError

__all__ = [
    "BreakerConfig",
    "BreakerListener",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerManager",
    "CircuitState",
    "InvalidTransition",
    "transport_or_server_error",
]

P = ParamSpec("P")
R = TypeVar("R")

_log = structlog.stdlib.get_logger(__name__)


class CircuitState(StrEnum):
    """Breaker states; the values appear in `get_status()` and in metrics labels."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Allowed transitions. reset() may close from any state: an operator override.
_TRANSITIONS: frozenset[tuple[CircuitState, CircuitState]] = frozenset(
    {
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
        (CircuitState.HALF_OPEN, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.CLOSED),
    }
)

BreakerListener = Callable[[str, CircuitState, CircuitState], None]
"""Called as `listener(breaker_name, old_state, new_state)` after every state change."""


class InvalidTransition(RuntimeError):
    """A state change outside the transition table: a bug in the breaker."""


# A breaker lets its trial call through only once the cool-down has fully passed.
BREAKER_MARGIN_S = 0.05


class CircuitBreakerError(TransientError):
    """Raised instead of calling through an open (or busy half-open) breaker: retry after `retry_after`."""

    def __init__(self, breaker: str, retry_after: float, state: CircuitState) -> None:
        when = f"retry in {retry_after:.1f}s" if retry_after > 0 else "retry once the trial call finishes"
        super().__init__(f"circuit breaker {breaker!r} is {state.value}; {when}")
        self.breaker = breaker
        self.retry_after = retry_after
        self.state = state

    def retry_after_s(self, now_ms: int) -> float | None:
        """Just after the cool-down; None (the backoff) while a half-open trial is in flight."""
        return self.retry_after + BREAKER_MARGIN_S if self.retry_after > 0 else None


def transport_or_server_error(exc: BaseException) -> bool:
    """An `is_failure` rule: transport failures and HTTP 5xx count; 4xx and business errors do not."""
    status = getattr(exc, "status", None)
    if status is None:
        status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status >= 500
    return isinstance(
        exc, OSError | TimeoutError | EOFError | aiohttp.ClientConnectionError | aiohttp.ClientPayloadError
    )


@dataclass(frozen=True)
class BreakerConfig:
    """Settings of one breaker; `CircuitBreakerManager` creates breakers from a default one.

    The daemon passes CIRCUIT_BREAKER_FAILURE_THRESHOLD and CIRCUIT_BREAKER_COOLDOWN_S
    (`infra.settings.ExchangeConfig`); a breaker built without them takes the settings' defaults.
    """

    failure_threshold: int = field(default_factory=lambda: code_defaults().circuit_breaker_failure_threshold)
    cooldown_seconds: float = field(default_factory=lambda: code_defaults().circuit_breaker_cooldown_s)
    half_open_max_calls: int = 1
    ignored: tuple[type[BaseException], ...] = ()
    is_failure: Callable[[BaseException], bool] | None = None


class CircuitBreaker:
    """One circuit breaker. `failure_threshold` and `cooldown_seconds` may be changed live."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        listener: BreakerListener | None = None,
    ) -> None:
        cfg = config or BreakerConfig()
        if cfg.failure_threshold < 1 or cfg.half_open_max_calls < 1 or cfg.cooldown_seconds < 0:
            raise ValueError(f"invalid circuit breaker config for {name!r}: {cfg!r}")
        self.name = name
        self.failure_threshold = cfg.failure_threshold
        self.cooldown_seconds = cfg.cooldown_seconds
        self.half_open_max_calls = cfg.half_open_max_calls
        self._ignored = cfg.ignored
        self._is_failure = cfg.is_failure
        self._clock = clock
        self._listener = listener
        self._state = CircuitState.CLOSED
        self._failure_count = 0
        self._opened_at = 0.0
        self._trials_started = 0
        self._trial_successes = 0
        self._last_failure: str | None = None

    @property
    def state(self) -> CircuitState:
        """The current state; an OPEN breaker whose cooldown has elapsed becomes HALF_OPEN here."""
        if self._state is CircuitState.OPEN and self._clock() >= self._opened_at + self.cooldown_seconds:
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive counted failures since the last success or close."""
        return self._failure_count

    def retry_after(self) -> float:
        """Seconds until an OPEN breaker lets a trial call through (0 otherwise)."""
        if self._state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_seconds - self._clock())

    def counts_as_failure(self, exc: BaseException) -> bool:
        """Whether `exc` counts towards opening the breaker."""
        if not isinstance(exc, Exception):
            return False
        if self._is_failure is not None:
            return self._is_failure(exc)
        return not isinstance(exc, self._ignored)

    async def call_async(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await `fn(*args, **kwargs)` through the breaker; raises `CircuitBreakerError` when open."""
        trial = self._before_call()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._after_exception(exc, trial)
            raise
        self._on_success(trial)
        return result

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Synchronous `call_async`."""
        trial = self._before_call()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._after_exception(exc, trial)
            raise
        self._on_success(trial)
        return result

    def reset(self) -> None:
        """Close the breaker and forget its failures (manual override)."""
        if self._state is not CircuitState.CLOSED:
            self._transition(CircuitState.CLOSED)
        self._failure_count = 0
        self._last_failure = None

    def get_status(self) -> dict[str, Any]:
        """`{"name", "state", "failure_count", "failure_threshold", "cooldown_seconds", "retry_after", "last_failure"}`."""
        state = self.state
        return {
            "name": self.name,
            "state": state.value,
            "failure_count": self._failure_count,
            "failure_threshold": self.failure_threshold,
            "cooldown_seconds": self.cooldown_seconds,
            "retry_after": self.retry_after(),
            "last_failure": self._last_failure,
        }

    def _before_call(self) -> bool:
        """Admit a call or raise; returns whether it is a half-open trial."""
        state = self.state
        if state is CircuitState.CLOSED:
            return False
        if state is CircuitState.HALF_OPEN and self._trials_started < self.half_open_max_calls:
            self._trials_started += 1
            return True
        raise CircuitBreakerError(self.name, self.retry_after(), state)

    def _after_exception(self, exc: BaseException, trial: bool) -> None:
        if not isinstance(exc, Exception):
            # Cancelled or interrupted: no verdict on the venue, but free the trial slot.
            if trial and self._state is CircuitState.HALF_OPEN:
                self._trials_started -= 1
            return
        if self.counts_as_failure(exc):
            self._on_failure(exc, trial)
        else:
            self._on_success(trial)

    def _on_success(self, trial: bool) -> None:
        if self._state is CircuitState.CLOSED:
            self._failure_count = 0
        elif self._state is CircuitState.HALF_OPEN and trial:
            self._trial_successes += 1
            if self._trial_successes >= self.half_open_max_calls:
                self._transition(CircuitState.CLOSED)
        # Results of calls admitted before the breaker opened say nothing about now: ignored.

    def _on_failure(self, exc: Exception, trial: bool) -> None:
        self._last_failure = f"{type(exc).__name__}: {exc}"
        if self._state is CircuitState.CLOSED:
            self._failure_count += 1
            if self._failure_count >= self.failure_threshold:
                self._transition(CircuitState.OPEN)
        elif self._state is CircuitState.HALF_OPEN and trial:
            self._transition(CircuitState.OPEN)

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        if (old, new) not in _TRANSITIONS:
            raise InvalidTransition(f"circuit breaker {self.name!r}: {old.value} -> {new.value}")
        self._state = new
        self._trials_started = 0
        self._trial_successes = 0
        if new is CircuitState.OPEN:
            self._opened_at = self._clock()
            _log.warning(
                "circuit_breaker_opened",
                breaker=self.name,
                from_state=old.value,
                failure_count=self._failure_count,
                retry_after=self.cooldown_seconds,
                last_failure=self._last_failure,
            )
        else:
            if new is CircuitState.CLOSED:
                self._failure_count = 0
            _log.info(
                "circuit_breaker_state_changed", breaker=self.name, from_state=old.value, to_state=new.value
            )
        if self._listener is not None:
            try:
                self._listener(self.name, old, new)
            except Exception:
                # A broken metrics hook must not turn into an exchange-call failure.
                _log.exception("circuit_breaker_listener_failed", breaker=self.name)


class CircuitBreakerManager:
    """Named breakers created on first use with the manager's defaults."""

    def __init__(
        self,
        default_config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        listener: BreakerListener | None = None,
    ) -> None:
        self.default_config = default_config or BreakerConfig()
        self._clock = clock
        self._listener = listener
        self._breakers: dict[str, CircuitBreaker] = {}

    def get_breaker(self, name: str, config: BreakerConfig | None = None) -> CircuitBreaker:
        """The breaker `name`, created with `config` (or the defaults) if it does not exist yet."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, config or self.default_config, clock=self._clock, listener=self._listener
            )
            self._breakers[name] = breaker
        return breaker

    def get_all_status(self) -> dict[str, dict[str, Any]]:
        """`{name: breaker.get_status()}` for every breaker."""
        return {name: breaker.get_status() for name, breaker in self._breakers.items()}

    def reset(self, name: str) -> None:
        """Reset the breaker `name`; KeyError if there is none."""
        try:
            breaker = self._breakers[name]
        except KeyError:
            raise KeyError(f"no circuit breaker named {name!r}") from None
        breaker.reset()

    def reset_all(self) -> None:
        """Reset every breaker."""
        for breaker in self._breakers.values():
            breaker.reset()
