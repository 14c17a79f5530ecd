"""The daemon's one failure policy: every error it can meet, split by what happens next.

Every place that catches a failure asks :func:`classify` what to do and waits with :class:`Backoff`
(REST retries, start-up steps, WebSocket reconnects, candle back-fills, recorder writes). The daemon's own
exceptions form one tree whose three branches are the three answers; each class lives beside the code
that raises it (module in brackets) and derives from a base here::

    DaemonError                              [trading_daemon.errors]
    ├── TransientError          RETRY        the same work may succeed later: wait, then try again
    │   ├── BybitTransientError              [exchange.errors] (also a BybitError)
    │   │   ├── BybitServerError             10000/10016, HTTP 5xx           outcome unknown
    │   │   ├── BybitNetworkError            timeout, connection dropped     outcome unknown
    │   │   ├── BybitRateLimitError          10006, HTTP 429, local bucket   after the reset (1.5 s if unsaid)
    │   │   ├── BybitTimestampError          10002                           after 0 s (re-sync, re-sign)
    │   │   └── BybitIpBannedError           HTTP 403                        after the ban lifts (~10 min)
    │   ├── CircuitBreakerError              [resilience.circuit_breaker]    after the cool-down
    │   └── RateLimitExceeded                [resilience.rate_limiter]       after `wait_seconds`
    ├── RejectedError           REJECT       refused, nothing happened: record it and move on
    │   └── BybitRejectedError               [exchange.errors]
    │       ├── BybitParamError              10001, HTTP 400
    │       ├── BybitInsufficientBalance     110007 and the other margin shortfalls
    │       ├── BybitOrderNotFound           110001/110008/110010: terminal or unknown → reconcile
    │       ├── BybitDuplicateOrderLinkId    110072
    │       ├── BybitOrderRejected           any other business retCode
    │       └── BybitSubscriptionError       a refused WebSocket subscribe
    ├── FatalError              FATAL        retrying cannot help: halt this work and alert
    │   ├── BybitFatalError                  [exchange.errors]
    │   │   ├── BybitAuthError               bad key, signature, permissions, IP whitelist
    │   │   └── BybitProtocolError           not a Bybit reply (HTML, wrong shape, 404, 10017): a wrong
    │   │                                    URL — but RETRY (outcome unknown) once the same client has
    │   │                                    had a good reply from the venue: a CDN or maintenance page
    │   └── StartupError                     [lifecycle.startup] a configuration error: exit 2
    └── StopRequested           FATAL        not a failure: SIGTERM/SIGINT arrived; unwind, no alert
        └── StartupStopped                   [lifecycle.startup]

Errors of the layers below the daemon keep their own types and are classified here too::

    infra.db.errors (driver errors mapped once: infra.db.errors.storage_errors)
      DatabaseUnavailable, QueryInterrupted (`transient`)     RETRY   the recorder spools meanwhile
      DuplicateKey, MissingReference, ConstraintViolation,    REJECT  the caller decides: a duplicate is
        InvalidData, NotFound, VersionConflict,                       often "already done", a conflict
        PromotionConflict                                             means re-read
      QueryError, MigrationError, AuditChainBroken, other     FATAL   schema, SQL or tampering: alert
    ml.registry
      ModelNotFound, UnknownModelType, FeatureSpecMismatch,   REJECT  the version is refused; the model
        ArtifactMissing, ArtifactCorrupt, RegistryError               in use stays
      InvalidModelInput                                       FATAL   a bad argument: a bug
    network and sockets
      TimeoutError (asyncio's too)                            RETRY   outcome unknown
      aiohttp ClientConnectorError, ConnectionRefusedError,   RETRY   never connected: nothing was sent
        a DNS failure
      other aiohttp.ClientError, other OSError                RETRY   outcome unknown
      FileNotFoundError, PermissionError, other file errors   FATAL   local configuration
      websockets InvalidStatus 5xx or 429, other              RETRY
        WebSocketException
      websockets InvalidStatus 4xx, InvalidURI                FATAL   a wrong URL
    anything else                                             FATAL   a bug: let it propagate

A :class:`Decision` carries the kind, ``after_s`` when the error itself says when a retry can succeed,
and ``outcome_unknown`` when a write may or may not have taken effect (a timeout, a 5xx, an HTML page
in place of the reply). The policy for writes, which execution builds on: a request that is safe to
repeat (a read, a write keyed by `orderLinkId`) is *resent*; any other write whose outcome is unknown is
*reconciled* (look it up at the venue) before anything is sent again — never blindly resent.

Waiting: ``Decision.wait_s(backoff)`` is at least the backoff and at least ``after_s``. Loops that retry
without bound (start-up, reconnects, back-fills) use it; the REST client, bounded to a few attempts
within one request, honours ``after_s`` as the venue said (resend at once after a 10002, sleep exactly
until a rate-limit reset) and gives the error to the caller when ``after_s`` exceeds what one request
may wait (an IP ban, a far reset).
"""

