"""Async token-bucket rate limiting for Bybit (original spec §8, scenario 5; docs/exchange_protocol.md §1.5, §8.4).

Each named bucket holds up to `capacity` tokens and refills continuously, full in `window_seconds`.
`acquire` reserves its tokens at once (the balance may go negative) and then sleeps until the
reservation is covered, so waiters queue in arrival order without a lock, the event loop is never
blocked, and `max_wait` is decided before anything is reserved (`max_wait=0`: try only).

On top of its own budget a bucket obeys the exchange: `update_from_headers` reads
`X-Bapi-Limit-Status` / `X-Bapi-Limit-Reset-Timestamp` (remaining requests until the reset), a
10006 reply blocks the bucket until the reset (or a fixed back-off when the header is missing,
§8.4), and an HTTP 403 IP ban stops every REST bucket for ten minutes.

Clock and sleep are injected: tests pass a fake monotonic clock and a sleep that advances it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

import structlog

from trading_daemon.errors import TransientError

__all__ = [
    "BYBIT_BUCKETS",
    "IP_BAN_SECONDS",
    "RATE_LIMIT_FALLBACK_SECONDS",
    "BucketSpec",
    "RateLimitExceeded",
    "RateLimiter",
    "rate_limited",
]

P = ParamSpec("P")
R = TypeVar("R")

_log = structlog.stdlib.get_logger(__name__)

# §8.4: a 10006 may come without X-Bapi-Limit-Reset-Timestamp; back off a fixed 1–2 s then.
RATE_LIMIT_FALLBACK_SECONDS = 2.0
# §1.5: the per-UID limit is a rolling 1-second window; an exhausted window frees up within it.
EXCHANGE_WINDOW_SECONDS = 1.0
# Waited beyond a reset timestamp (see update_from_headers).
RESET_GUARD_SECONDS = 0.02
# §1.5: an HTTP 403 IP ban lifts after about ten minutes.
IP_BAN_SECONDS = 600.0


@dataclass(frozen=True)
class BucketSpec:
    """A bucket of `capacity` tokens that refills from empty to full in `window_seconds`."""

    capacity: float
    window_seconds: float
    rest: bool = True  # counts against the REST IP limit (blocked by an HTTP 403 ban)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.window_seconds <= 0:
            raise ValueError(f"bucket capacity and window must be positive, got {self!r}")

    @property
    def refill_per_second(self) -> float:
        """Tokens added per second."""
        return self.capacity / self.window_seconds


# The original spec's five buckets. Scenario 5 fixes rest_trade at 100 per minute; its sustained
# rate (1.7/s) stays far below Bybit's 10/s per order endpoint, and bursts above 10 in one second
# are caught by the exchange headers. The others take the §1.5 figures directly.
BYBIT_BUCKETS: Mapping[str, BucketSpec] = MappingProxyType(
    {
        # IP limit: 600 per 5 s across all REST traffic; public data gets half, private keeps room.
        "rest_public": BucketSpec(capacity=300, window_seconds=5.0),
        # order create/amend/cancel/cancel-all (10/s each, per UID).
        "rest_trade": BucketSpec(capacity=100, window_seconds=60.0),
        # wallet-balance: 50/s per UID.
        "rest_account": BucketSpec(capacity=50, window_seconds=1.0),
        # position/list: 50/s per UID (set-leverage, 10/s, is called once per symbol at start-up).
        "rest_position": BucketSpec(capacity=50, window_seconds=1.0),
        # 500 new WebSocket connections per 5 minutes per host.
        "ws_connect": BucketSpec(capacity=500, window_seconds=300.0, rest=False),
    }
)


class RateLimitExceeded(TransientError):
    """Raised by `@rate_limited` when a call would have to wait longer than its `max_wait`: retry after
    `wait_seconds`."""

    def __init__(self, bucket: str, wait_seconds: float) -> None:
        super().__init__(f"rate limit bucket {bucket!r} needs {wait_seconds:.2f}s more than allowed")
        self.bucket = bucket
        self.wait_seconds = wait_seconds

    def retry_after_s(self, now_ms: int) -> float:
        return self.wait_seconds


class _Bucket:
    """Mutable state of one bucket; every method takes `now` from the limiter's clock."""

    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self.tokens = spec.capacity
        self.updated = now
        self.blocked_until = now
        # The exchange's view: `window_remaining` requests allowed until `window_reset`.
        self.window_remaining: int | None = None
        self.window_reset = now
        self.exchange_limit: int | None = None

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.spec.capacity, self.tokens + elapsed * self.spec.refill_per_second)
        self.updated = max(self.updated, now)

    def wait_time(self, tokens: float, now: float) -> float:
        self.refill(now)
        wait = max(0.0, self.blocked_until - now, (tokens - self.tokens) / self.spec.refill_per_second)
        if self.window_remaining is not None and now < self.window_reset and self.window_remaining < tokens:
            wait = max(wait, self.window_reset - now)
        return wait

    def reserve(self, tokens: float, now: float) -> None:
        self.tokens -= tokens
        if self.window_remaining is not None and now < self.window_reset:
            self.window_remaining = max(0, self.window_remaining - int(tokens))

    def block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)


