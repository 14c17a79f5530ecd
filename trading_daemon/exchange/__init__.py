"""The daemon's Bybit v5 client: one code path for the paper exchange, testnet and mainnet.

Modules: `constants` (endpoints, retCodes, limits as data), `errors` (exception tree),
`http` (sign, send, map errors, retry), `messages` (wire structs), `parsing` (wire → records),
`records` (venue reports), `rest` (typed endpoints: market data and orders, over `rest_account` for
executions, positions, trading-stop, balance, and `rest_base` for decoding and paging), `websocket` (public
and private streams),
`clock_sync` (the periodic re-measure of the exchange clock offset).
"""

from __future__ import annotations

from trading_daemon.exchange.constants import BybitEndpoints
from trading_daemon.exchange.errors import (
    BybitAuthError,
    BybitDuplicateOrderLinkId,
    BybitError,
    BybitInsufficientBalance,
    BybitNetworkError,
    BybitOrderNotFound,
    BybitOrderRejected,
    BybitParamError,
    BybitRateLimitError,
    BybitServerError,
    BybitTimestampError,
)
from trading_daemon.exchange.http import BreakerRegistry, BybitHttpClient, CircuitBreaker, RateLimiter
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import (
    BybitPrivateWebSocket,
    BybitPublicWebSocket,
    BybitSubscriptionError,
)

__all__ = [
    "BreakerRegistry",
    "BybitAuthError",
    "BybitDuplicateOrderLinkId",
    "BybitEndpoints",
    "BybitError",
    "BybitHttpClient",
    "BybitInsufficientBalance",
    "BybitNetworkError",
    "BybitOrderNotFound",
    "BybitOrderRejected",
    "BybitParamError",
    "BybitPrivateWebSocket",
    "BybitPublicWebSocket",
    "BybitRateLimitError",
    "BybitRestClient",
    "BybitServerError",
    "BybitSubscriptionError",
    "BybitTimestampError",
    "CircuitBreaker",
    "RateLimiter",
]