from __future__ import annotations

import math
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import aiohttp
from tenacity import RetryCallState, retry_if_exception
from tenacity.wait import wait_base
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from infra.db.errors import (
    ConstraintViolation,
    InvalidData,
    NotFound,
    PromotionConflict,
    StorageError,
    VersionConflict,
)

__all__ = [
    "Backoff",
    "DaemonError",
    "Decision",
    "FatalError",
    "Kind",
    "PolicyWait",
    "RejectedError",
    "StopRequested",
    "TransientError",
    "classify",
    "retry_if_transient",
]


class Kind(StrEnum):
    """What happens after a failure."""

    RETRY = "retry"  # wait (at least `after_s`, else a backoff), then try the same work again
    REJECT = "reject"  # refused and without effect: record it and move on
    FATAL = "fatal"  # retrying cannot help: halt this work and alert (or unwind, when stopping)


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one failure."""

    kind: Kind
    after_s: float | None = None  # the error says when a retry can succeed (reset, cool-down, ban)
    outcome_unknown: bool = False  # a write may have taken effect: resend only if idempotent, else reconcile

    @property
    def retry(self) -> bool:
        """Whether trying the same work again later may succeed."""
        return self.kind is Kind.RETRY

    def wait_s(self, backoff_s: float) -> float:
        """The wait before the next attempt: at least `backoff_s`, and at least what the error asks."""
        return backoff_s if self.after_s is None else max(backoff_s, self.after_s)


class DaemonError(Exception):
    """Base of every exception the daemon raises itself; its branch of the tree is its `Kind`."""

    kind: ClassVar[Kind] = Kind.FATAL
    outcome_unknown: bool = False

    def retry_after_s(self, now_ms: int) -> float | None:
        """Seconds from `now_ms` until a retry can succeed, when this error knows (else None)."""
        return None

    def decision(self, now_ms: int) -> Decision:
        """The policy for this error (see the module docstring); `classify` is the public entry."""
        if self.kind is not Kind.RETRY:
            return Decision(self.kind)
        return Decision(self.kind, self.retry_after_s(now_ms), self.outcome_unknown)


class TransientError(DaemonError):
    """The same work may succeed later: wait (at least `retry_after_s`, else a backoff) and retry."""

    kind = Kind.RETRY


class RejectedError(DaemonError):
    """The request was refused and had no effect: record the refusal and move on."""

    kind = Kind.REJECT


class FatalError(DaemonError):
    """Retrying cannot help (configuration, credentials, a venue that is not Bybit): halt and alert."""

    kind = Kind.FATAL


class StopRequested(DaemonError):
    """Not a failure: the service was asked to stop while this work ran. Unwind quietly, no alert."""

    kind = Kind.FATAL


def wall_clock_ms() -> int:
    """Local wall-clock time in ms (what `classify` measures `after_s` from unless told otherwise)."""
    return time.time_ns() // 1_000_000


def classify(exc: BaseException, *, now_ms: int | None = None) -> Decision:
    """What to do after `exc`: retry (after `after_s` if given), reject, or fatal. See the module docstring.

    `now_ms` is the clock that deadlines inside errors refer to (the exchange's, for a rate-limit reset
    or an IP ban measured by the REST client); the local wall clock by default.
    """
    if isinstance(exc, DaemonError):
        return exc.decision(wall_clock_ms() if now_ms is None else now_ms)
    if isinstance(exc, StorageError):
        return _storage_decision(exc)
    registry = _registry_decision(exc)
    if registry is not None:
        return registry
    return _foreign_decision(exc)


_STORAGE_REJECTIONS = (ConstraintViolation, InvalidData, NotFound, VersionConflict, PromotionConflict)


def _storage_decision(exc: StorageError) -> Decision:
    if exc.transient:
        return Decision(Kind.RETRY)
    if isinstance(exc, _STORAGE_REJECTIONS):
        return Decision(Kind.REJECT)
    return Decision(Kind.FATAL)  # QueryError, MigrationError, AuditChainBroken, an unmapped driver error


def _registry_decision(exc: BaseException) -> Decision | None:
    # Importing ml.registry pulls in torch (seconds, hundreds of MB) that the market path never needs;
    # an exception of its types can only exist once something has imported it.
    registry = sys.modules.get("ml.registry")
    if registry is None:
        return None
    if isinstance(exc, registry.InvalidModelInput):
        return Decision(Kind.FATAL)
    if isinstance(exc, registry.RegistryError):
        return Decision(Kind.REJECT)
    return None


_LOCAL_FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def _foreign_decision(exc: BaseException) -> Decision:
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        # A 5xx or 429 on the handshake passes; a 404 or 403 is a wrong URL.
        return Decision(Kind.RETRY) if status >= 500 or status == 429 else Decision(Kind.FATAL)
    if isinstance(exc, InvalidURI):
        return Decision(Kind.FATAL)
    if isinstance(exc, WebSocketException):
        return Decision(Kind.RETRY)
    if isinstance(exc, TimeoutError):
        return Decision(Kind.RETRY, outcome_unknown=True)
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError | socket.gaierror):
        return Decision(Kind.RETRY)  # never connected: nothing was sent
    if isinstance(exc, aiohttp.ClientError):
        return Decision(Kind.RETRY, outcome_unknown=True)
    if isinstance(exc, _LOCAL_FILE_ERRORS):
        return Decision(Kind.FATAL)
    if isinstance(exc, OSError):
        return Decision(Kind.RETRY, outcome_unknown=True)
    return Decision(Kind.FATAL)


def _retryable(exc: BaseException) -> bool:
    return classify(exc).retry


retry_if_transient = retry_if_exception(_retryable)
"""A tenacity `retry` strategy: retry exactly what `classify` calls RETRY."""


@dataclass(frozen=True)
class Backoff(wait_base):
    """The daemon's one backoff: exponential growth with upward jitter, capped.

    Before retry n (0-based) it waits ``min(max_s, initial_s · factor^n · U(1, 1 + jitter))``: never less
    than `initial_s`, never more than `max_s`, each wait at least ``factor / (1 + jitter)`` times the one
    before until the cap, and two waiters that start together drift apart. Usable directly as a tenacity
    `wait` (``AsyncRetrying(wait=Backoff(0.2, 5.0))``), where retry n follows attempt n + 1.
    """

    initial_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(
                f"backoff must satisfy 0 < initial <= max, got initial {self.initial_s} s, max {self.max_s} s"
            )
        if self.factor < 1 or self.jitter < 0:
            raise ValueError(
                f"backoff needs factor >= 1 and jitter >= 0, got {self.factor} and {self.jitter}"
            )

    def delay(self, retries: int) -> float:
        """Seconds to wait before retry number `retries` (0 for the first retry)."""
        try:
            base = self.initial_s * math.pow(self.factor, max(retries, 0))
        except OverflowError:
            return self.max_s
        return min(self.max_s, base * random.uniform(1.0, 1.0 + self.jitter))

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.delay(retry_state.attempt_number - 1)


class PolicyWait(wait_base):
    """A tenacity `wait`: the backoff, or longer when the failure says when to come back (`after_s`)."""

    def __init__(self, backoff: Backoff, *, clock: Callable[[], int] | None = None) -> None:
        self.backoff = backoff
        self.clock = clock  # the clock deadlines inside errors refer to (see `classify`)

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self.backoff(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        if exc is None:
            return wait
        return classify(exc, now_ms=None if self.clock is None else self.clock()).wait_s(wait)
