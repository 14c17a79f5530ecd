"""Exceptions raised by the Bybit client: the venue's branch of the daemon's one tree.

Each class derives from the `trading_daemon.errors` base that says what happens next (the policy and
the whole tree are documented there; `classify` is the one place that decides)::

    BybitError                       ret_code / ret_msg / endpoint / http_status
    ├── BybitTransientError          TransientError: retry may succeed (the client retried what was safe)
    │   ├── BybitServerError         10000, 10016, HTTP 5xx: outcome unknown for writes → reconcile
    │   ├── BybitNetworkError        timeout or dropped connection: outcome unknown → reconcile
    │   ├── BybitRateLimitError      10006, HTTP 429: back off until `reset_ms`
    │   ├── BybitTimestampError      10002: clock drift or a late request; re-sync and resend
    │   └── BybitIpBannedError       HTTP 403: the IP budget is exhausted, no REST until `banned_until_ms`
    ├── BybitRejectedError           RejectedError: the request was refused and had no effect
    │   ├── BybitParamError          10001 (and HTTP 400)
    │   ├── BybitInsufficientBalance 110007 and the other margin shortfalls
    │   ├── BybitOrderNotFound       110001 / 110008 / 110010: terminal or unknown → reconcile
    │   ├── BybitDuplicateOrderLinkId 110072: the orderLinkId exists already
    │   ├── BybitOrderRejected       any other business retCode (110003, 110017, 110094, …)
    │   └── BybitSubscriptionError   a WebSocket subscribe was refused
    └── BybitFatalError              FatalError: halt trading and alert
        ├── BybitAuthError           10003/10004/10005/10007/10010/10027/33004, HTTP 401, WS auth
        └── BybitProtocolError       not a Bybit reply (not JSON, wrong shape, 404/10017): a wrong URL,
                                     unless the venue has answered this client well before (`venue_answered`):
                                     then a CDN or maintenance page, transient with an unknown outcome

`error_for` is the one place that turns a retCode or HTTP status into one of these.
"""

from __future__ import annotations

from trading_daemon.errors import (
    DaemonError,
    Decision,
    FatalError,
    Kind,
    RejectedError,
    TransientError,
    classify,
)
from trading_daemon.exchange.constants import (
    AUTH_RET_CODES,
    DEFAULT_RATE_LIMIT_BACKOFF_S,
    INSUFFICIENT_BALANCE_RET_CODES,
    IP_BAN_COOLDOWN_MS,
    MAX_RATE_LIMIT_WAIT_S,
    ORDER_NOT_FOUND_RET_CODES,
    OUTCOME_UNKNOWN,
    BybitRetCode,
)

# A rate-limit window reopens at its reset timestamp; come back just after it.
RATE_LIMIT_RESET_MARGIN_S = 0.05


class BybitError(DaemonError):
    """Any failure talking to Bybit. `ret_code` is None for transport-level failures.

    `request_ms` is the `X-BAPI-TIMESTAMP` (exchange clock) the failed request was signed with, set for
    failures whose outcome is unknown: the venue can accept that request until `request_ms` plus the
    receive window, so only a lookup after that moment can prove it was not executed (§8.5).
    """

    request_ms: int | None = None

    def __init__(
        self,
        ret_msg: str,
        *,
        ret_code: int | None = None,
        endpoint: str = "",
        http_status: int | None = None,
    ) -> None:
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.endpoint = endpoint
        self.http_status = http_status
        where = f"{endpoint}: " if endpoint else ""
        code = f"retCode {ret_code}" if ret_code is not None else f"HTTP {http_status}"
        super().__init__(f"{where}{code}: {ret_msg}")


class BybitTransientError(BybitError, TransientError):
    """A failure that may go away on its own."""


class BybitServerError(BybitTransientError):
    """Bybit failed (10000, 10016, HTTP 5xx); whether a write took effect is unknown."""

    outcome_unknown = True


