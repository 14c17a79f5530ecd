"""Bybit v5 facts as data: endpoints with their rate-limit bucket and breaker group, retCodes.

Everything the client decides per endpoint or per retCode is looked up here rather than spelled as
``if`` statements in the transport. Section references (§) are to docs/exchange_protocol.md. The venues'
base URLs are configuration: `infra.settings.VENUE_URLS`, chosen by `EXCHANGE` (`Settings.exchange.urls`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

CATEGORY = "linear"
ACCOUNT_TYPE = "UNIFIED"
SETTLE_COIN = "USDT"
POSITION_IDX_ONE_WAY = 0

DEFAULT_RECV_WINDOW_MS = 5_000  # §2.3, §8.3: keep 5000
MAX_CLOCK_OFFSET_WARN_MS = 500  # §8.3: alert when the measured offset exceeds this
DEFAULT_RATE_LIMIT_BACKOFF_S = 1.5  # §8.4: the reset header may be missing on a 10006
MAX_RATE_LIMIT_WAIT_S = 5.0
IP_BAN_COOLDOWN_MS = 600_000  # §1.5: an HTTP 403 IP ban lifts after about 10 minutes

# §8.5: at most 36 characters from [A-Za-z0-9_-] (Bybit may accept 45, the documented limit is 36).
MAX_ORDER_LINK_ID_LEN = 36
ORDER_LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")

# WebSocket (§5.1, §6.1, §8.2).
WS_PING_INTERVAL_S = 20.0
WS_PONG_TIMEOUT_S = 10.0
WS_SILENCE_TIMEOUT_S = 60.0
WS_AUTH_EXPIRES_MS = 10_000  # like ccxt: now + 10 s leaves room for a slow link
# Linear has no per-request topic limit but a 21 000-character cap on all args of a connection; keep
# batches small enough that one failing topic does not hide the state of many others.
WS_SUBSCRIBE_BATCH = 10
WS_MAX_ARGS_CHARS = 21_000
WS_BACKOFF_INITIAL_S = 0.5
WS_BACKOFF_MAX_S = 30.0
WS_BACKOFF_FACTOR = 2.0

# Kline interval → milliseconds, for the intervals whose candles align to the epoch (§3.4). Weekly and
# monthly candles do not (weeks start on Monday, months vary) and are not mapped to `Candle`.
KLINE_INTERVAL_MS: dict[str, int] = {
    **{str(m): m * 60_000 for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": 86_400_000,
}


class BybitBreakerGroup(StrEnum):
    """Circuit-breaker groups: one failing area should not stop the others."""

    MARKET = "bybit_market"
    TRADING = "bybit_trading"
    ACCOUNT = "bybit_account"


@dataclass(frozen=True, slots=True)
class BybitEndpoint:
    """One REST endpoint and how the client may treat it.

    `bucket` names the rate-limit bucket (per-UID per-endpoint for private calls, §1.5; the shared IP
    budget for market data). `retry_safe` says whether a request whose outcome is unknown (timeout, 5xx)
    may simply be sent again: reads and idempotent writes only. Order creation is made safe separately
    by a client order id (§8.5).
    """

    name: str
    method: Literal["GET", "POST"]
    path: str
    signed: bool
    bucket: str
    breaker: BybitBreakerGroup
    retry_safe: bool


# Rate-limit buckets, named as `trading_daemon.resilience.rate_limiter.BYBIT_BUCKETS` names them. Bybit
# counts per endpoint (`ENDPOINT_LIMITS_PER_S`); the daemon's limiter groups endpoints of similar budget.
BUCKET_PUBLIC = "rest_public"  # the IP budget shared by all REST traffic (600 per 5 s)
BUCKET_TRADE = "rest_trade"  # order create / amend / cancel / cancel-all (10/s each)
BUCKET_ACCOUNT = "rest_account"  # order, execution and balance reads (50/s each), fee rate
BUCKET_POSITION = "rest_position"  # position list (50/s) and set-leverage (10/s)


def _ep(
    name: str,
    method: Literal["GET", "POST"],
    path: str,
    breaker: BybitBreakerGroup,
    bucket: str,
    *,
    retry_safe: bool,
) -> BybitEndpoint:
    signed = not path.startswith("/v5/market/")
    return BybitEndpoint(name, method, path, signed, bucket, breaker, retry_safe)


_MARKET, _TRADING, _ACCOUNT = BybitBreakerGroup.MARKET, BybitBreakerGroup.TRADING, BybitBreakerGroup.ACCOUNT


class BybitEndpoints:
    """The endpoints the client speaks (§3, §4)."""

    SERVER_TIME = _ep("server_time", "GET", "/v5/market/time", _MARKET, BUCKET_PUBLIC, retry_safe=True)
    INSTRUMENTS = _ep(
        "instruments", "GET", "/v5/market/instruments-info", _MARKET, BUCKET_PUBLIC, retry_safe=True
    )
    ORDERBOOK = _ep("orderbook", "GET", "/v5/market/orderbook", _MARKET, BUCKET_PUBLIC, retry_safe=True)
    KLINE = _ep("kline", "GET", "/v5/market/kline", _MARKET, BUCKET_PUBLIC, retry_safe=True)
    TICKERS = _ep("tickers", "GET", "/v5/market/tickers", _MARKET, BUCKET_PUBLIC, retry_safe=True)
    RECENT_TRADES = _ep(
        "recent_trades", "GET", "/v5/market/recent-trade", _MARKET, BUCKET_PUBLIC, retry_safe=True
    )
    ORDER_CREATE = _ep("order_create", "POST", "/v5/order/create", _TRADING, BUCKET_TRADE, retry_safe=False)
    ORDER_AMEND = _ep("order_amend", "POST", "/v5/order/amend", _TRADING, BUCKET_TRADE, retry_safe=False)
    ORDER_CANCEL = _ep("order_cancel", "POST", "/v5/order/cancel", _TRADING, BUCKET_TRADE, retry_safe=False)
    ORDER_CANCEL_ALL = _ep(
        "order_cancel_all", "POST", "/v5/order/cancel-all", _TRADING, BUCKET_TRADE, retry_safe=False
    )
    OPEN_ORDERS = _ep("open_orders", "GET", "/v5/order/realtime", _TRADING, BUCKET_ACCOUNT, retry_safe=True)
    ORDER_HISTORY = _ep(
        "order_history", "GET", "/v5/order/history", _TRADING, BUCKET_ACCOUNT, retry_safe=True
    )
    EXECUTIONS = _ep("executions", "GET", "/v5/execution/list", _ACCOUNT, BUCKET_ACCOUNT, retry_safe=True)
    POSITIONS = _ep("positions", "GET", "/v5/position/list", _ACCOUNT, BUCKET_POSITION, retry_safe=True)
    # Setting the leverage already in force answers 110043, which the client treats as success, so a
    # repeat is harmless.
    SET_LEVERAGE = _ep(
        "set_leverage", "POST", "/v5/position/set-leverage", _ACCOUNT, BUCKET_POSITION, retry_safe=True
    )
    # Full-mode TP/SL are idempotent (a repeat answers 34040, which the client treats as success) and are
    # sent as safe to retry; a Partial call adds a TP/SL pair each time, so it is not (§4.16).
    TRADING_STOP = _ep(
        "trading_stop", "POST", "/v5/position/trading-stop", _TRADING, BUCKET_POSITION, retry_safe=False
    )
    WALLET_BALANCE = _ep(
        "wallet_balance", "GET", "/v5/account/wallet-balance", _ACCOUNT, BUCKET_ACCOUNT, retry_safe=True
    )
    FEE_RATE = _ep("fee_rate", "GET", "/v5/account/fee-rate", _ACCOUNT, BUCKET_ACCOUNT, retry_safe=True)


ALL_ENDPOINTS: tuple[BybitEndpoint, ...] = tuple(
    v for v in vars(BybitEndpoints).values() if isinstance(v, BybitEndpoint)
)

# Bybit's default per-UID limits per endpoint, requests per second (§1.5, non-VIP). Market data has no
# per-UID limit, only the IP budget.
ENDPOINT_LIMITS_PER_S: dict[str, int] = {
    "order_create": 10,
    "order_amend": 10,
    "order_cancel": 10,
    "order_cancel_all": 10,
    "open_orders": 50,
    "order_history": 50,
    "executions": 50,
    "positions": 50,
    "set_leverage": 10,
    "trading_stop": 10,
    "wallet_balance": 50,
    "fee_rate": 5,
}
IP_LIMIT = (600, 5.0)  # requests per window in seconds, all REST traffic of one IP


class BybitRetCode:
    """The retCodes the client acts on (§1.4)."""

    OK = 0
    SERVER_TIMEOUT = 10000
    PARAM_ERROR = 10001
    TIMESTAMP = 10002
    INVALID_KEY = 10003
    SIGNATURE = 10004
    PERMISSION = 10005
    RATE_LIMIT = 10006
    AUTH_FAILED = 10007
    IP_NOT_WHITELISTED = 10010
    DUPLICATE_REQUEST = 10014
    SERVER_ERROR = 10016
    ROUTE_NOT_FOUND = 10017
    BANNED = 10027
    SYMBOL_NOT_WHITELISTED = 10029
    KEY_EXPIRED = 33004
    ORDER_NOT_FOUND = 110001
    PRICE_OUT_OF_RANGE = 110003
    INSUFFICIENT_BALANCE = 110007
    ORDER_COMPLETED = 110008
    TOO_MANY_STOP_ORDERS = 110009
    ORDER_CANCELLED = 110010
    REDUCE_ONLY = 110017
    LEVERAGE_NOT_MODIFIED = 110043
    TPSL_SIZE_TOO_LARGE = 110058
    TPSL_OF_PARTIALLY_FILLED = 110059
    TOO_MANY_PARTIAL_TPSL = 110061
    DUPLICATE_ORDER_LINK_ID = 110072
    ORDER_PROCESSING = 110079
    EXPECT_RISING = 110092  # a rise trigger at or below the current price
    EXPECT_FALLING = 110093
    NOTIONAL_TOO_LOW = 110094
    NOT_MODIFIED = 34040  # trading-stop: the TP/SL already has these values


# Rejected before any processing: safe to re-sign and resend any request, writes included (§8.3).
REJECTED_BEFORE_PROCESSING: frozenset[int] = frozenset({BybitRetCode.TIMESTAMP, BybitRetCode.RATE_LIMIT})
# The server may or may not have acted: retry only what is safe to repeat, reconcile writes (§1.4).
OUTCOME_UNKNOWN: frozenset[int] = frozenset({BybitRetCode.SERVER_TIMEOUT, BybitRetCode.SERVER_ERROR})
RETRYABLE_RET_CODES: frozenset[int] = REJECTED_BEFORE_PROCESSING | OUTCOME_UNKNOWN
AUTH_RET_CODES: frozenset[int] = frozenset(
    {
        BybitRetCode.INVALID_KEY,
        BybitRetCode.SIGNATURE,
        BybitRetCode.PERMISSION,
        BybitRetCode.AUTH_FAILED,
        BybitRetCode.IP_NOT_WHITELISTED,
        BybitRetCode.BANNED,
        BybitRetCode.KEY_EXPIRED,
    }
)
INSUFFICIENT_BALANCE_RET_CODES: frozenset[int] = frozenset({110004, 110006, 110007, 110012, 110044, 110045})
# On cancel/amend these all mean "already terminal or unknown": reconcile (§4.3, §8.5).
ORDER_NOT_FOUND_RET_CODES: frozenset[int] = frozenset(
    {BybitRetCode.ORDER_NOT_FOUND, BybitRetCode.ORDER_COMPLETED, BybitRetCode.ORDER_CANCELLED}
)

# REST retry policy (tenacity): attempts include the first one.
REST_MAX_ATTEMPTS = 4
REST_BACKOFF_INITIAL_S = 0.2
REST_BACKOFF_MAX_S = 5.0
REST_TIMEOUT_S = 10.0