class RateLimiter:
    """Named async token buckets (Bybit's five by default).

    `listener(bucket, tokens_left, waited_seconds, allowed)` is called after every `acquire`
    (e.g. `DaemonMetrics.observe_rate_limit`).
    """

    def __init__(
        self,
        buckets: Mapping[str, BucketSpec] = BYBIT_BUCKETS,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        listener: Callable[[str, float, float, bool], None] | None = None,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._listener = listener
        now = clock()
        self._buckets = {name: _Bucket(spec, now) for name, spec in buckets.items()}

    def _bucket(self, name: str) -> _Bucket:
        try:
            return self._buckets[name]
        except KeyError:
            raise KeyError(f"unknown rate limit bucket {name!r}; known: {sorted(self._buckets)}") from None

    @property
    def bucket_names(self) -> list[str]:
        """The configured bucket names."""
        return list(self._buckets)

    async def acquire(self, bucket: str, tokens: int = 1, max_wait: float | None = None) -> bool:
        """Take `tokens` from `bucket`, waiting asynchronously for them; False if that exceeds `max_wait`.

        `max_wait=None` waits as long as needed; `max_wait=0` only takes tokens that are there now.
        """
        b = self._bucket(bucket)
        if tokens <= 0 or tokens > b.spec.capacity:
            raise ValueError(f"cannot take {tokens} tokens from {bucket!r} (capacity {b.spec.capacity})")
        now = self._clock()
        wait = b.wait_time(tokens, now)
        if max_wait is not None and wait > max_wait:
            self._notify(bucket, b, 0.0, allowed=False)
            return False
        b.reserve(tokens, now)
        waited = 0.0
        try:
            while wait > 0:
                await self._sleep(wait)
                waited += wait
                # A 10006 or a ban that arrived while we slept moves our start later.
                wait = max(0.0, b.blocked_until - self._clock())
        except BaseException:
            # Cancelled while queued: give the reservation back so later callers do not pay for it.
            b.tokens = min(b.spec.capacity, b.tokens + tokens)
            raise
        self._notify(bucket, b, waited, allowed=True)
        return True

    def reset(self, bucket: str) -> None:
        """Give `bucket` its full token budget back (an operator's reset). Only the daemon's own budget:
        what the exchange imposed (a 10006 or IP-ban block, the X-Bapi window cap) stays, so a reset never
        lets more through than Bybit allows; a waiter already queued keeps its reservation."""
        state = self._bucket(bucket)
        state.tokens = state.spec.capacity

    def get_wait_time(self, bucket: str, tokens: int = 1) -> float:
        """Seconds until `tokens` could be taken from `bucket` (0 if available now)."""
        return self._bucket(bucket).wait_time(tokens, self._clock())

    def get_status(self, bucket: str) -> dict[str, Any]:
        """One bucket's status; see `get_all_status`."""
        b = self._bucket(bucket)
        now = self._clock()
        b.refill(now)
        tokens = max(0.0, b.tokens)
        window_active = b.window_remaining is not None and now < b.window_reset
        return {
            "tokens": tokens,
            "max_tokens": b.spec.capacity,
            "utilization": (b.spec.capacity - tokens) / b.spec.capacity * 100.0,
            "refill_rate": b.spec.refill_per_second,
            "blocked_for": max(0.0, b.blocked_until - now),
            "exchange_limit": b.exchange_limit,
            "exchange_remaining": b.window_remaining if window_active else None,
        }

    def get_all_status(self) -> dict[str, dict[str, Any]]:
        """`{bucket: {"tokens", "max_tokens", "utilization" (% used), "refill_rate", "blocked_for", …}}`."""
        return {name: self.get_status(name) for name in self._buckets}

    def update_from_headers(self, bucket: str, headers: Mapping[str, str]) -> None:
        """Obey Bybit's `X-Bapi-Limit*` headers of a response from an endpoint counted in `bucket`.

        Remaining 0 blocks the bucket until `X-Bapi-Limit-Reset-Timestamp` (or one exchange window
        when the reset time is not in the future); a positive remaining count caps the requests
        allowed until the reset. Header names are matched case-insensitively.
        """
        b = self._bucket(bucket)
        lowered = {key.lower(): value for key, value in headers.items()}
        limit = _parse_int(lowered.get("x-bapi-limit"))
        remaining = _parse_int(lowered.get("x-bapi-limit-status"))
        reset_ms = _parse_int(lowered.get("x-bapi-limit-reset-timestamp"))
        if limit is not None:
            b.exchange_limit = limit
        if remaining is None:
            return
        now = self._clock()
        # The reset is wall-clock epoch ms; translate it onto the monotonic clock. A reset in the future is
        # waited out with a guard for the header's millisecond rounding and for timers that wake within the
        # loop's clock resolution: a request sent a millisecond before the reset is refused again.
        reset_at = None if reset_ms is None else now + reset_ms / 1000.0 - self._wall_clock()
        if reset_at is not None:
            reset_at = reset_at + RESET_GUARD_SECONDS if reset_at > now else None
        if remaining <= 0:
            until = reset_at if reset_at is not None else now + EXCHANGE_WINDOW_SECONDS
            b.block(until)
            _log.warning("rate_limit_exhausted", bucket=bucket, blocked_for=round(until - now, 3))
        elif reset_at is not None:
            b.window_remaining = remaining
            b.window_reset = reset_at

    def on_rate_limit_error(self, bucket: str, headers: Mapping[str, str] | None = None) -> float:
        """Handle retCode 10006 on `bucket`: block until the reset (fixed back-off without one).

        Returns the seconds the bucket is now blocked for.
        """
        b = self._bucket(bucket)
        now = self._clock()
        self.update_from_headers(bucket, {**(headers or {}), "X-Bapi-Limit-Status": "0"})
        if headers is None or _parse_int(_lower_get(headers, "x-bapi-limit-reset-timestamp")) is None:
            b.block(now + RATE_LIMIT_FALLBACK_SECONDS)
        blocked_for = b.blocked_until - now
        _log.warning("rate_limit_hit", bucket=bucket, ret_code=10006, blocked_for=round(blocked_for, 3))
        return blocked_for

    def on_ip_ban(self, seconds: float = IP_BAN_SECONDS) -> None:
        """Handle HTTP 403 (IP limit): stop every REST bucket for `seconds` (§8.4: minutes, not ms)."""
        until = self._clock() + seconds
        for b in self._buckets.values():
            if b.spec.rest:
                b.block(until)
        _log.error("rate_limit_ip_ban", blocked_for=seconds)

    def _notify(self, bucket: str, b: _Bucket, waited: float, *, allowed: bool) -> None:
        if self._listener is not None:
            self._listener(bucket, max(0.0, b.tokens), waited, allowed)


def _lower_get(headers: Mapping[str, str], key: str) -> str | None:
    for name, value in headers.items():
        if name.lower() == key:
            return value
    return None


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def rate_limited(
    bucket: str, *, tokens: int = 1, max_wait: float | None = None, limiter: RateLimiter | None = None
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Take tokens from `bucket` before every call of the decorated coroutine function.

    The limiter is `limiter`, or else the `rate_limiter` attribute of the first argument (so a
    client method decorated `@rate_limited("rest_trade")` uses its instance's limiter). Raises
    `RateLimitExceeded` when the wait would exceed `max_wait`.
    """

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            active = limiter if limiter is not None else _limiter_of(args, fn)
            if not await active.acquire(bucket, tokens, max_wait):
                raise RateLimitExceeded(bucket, active.get_wait_time(bucket, tokens))
            return await fn(*args, **kwargs)

        return wrapper

    return decorate


def _limiter_of(args: tuple[Any, ...], fn: Callable[..., Any]) -> RateLimiter:
    found = getattr(args[0], "rate_limiter", None) if args else None
    if not isinstance(found, RateLimiter):
        raise TypeError(f"{fn.__qualname__}: @rate_limited needs limiter= or a self.rate_limiter")
    return found