class BybitNetworkError(BybitTransientError):
    """No reply (timeout, connection reset); whether a write took effect is unknown."""

    outcome_unknown = True


class BybitRateLimitError(BybitTransientError):
    """Per-UID limit hit (10006) or HTTP 429. `reset_ms` is when the window reopens, if known."""

    def __init__(
        self,
        ret_msg: str,
        *,
        ret_code: int | None = None,
        endpoint: str = "",
        http_status: int | None = None,
        reset_ms: int | None = None,
    ) -> None:
        super().__init__(ret_msg, ret_code=ret_code, endpoint=endpoint, http_status=http_status)
        self.reset_ms = reset_ms

    def retry_after_s(self, now_ms: int) -> float:
        """Until just after the window's reset (exchange time), or the §8.4 default when unsaid."""
        if self.reset_ms is None:
            return DEFAULT_RATE_LIMIT_BACKOFF_S
        return max(self.reset_ms - now_ms, 0) / 1000 + RATE_LIMIT_RESET_MARGIN_S


class BybitTimestampError(BybitTransientError):
    """10002: the request timestamp was outside the receive window (§2.3); rejected before any
    processing, so it is resent at once once the clock offset is measured again."""

    def retry_after_s(self, now_ms: int) -> float:
        return 0.0


class BybitIpBannedError(BybitTransientError):
    """HTTP 403: the IP limit was exceeded (about a 10-minute ban, §8.4). Retrying before
    `banned_until_ms` (exchange time) extends the ban, so nothing is sent until then."""

    def __init__(
        self,
        ret_msg: str,
        *,
        ret_code: int | None = None,
        endpoint: str = "",
        http_status: int | None = None,
        banned_until_ms: int | None = None,
    ) -> None:
        super().__init__(ret_msg, ret_code=ret_code, endpoint=endpoint, http_status=http_status)
        self.banned_until_ms = banned_until_ms

    def retry_after_s(self, now_ms: int) -> float:
        if self.banned_until_ms is None:
            return IP_BAN_COOLDOWN_MS / 1000
        return max(self.banned_until_ms - now_ms, 0) / 1000


class BybitRejectedError(BybitError, RejectedError):
    """Bybit refused the request; nothing happened."""


class BybitParamError(BybitRejectedError):
    """10001: a request parameter is wrong; the text names it."""


class BybitInsufficientBalance(BybitRejectedError):
    """110007 and friends: not enough available balance or margin."""


class BybitOrderNotFound(BybitRejectedError):
    """110001/110008/110010: the order is unknown, filled or cancelled; reconcile its real state."""


class BybitDuplicateOrderLinkId(BybitRejectedError):
    """110072: an order with this orderLinkId exists already."""


class BybitOrderRejected(BybitRejectedError):
    """Any other business rejection; `ret_code` says which."""


class BybitSubscriptionError(BybitRejectedError):
    """A subscribe request was refused (unknown topic, private topic on a public socket, …)."""


class BybitFatalError(BybitError, FatalError):
    """Retrying cannot help: configuration, credentials or a bug."""


class BybitAuthError(BybitFatalError):
    """Bad, expired or unauthorised API key, wrong signature, IP not whitelisted."""


class BybitProtocolError(BybitFatalError):
    """The reply did not have the documented shape, or the route does not exist.

    From a venue that never answered well this is a configuration error (the URL is not a Bybit v5
    venue). `venue_answered` says the same client had a good reply before: then the odd reply is the
    venue's bad moment (an HTML page from a CDN or a maintenance proxy, answering HTTP 200 or 404) and
    the error is transient; whether a write took effect is unknown. A retCode (10017) is the venue's own
    word and stays fatal.
    """

    def __init__(
        self,
        ret_msg: str,
        *,
        ret_code: int | None = None,
        endpoint: str = "",
        http_status: int | None = None,
        venue_answered: bool = False,
    ) -> None:
        super().__init__(ret_msg, ret_code=ret_code, endpoint=endpoint, http_status=http_status)
        self.venue_answered = venue_answered

    def decision(self, now_ms: int) -> Decision:
        if self.venue_answered and self.ret_code is None:
            return Decision(Kind.RETRY, outcome_unknown=True)
        return Decision(Kind.FATAL)


