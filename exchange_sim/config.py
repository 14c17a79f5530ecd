"""Configuration of the paper exchange: listen address, market, accounts, rate limits and faults.

Plain frozen dataclasses, so a test builds one in a line and the CLI maps its options onto it. Faults
start from :class:`FaultConfig` and can be changed at run time through the admin API (``/sim/faults``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

DEFAULT_API_KEY = "XkTestApiKey0001"
DEFAULT_API_SECRET = "TestSecretNotReal0123456789abcdefABCDEF"
DEFAULT_BALANCE = Decimal(100_000)
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One API key with its secret and starting USDT balance."""

    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    balance: Decimal = DEFAULT_BALANCE


REQUEST_FAULT_MODES = ("lost_reply", "lost_request", "late_request")


@dataclass(slots=True)
class RequestFault:
    """A scripted fault for the next ``count`` REST requests whose path starts with ``path``.

    * ``lost_reply``: the request is executed (an order *is* placed) but its reply never arrives: the
      connection is dropped after ``hold_ms`` (0: at once; longer than the client's timeout: it times out).
    * ``lost_request``: the request is never executed; the connection is dropped after ``hold_ms``.
    * ``late_request``: the request arrives ``delay_ms`` late: it is checked (signature, receive window
      against the exchange clock at its late arrival) and executed then, whether or not the client is
      still waiting; one later than its ``X-BAPI-RECV-WINDOW`` is refused with 10002 and never executed.

    ``skip`` lets that many matching requests through first; ``rate`` < 1 applies the fault to that share
    of matching requests only (drawn from the fault injector's seeded stream). ``count`` is what remains.
    """

    path: str
    mode: str
    count: int = 1
    skip: int = 0
    rate: float = 1.0
    hold_ms: int = 0
    delay_ms: int = 0


@dataclass(slots=True)
class FaultConfig:
    """Injected faults; every rate is a probability in [0, 1]. All off by default.

    * ``latency_ms``: added to every REST response (``/v5`` only; the admin API is never slowed).
    * ``error_rate``: share of REST requests refused before processing, half with HTTP 503 and no
      envelope, half with HTTP 200 and retCode 10016 (unless ``error_kinds`` narrows it); the kind
      ``"ratelimit"`` answers retCode 10006 with ``X-Bapi-Limit*`` headers (window spent until a reset
      one second later on the exchange clock), as Bybit's per-UID limit does.
    * ``timeout_rate``: share of REST requests that are processed (an order *is* placed) but whose reply
      is withheld for ``timeout_ms`` and then the connection is dropped: the ambiguous outcome of §8.5.
    * ``ws_disconnect_rate``: per-second probability that a WebSocket connection is closed by the server.
    * ``delta_drop_rate`` / ``delta_duplicate_rate``: per-connection share of orderbook deltas dropped
      (a ``u`` gap) or sent twice.
    * ``book_reset_rate``: per-push probability that a depth topic restarts at ``u`` = 1 with a snapshot.
    * ``order_ack_delay_ms``: create/amend/cancel replies are held back this long while the private
      stream messages go out first (docs/exchange_protocol.md §6.8).
    * ``paths``: restrict the REST faults to these path prefixes (empty = all ``/v5`` paths).
    * ``request_faults``: scripted per-path faults for the next requests (:class:`RequestFault`): a
      reply lost after execution, a request lost before it, a request that arrives late.
    """

    latency_ms: int = 0
    error_rate: float = 0.0
    error_kinds: tuple[str, ...] = ("http", "retcode")
    timeout_rate: float = 0.0
    timeout_ms: int = 30_000
    ws_disconnect_rate: float = 0.0
    delta_drop_rate: float = 0.0
    delta_duplicate_rate: float = 0.0
    book_reset_rate: float = 0.0
    order_ack_delay_ms: int = 0
    paths: tuple[str, ...] = ()
    request_faults: tuple[RequestFault, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Bybit's limits (docs/exchange_protocol.md §1.5): per-IP over all REST, per-UID per endpoint per second."""

    enabled: bool = True
    ip_limit: int = 600
    ip_window_ms: int = 5_000
    ip_ban_ms: int = 600_000
    # Per-UID limits per 1-second window; None means the defaults of ratelimit.DEFAULT_ENDPOINT_LIMITS.
    endpoint_limits: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything needed to start a paper exchange."""

    def __post_init__(self) -> None:
        if self.auth_clock not in ("exchange", "wall"):
            raise ValueError(f"auth_clock must be 'exchange' or 'wall', got {self.auth_clock!r}")

    host: str = "127.0.0.1"
    port: int = 8090
    seed: int = 42
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    speed: float = 1.0
    start_ms: int | None = None
    # Clock of the request-time checks (REST recv window, WebSocket auth expiry): "exchange" (Bybit's
    # rule against server time) or "wall". An accelerated exchange clock runs away from every client's
    # clock, so at speed != 1 "wall" is what lets an unmodified client authenticate.
    auth_clock: str = "exchange"
    accounts: tuple[AccountConfig, ...] = (AccountConfig(),)
    default_funding_rate: Decimal = Decimal("0.0001")
    driver_interval_ms: int = 10
    faults: FaultConfig = field(default_factory=FaultConfig)
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
