"""Exceptions raised by the Bybit client, split by what the caller should do next.

::

    BybitError                       ret_code / ret_msg / endpoint / http_status
    ├── BybitTransientError          retry may succeed (the client already retried what was safe)
    │   ├── BybitServerError         10000, 10016, HTTP 5xx: outcome unknown for writes → reconcile
    │   ├── BybitNetworkError        timeout or dropped connection: outcome unknown → reconcile
    │   ├── BybitRateLimitError      10006, HTTP 429: back off until `reset_ms`
    │   └── BybitTimestampError      10002: clock drift or a late request; re-sync and resend
    ├── BybitRejectedError           the request was refused and had no effect: record, move on
    │   ├── BybitParamError          10001 (and HTTP 400)
    │   ├── BybitInsufficientBalance 110007 and the other margin shortfalls
    │   ├── BybitOrderNotFound       110001 / 110008 / 110010: terminal or unknown → reconcile
    │   ├── BybitDuplicateOrderLinkId 110072: the orderLinkId exists already
    │   └── BybitOrderRejected       any other business retCode (110003, 110017, 110094, …)
    └── BybitFatalError              halt trading and alert
        ├── BybitAuthError           10003/10004/10005/10007/10010/10027/33004, HTTP 401, WS auth
        ├── BybitIpBannedError       HTTP 403: the IP budget is exhausted, stop REST for minutes
        └── BybitProtocolError       unexpected reply (not JSON, wrong shape, 404/10017): a bug

`error_for` is the one place that turns a retCode or HTTP status into one of these.
"""

from __future__ import annotations

from trading_daemon.exchange.constants import (
    AUTH_RET_CODES,
    INSUFFICIENT_BALANCE_RET_CODES,
    ORDER_NOT_FOUND_RET_CODES,
    OUTCOME_UNKNOWN,
    BybitRetCode,
)


class BybitError(Exception):
    """Any failure talking to Bybit. `ret_code` is None for transport-level failures."""

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


class BybitTransientError(BybitError):
    """A failure that may go away on its own."""


class BybitServerError(BybitTransientError):
    """Bybit failed (10000, 10016, HTTP 5xx); whether a write took effect is unknown."""


class BybitNetworkError(BybitTransientError):
    """No reply (timeout, connection reset); whether a write took effect is unknown."""


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


class BybitTimestampError(BybitTransientError):
    """10002: the request timestamp was outside the receive window (§2.3)."""


class BybitRejectedError(BybitError):
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


class BybitFatalError(BybitError):
    """Retrying cannot help: configuration, credentials or a bug."""


class BybitAuthError(BybitFatalError):
    """Bad, expired or unauthorised API key, wrong signature, IP not whitelisted."""


class BybitIpBannedError(BybitFatalError):
    """HTTP 403: the IP limit was exceeded (about a 10-minute ban, §8.4)."""


class BybitProtocolError(BybitFatalError):
    """The reply did not have the documented shape, or the route does not exist."""


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
) -> BybitError:
    """The exception for a non-zero retCode (HTTP 200) or, with `ret_code` None, an HTTP status."""
    if ret_code is None:
        status = http_status or 0
        cls = _BY_STATUS.get(status, BybitServerError if status >= 500 else BybitProtocolError)
    else:
        cls = _BY_CODE.get(ret_code, BybitOrderRejected)
    if cls is BybitRateLimitError:
        return BybitRateLimitError(
            ret_msg, ret_code=ret_code, endpoint=endpoint, http_status=http_status, reset_ms=reset_ms
        )
    return cls(ret_msg, ret_code=ret_code, endpoint=endpoint, http_status=http_status)


def should_retry(exc: BaseException, *, retry_safe: bool) -> bool:
    """Whether the client may send the request again after `exc`.

    Rejections that happen before any processing (10002 clock, 10006 rate limit) are always safe to
    resend. Unknown outcomes (timeouts, 5xx, 10000/10016) only for requests marked `retry_safe`.
    The IP ban (403) is never retried: retrying extends it.
    """
    if isinstance(exc, BybitTimestampError | BybitRateLimitError):
        return True
    if isinstance(exc, BybitServerError | BybitNetworkError):
        return retry_safe
    return False
