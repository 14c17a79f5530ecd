"""The one choke point for Bybit REST: sign, send, translate failures, retry what is safe.

Signing follows docs/exchange_protocol.md §2: the client signs the exact query string it puts on the URL and the
exact body bytes it sends. Every request goes through :meth:`BybitHttpClient.send` (one attempt) and
usually :meth:`BybitHttpClient.with_retries` (tenacity; whether and when to resend is the daemon's one
policy, `trading_daemon.errors.classify`, with its `Backoff`).

A request that is safe to repeat (`retry_safe`: reads, writes keyed by `orderLinkId`) is resent after a
failure whose outcome is unknown (timeout, 5xx, 10000/10016, an HTML page from a venue that answered
before); any other write is not, and the caller reconciles. The client remembers whether the venue has
ever answered it with a Bybit envelope (`venue_answered`), which turns a later unreadable reply from a
configuration error into a transient one.

Rate limiting and circuit breaking are optional collaborators described by the small protocols below,
so the client does not depend on any one implementation (``trading_daemon.resilience`` provides them).
The breaker sees only failures of Bybit itself (network, HTTP status, 10000/10016): a business
rejection such as "insufficient balance" says nothing about the venue's health.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, TypeVar, runtime_checkable

import aiohttp
import msgspec
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from yarl import URL

from trading_daemon.errors import Backoff, classify
from trading_daemon.exchange.constants import (
    DEFAULT_RECV_WINDOW_MS,
    IP_BAN_COOLDOWN_MS,
    MAX_CLOCK_OFFSET_WARN_MS,
    MAX_RATE_LIMIT_WAIT_S,
    OUTCOME_UNKNOWN,
    REST_BACKOFF_INITIAL_S,
    REST_BACKOFF_MAX_S,
    REST_MAX_ATTEMPTS,
    REST_TIMEOUT_S,
    BybitEndpoint,
    BybitEndpoints,
    BybitRetCode,
)
from trading_daemon.exchange.errors import (
    BybitAuthError,
    BybitError,
    BybitIpBannedError,
    BybitNetworkError,
    BybitProtocolError,
    BybitRateLimitError,
    BybitTimestampError,
    error_for,
    should_retry,
)
from trading_daemon.exchange.messages import BybitEnvelope

log = structlog.get_logger(__name__)

T = TypeVar("T")
Params = Mapping[str, object]


class RateLimiter(Protocol):
    """What the client needs from a token-bucket rate limiter."""

    async def acquire(self, bucket: str, tokens: int = 1, max_wait: float | None = None) -> object:
        """Wait for `tokens` from `bucket`; returning False (or raising) means "not granted"."""
        ...

    def update_from_headers(self, bucket: str, headers: Mapping[str, str]) -> object:
        """Learn the venue's view of the bucket from `X-Bapi-Limit*` headers (may be a coroutine)."""
        ...


@runtime_checkable
class RateLimitFeedback(Protocol):
    """Optional extras of a rate limiter, used when present: told about 10006 and HTTP 403."""

    def on_rate_limit_error(self, bucket: str, headers: Mapping[str, str] | None = None) -> object:
        """A 10006 on `bucket`: block it until the reset."""
        ...

    def on_ip_ban(self, seconds: float = ...) -> object:
        """An HTTP 403: stop every REST bucket."""
        ...