_BY_CODE: dict[int, type[BybitError]] = {
    BybitRetCode.PARAM_ERROR: BybitParamError,
    BybitRetCode.TIMESTAMP: BybitTimestampError,
    BybitRetCode.RATE_LIMIT: BybitRateLimitError,
    BybitRetCode.ROUTE_NOT_FOUND: BybitProtocolError,
    BybitRetCode.DUPLICATE_ORDER_LINK_ID: BybitDuplicateOrderLinkId,
    **{code: BybitAuthError for code in AUTH_RET_CODES},
    **{code: BybitServerError for code in OUTCOME_UNKNOWN},
    **{code: BybitInsufficientBalance for code in INSUFFICIENT_BALANCE_RET_CODES},
    **{code: BybitOrderNotFound for code in ORDER_NOT_FOUND_RET_CODES},
}

_BY_STATUS: dict[int, type[BybitError]] = {
    400: BybitParamError,
    401: BybitAuthError,
    403: BybitIpBannedError,
    404: BybitProtocolError,
    429: BybitRateLimitError,
}


def error_for(
    ret_code: int | None,
    ret_msg: str,
    *,
    endpoint: str = "",
    http_status: int | None = None,
    reset_ms: int | None = None,
    banned_until_ms: int | None = None,
    venue_answered: bool = False,
) -> BybitError:
    """The exception for a non-zero retCode (HTTP 200) or, with `ret_code` None, an HTTP status.

    `reset_ms`, `banned_until_ms` and `venue_answered` go to the rate-limit, IP-ban and protocol errors.
    """
    if ret_code is None:
        status = http_status or 0
        cls = _BY_STATUS.get(status, BybitServerError if status >= 500 else BybitProtocolError)
    else:
        cls = _BY_CODE.get(ret_code, BybitOrderRejected)
    if cls is BybitRateLimitError:
        return BybitRateLimitError(
            ret_msg, ret_code=ret_code, endpoint=endpoint, http_status=http_status, reset_ms=reset_ms
        )
    if cls is BybitIpBannedError:
        return BybitIpBannedError(
            ret_msg, endpoint=endpoint, http_status=http_status, banned_until_ms=banned_until_ms
        )
    if cls is BybitProtocolError:
        return BybitProtocolError(
            ret_msg,
            ret_code=ret_code,
            endpoint=endpoint,
            http_status=http_status,
            venue_answered=venue_answered and ret_code is None,
        )
    return cls(ret_msg, ret_code=ret_code, endpoint=endpoint, http_status=http_status)


def should_retry(
    exc: BaseException,
    *,
    retry_safe: bool,
    now_ms: int | None = None,
    max_wait_s: float = MAX_RATE_LIMIT_WAIT_S,
) -> bool:
    """Whether the REST client may send the request again, within the same call, after `exc`.

    Asks `classify`: a RETRY whose outcome is known (10002, 10006, a local rate limit) is always safe to
    resend; one whose outcome is unknown (timeout, 5xx, 10000/10016, an HTML page from a venue that
    answered before) only for requests marked `retry_safe`. A wait longer than `max_wait_s` (an IP ban:
    retrying extends it) is the caller's to sit out. Failures that are not the venue's (an open breaker,
    a bug) are never retried here.
    """
    if not isinstance(exc, BybitError):
        return False
    decision = classify(exc, now_ms=now_ms)
    if not decision.retry or (decision.outcome_unknown and not retry_safe):
        return False
    return decision.after_s is None or decision.after_s <= max_wait_s