class CircuitBreaker(Protocol):
    """One breaker: runs `fn` unless open."""

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)`, counting its exceptions as failures."""
        ...


class BreakerRegistry(Protocol):
    """A set of named breakers (one per `constants.BybitBreakerGroup` group)."""

    def get_breaker(self, name: str) -> CircuitBreaker:
        """The breaker for `name`, created on first use."""
        ...


def sign(secret: str, payload: str) -> str:
    """Lower-case hex HMAC-SHA256 of `payload` under `secret` (§2.2)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def rest_signature(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """`X-BAPI-SIGN` for a request: payload is the exact query string (GET) or body (POST)."""
    return sign(secret, timestamp + api_key + recv_window + payload)


def ws_auth_signature(secret: str, expires: int) -> str:
    """Signature of the private WebSocket `auth` op (§6.2)."""
    return sign(secret, f"GET/realtime{expires}")


def wire_value(value: object) -> str:
    """A parameter value as Bybit expects it in a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def encode_query(params: Params) -> str:
    """`k=v&k=v` in insertion order, None dropped; the exact text that is both sent and signed."""
    return "&".join(f"{k}={wire_value(v)}" for k, v in params.items() if v is not None)


def encode_body(params: Params) -> bytes:
    """Compact JSON; decimals as plain strings, booleans and integers as JSON values (§1.2)."""
    out: dict[str, object] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool | int) and not isinstance(value, Enum):
            out[key] = value
        else:
            out[key] = wire_value(value)
    return msgspec.json.encode(out)


def wall_clock_ms() -> int:
    """Local wall-clock time in ms."""
    return time.time_ns() // 1_000_000


class BybitResponse(msgspec.Struct, frozen=True):
    """A successful reply: the undecoded `result`, the envelope time and the response headers."""

    result: msgspec.Raw
    time_ms: int
    headers: dict[str, str]


class _Reply(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]
    body: bytes


_envelope_decoder = msgspec.json.Decoder(BybitEnvelope)


class BybitHttpClient:
    """Signed REST transport for one venue and one API key (public calls work without a key)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        session: aiohttp.ClientSession | None = None,
        recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
        timeout_s: float = REST_TIMEOUT_S,
        max_attempts: int = REST_MAX_ATTEMPTS,
        backoff_initial_s: float = REST_BACKOFF_INITIAL_S,
        backoff_max_s: float = REST_BACKOFF_MAX_S,
        rate_limiter: RateLimiter | None = None,
        rate_limit_max_wait_s: float = MAX_RATE_LIMIT_WAIT_S,
        breakers: BreakerRegistry | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._secret = api_secret
        self._session = session
        self._owns_session = session is None
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self.rate_limiter = rate_limiter
        self.rate_limit_max_wait_s = rate_limit_max_wait_s
        self.breakers = breakers
        self.clock = clock
        self.time_offset_ms = 0  # server time − local time, from sync_time()
        self.on_time_sync: Callable[[int], None] | None = None  # told every new offset (metrics)
        self.ip_ban_cooldown_ms = IP_BAN_COOLDOWN_MS
        self.banned_until_ms = 0  # after an HTTP 403, no REST traffic at all until then (§8.4)
        self.venue_answered = False  # a Bybit envelope has come back from `base_url` at least once

    async def __aenter__(self) -> BybitHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the aiohttp session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def clear_ip_ban(self) -> None:
        """Allow REST traffic again before the 403 cool-down has passed (operator action)."""
        self.banned_until_ms = 0

    def now_ms(self) -> int:
        """The current time on the server's clock, as far as the client knows."""
        return self.clock() + self.time_offset_ms

    async def sync_time(self) -> int:
        """Measure and store the server clock offset (mid-point of a `/v5/market/time` round trip)."""
        before = self.clock()
        response = await self.request(BybitEndpoints.SERVER_TIME)
        after = self.clock()
        previous, self.time_offset_ms = self.time_offset_ms, response.time_ms - (before + after) // 2
        if abs(self.time_offset_ms) > MAX_CLOCK_OFFSET_WARN_MS:
            log.warning("bybit clock offset is large; check NTP", offset_ms=self.time_offset_ms)
        if abs(self.time_offset_ms - previous) > MAX_CLOCK_OFFSET_WARN_MS:
            log.info("bybit clock offset changed", offset_ms=self.time_offset_ms, previous_ms=previous)
        if self.on_time_sync is not None:
            self.on_time_sync(self.time_offset_ms)
        return self.time_offset_ms

    async def request(
        self, endpoint: BybitEndpoint, params: Params | None = None, *, retry_safe: bool | None = None
    ) -> BybitResponse:
        """Send with retries; `retry_safe` overrides the endpoint's own flag."""

        async def attempt(_n: int, _last: BaseException | None) -> BybitResponse:
            return await self.send(endpoint, params)

        safe = endpoint.retry_safe if retry_safe is None else retry_safe
        return await self.with_retries(attempt, retry_safe=safe, what=endpoint.path)

    async def with_retries(
        self,
        fn: Callable[[int, BaseException | None], Awaitable[T]],
        *,
        retry_safe: bool,
        what: str,
    ) -> T:
        """Run `fn(attempt_number, previous_error)` until it succeeds or `should_retry` says stop.

        A 10002 re-measures the clock offset at once, whether or not an attempt follows (§8.3); if that
        measurement fails, the next attempt measures again before it is sent.
        """
        last: BaseException | None = None
        clock_stale = False

        def retryable(exc: BaseException) -> bool:
            return should_retry(exc, retry_safe=retry_safe, now_ms=self.now_ms())

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if clock_stale:
                    await self.sync_time()
                    clock_stale = False
                try:
                    return await fn(number, last)
                except BybitError as exc:
                    if isinstance(exc, BybitTimestampError):
                        clock_stale = not await self._remeasure_clock(what)
                    if retryable(exc) and number < self.max_attempts:
                        log.warning(
                            "bybit request failed, retrying", what=what, attempt=number, error=str(exc)
                        )
                    last = exc
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _remeasure_clock(self, what: str) -> bool:
        """After a 10002: measure the offset now; False (logged) if the measurement failed."""
        try:
            await self.sync_time()
        except Exception as exc:  # a Bybit error or an open breaker: the 10002 is what the caller sees
            log.warning("clock re-measure after 10002 failed", what=what, error=str(exc))
            return False
        return True

    def _wait(self, state: RetryCallState) -> float:
        # Within one request the venue's word is taken as said: a 10002 is resent at once (re-signed
        # with the corrected clock), a 10006 exactly after its reset; otherwise the backoff.
        exc = state.outcome.exception() if state.outcome is not None else None
        after_s = None if exc is None else classify(exc, now_ms=self.now_ms()).after_s
        if after_s is not None:
            return min(after_s, MAX_RATE_LIMIT_WAIT_S)
        return self._backoff(state)

    async def send(self, endpoint: BybitEndpoint, params: Params | None = None) -> BybitResponse:
        """One attempt: rate limiter, breaker, sign, send, map errors. Raises a `BybitError`."""
        if self.now_ms() < self.banned_until_ms:
            raise BybitIpBannedError(
                f"IP ban in force until {self.banned_until_ms} (HTTP 403 seen); not sending",
                endpoint=endpoint.path,
                banned_until_ms=self.banned_until_ms,
            )
        if endpoint.signed and not (self.api_key and self._secret):
            raise BybitAuthError("no API key configured", endpoint=endpoint.path)
        if self.rate_limiter is not None:
            granted = await self.rate_limiter.acquire(endpoint.bucket, 1, self.rate_limit_max_wait_s)
            if granted is False:
                raise BybitRateLimitError(
                    f"local rate limiter: bucket {endpoint.bucket!r} exhausted", endpoint=endpoint.path
                )
        if self.breakers is not None:
            breaker = self.breakers.get_breaker(endpoint.breaker.value)
            reply = await breaker.call_async(self._exchange, endpoint, params or {})
        else:
            reply = await self._exchange(endpoint, params or {})
        if self.rate_limiter is not None and "X-Bapi-Limit-Status" in reply.headers:
            pending = self.rate_limiter.update_from_headers(endpoint.bucket, reply.headers)
            if inspect.isawaitable(pending):
                await pending
        if reply.status != 200:
            raise self._http_error(endpoint, reply)
        envelope = self._decode(endpoint, reply)
        if envelope.retCode == BybitRetCode.RATE_LIMIT and isinstance(self.rate_limiter, RateLimitFeedback):
            self.rate_limiter.on_rate_limit_error(endpoint.bucket, reply.headers)
        if envelope.retCode != BybitRetCode.OK:
            raise self._error(endpoint, envelope.retCode, envelope.retMsg, reply.headers)
        return BybitResponse(envelope.result, envelope.time, reply.headers)

    async def _exchange(self, endpoint: BybitEndpoint, params: Params) -> _Reply:
        """The HTTP round trip. Raises only for failures of the venue itself (network, HTTP 5xx,
        10000/10016), which is what a circuit breaker should count; rejections (4xx, business
        retCodes, rate limits) come back as a reply and are raised by `send`."""
        headers: dict[str, str] = {}
        url = self.base_url + endpoint.path
        body: bytes | None = None
        if endpoint.method == "GET":
            payload = encode_query(params)
            if payload:
                url += "?" + payload
        else:
            body = encode_body(params)
            payload = body.decode()
            headers["Content-Type"] = "application/json"
        if endpoint.signed:
            headers.update(self._auth_headers(payload))
        request_ms = int(headers.get("X-BAPI-TIMESTAMP", self.now_ms()))
        session = self._get_session()
        try:
            with self._transport_errors(endpoint):
                async with session.request(
                    endpoint.method,
                    URL(url, encoded=True),  # sign exactly what goes on the wire: no re-encoding
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                ) as resp:
                    # Title-case keys: lookups below and in the rate limiter use Bybit's spelling.
                    headers_out = {k.title(): v for k, v in resp.headers.items()}
                    reply = _Reply(resp.status, headers_out, await resp.read())
            if reply.status >= 500:
                raise self._http_error(endpoint, reply)
            if reply.status == 200:
                envelope = self._decode(endpoint, reply)
                if envelope.retCode in OUTCOME_UNKNOWN:
                    raise self._error(endpoint, envelope.retCode, envelope.retMsg, reply.headers)
        except BybitError as exc:
            exc.request_ms = request_ms  # when the venue could still accept it: see BybitError
            raise
        return reply

    def _http_error(self, endpoint: BybitEndpoint, reply: _Reply) -> BybitError:
        text = reply.body.decode(errors="replace")[:200]
        if reply.status == 403:
            # Retrying extends an IP ban: stop all REST traffic for minutes, not milliseconds.
            self.banned_until_ms = self.now_ms() + self.ip_ban_cooldown_ms
            log.error("bybit answered HTTP 403: IP rate limit ban", endpoint=endpoint.path, text=text)
            if isinstance(self.rate_limiter, RateLimitFeedback):
                self.rate_limiter.on_ip_ban()
        return error_for(
            None,
            text,
            endpoint=endpoint.path,
            http_status=reply.status,
            reset_ms=_reset_ms(reply.headers),
            banned_until_ms=self.banned_until_ms,
            venue_answered=self.venue_answered,
        )

    def _auth_headers(self, payload: str) -> dict[str, str]:
        assert self.api_key is not None and self._secret is not None
        timestamp = str(self.now_ms())
        recv_window = str(self.recv_window_ms)
        return {
            "X-BAPI-API-KEY": self.api_key,
            "X-BAPI-TIMESTAMP": timestamp,
            "X-BAPI-RECV-WINDOW": recv_window,
            "X-BAPI-SIGN-TYPE": "2",
            "X-BAPI-SIGN": rest_signature(self._secret, timestamp, self.api_key, recv_window, payload),
        }

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    @contextlib.contextmanager
    def _transport_errors(self, endpoint: BybitEndpoint) -> Iterator[None]:
        """Translate aiohttp and timeout exceptions into `BybitNetworkError` (one place only)."""
        try:
            yield
        except TimeoutError as exc:
            raise BybitNetworkError(
                f"no reply within {self.timeout_s}s (outcome unknown)", endpoint=endpoint.path
            ) from exc
        except aiohttp.ClientError as exc:
            raise BybitNetworkError(
                f"{type(exc).__name__}: {exc} (outcome unknown)", endpoint=endpoint.path
            ) from exc

    def _decode(self, endpoint: BybitEndpoint, reply: _Reply) -> BybitEnvelope:
        try:
            envelope = _envelope_decoder.decode(reply.body)
        except msgspec.DecodeError as exc:
            raise BybitProtocolError(
                f"reply is not a Bybit envelope: {reply.body[:200]!r}",
                endpoint=endpoint.path,
                http_status=reply.status,
                venue_answered=self.venue_answered,
            ) from exc
        self.venue_answered = True
        return envelope

    @staticmethod
    def _error(endpoint: BybitEndpoint, code: int, message: str, headers: Mapping[str, str]) -> BybitError:
        if code == BybitRetCode.TIMESTAMP:
            # The text embeds req_timestamp, server_timestamp and recv_window (§8.3): keep it in the log.
            log.warning("bybit rejected the request timestamp", endpoint=endpoint.path, ret_msg=message)
        return error_for(code, message, endpoint=endpoint.path, reset_ms=_reset_ms(headers))


def _reset_ms(headers: Mapping[str, str]) -> int | None:
    value = headers.get("X-Bapi-Limit-Reset-Timestamp")
    try:
        return int(value) if value else None
    except ValueError:
        return None
