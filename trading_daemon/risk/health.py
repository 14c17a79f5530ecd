"""Infrastructure health as the risk manager sees it: may a new entry in this symbol be sent now?

Trading halts not only on losses. New entries in a symbol stop, and resume by themselves once the cause
is gone, while any of these holds (exits and protective orders are never stopped by them):

| rule                    | holds while                                                                    |
|-------------------------|--------------------------------------------------------------------------------|
| `no_market_data`        | no row of the symbol has arrived yet                                           |
| `book_stale`            | the newest row is older than BOOK_STALE_MS, or its book's last message is     |
|                         | (rows are emitted on the exchange clock even when the socket went quiet)       |
| `book_resyncing`        | the newest row has no levels on a side: the book was invalidated (gap, bad    |
|                         | message, disconnect) and waits for its snapshot                                |
| `book_invalid`          | the newest row's book is crossed or locked                                      |
| `error_burst`           | ERROR_BURST_COUNT rate-limit refusals or venue service errors (transport, 5xx,  |
|                         | 10006, 403) within ERROR_BURST_WINDOW_S, all symbols                            |
| `breaker_open`          | a circuit breaker of the exchange client is open, all symbols                   |
| `manipulation`          | the detectors report an active manipulation in the symbol                       |

(The unreconciled account is checked by the risk manager on the `AccountView` it is given.)

`TradingHealth` is a market sink (it reads the rows the feed builds); `ErrorBurst` counts errors fed by
`WatchedRateLimiter` and `WatchedBreakers`, thin wrappers around the exchange client's rate limiter and
breakers that report what they see without changing what they do.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, ParamSpec, Protocol, TypeVar

from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from trading_daemon.resilience.circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerManager,
)
from trading_daemon.resilience.rate_limiter import RateLimiter

P = ParamSpec("P")
R = TypeVar("R")


class HealthRule(StrEnum):
    NO_MARKET_DATA = "no_market_data"
    BOOK_STALE = "book_stale"
    BOOK_RESYNCING = "book_resyncing"
    BOOK_INVALID = "book_invalid"
    ERROR_BURST = "error_burst"
    BREAKER_OPEN = "breaker_open"
    MANIPULATION = "manipulation"


@dataclass(frozen=True)
class HealthIssue:
    """Why entries in a symbol are halted now."""

    rule: HealthRule
    detail: str
    context: dict[str, Any]


class ErrorBurst:
    """Errors of the venue in a sliding window: a burst halts new entries until the window clears."""

    def __init__(self, count: int, window_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if count < 1 or window_s <= 0:
            raise ValueError(f"ErrorBurst needs count >= 1 and window_s > 0, got {count} and {window_s}")
        self.count = count
        self.window_s = window_s
        self.clock = clock
        self._events: deque[tuple[float, str]] = deque()
        self.total = 0

    def record(self, kind: str) -> None:
        """Count one error of `kind` (rate_limit, rate_limit_refused, ip_ban, service_error)."""
        self.total += 1
        self._events.append((self.clock(), kind))
        self._trim()

    def _trim(self) -> None:
        horizon = self.clock() - self.window_s
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()

    def recent(self) -> dict[str, int]:
        """Errors within the window, by kind."""
        self._trim()
        out: dict[str, int] = {}
        for _, kind in self._events:
            out[kind] = out.get(kind, 0) + 1
        return out

    @property
    def bursting(self) -> bool:
        self._trim()
        return len(self._events) >= self.count


class WatchedRateLimiter:
    """The exchange client's rate limiter, reporting refusals, 10006 and 403 to an `ErrorBurst`."""

    def __init__(self, inner: RateLimiter, on_error: Callable[[str], None]) -> None:
        self.inner = inner
        self.on_error = on_error

    async def acquire(self, bucket: str, tokens: int = 1, max_wait: float | None = None) -> bool:
        granted = await self.inner.acquire(bucket, tokens, max_wait)
        if granted is False:
            self.on_error("rate_limit_refused")
        return granted

    def update_from_headers(self, bucket: str, headers: Mapping[str, str]) -> None:
        self.inner.update_from_headers(bucket, headers)

    def on_rate_limit_error(self, bucket: str, headers: Mapping[str, str] | None = None) -> float:
        self.on_error("rate_limit")
        return self.inner.on_rate_limit_error(bucket, headers)

    def on_ip_ban(self, seconds: float | None = None) -> None:
        self.on_error("ip_ban")
        if seconds is None:
            self.inner.on_ip_ban()
        else:
            self.inner.on_ip_ban(seconds)

    def __getattr__(self, name: str) -> Any:  # status and the rest: the limiter's own
        return getattr(self.inner, name)


class _WatchedBreaker:
    def __init__(self, inner: CircuitBreaker, on_error: Callable[[str], None]) -> None:
        self.inner = inner
        self.on_error = on_error

    async def call_async(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await self.inner.call_async(fn, *args, **kwargs)
        except Exception as exc:
            # What the breaker counts (transport errors, 5xx) is a service error; its own "open" is not:
            # the breaker_open rule covers that.
            if not isinstance(exc, CircuitBreakerError) and self.inner.counts_as_failure(exc):
                self.on_error("service_error")
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class WatchedBreakers:
    """The exchange client's breaker registry, reporting every counted venue failure to an `ErrorBurst`."""

    def __init__(self, inner: CircuitBreakerManager, on_error: Callable[[str], None]) -> None:
        self.inner = inner
        self.on_error = on_error

    def get_breaker(self, name: str) -> _WatchedBreaker:
        return _WatchedBreaker(self.inner.get_breaker(name), self.on_error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BreakerStates(Protocol):
    def get_all_status(self) -> dict[str, dict[str, Any]]: ...


Manipulation = Callable[[str, int], object | None]


@dataclass
class _BookState:
    row_ts: int
    book_msg_ts: int | None
    n_bid: int
    n_ask: int
    best_bid: float
    best_ask: float


class TradingHealth:
    """Per-symbol book health from the feed's rows, plus the venue-wide error burst and breakers.

    `now_ms` is the exchange clock (rows carry exchange time). `manipulation(symbol, now_ms)` returns the
    active detection blocking the symbol, or None (the detection service's `blocked`).
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        book_stale_ms: int,
        now_ms: Callable[[], int],
        errors: ErrorBurst | None = None,
        breakers: BreakerStates | None = None,
        manipulation: Manipulation | None = None,
    ) -> None:
        self.symbols = list(symbols)
        self.book_stale_ms = book_stale_ms
        self.now_ms = now_ms
        self.errors = errors
        self.breakers = breakers
        self.manipulation = manipulation
        self._books: dict[str, _BookState] = {}

    # -- MarketSink ---------------------------------------------------------------------------------------

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        for row in rows:
            self._books[row.symbol] = _BookState(
                row_ts=row.ts,
                book_msg_ts=row.book_msg_ts,
                n_bid=row.n_bid_levels,
                n_ask=row.n_ask_levels,
                best_bid=row.bid_prices[0] if row.n_bid_levels else 0.0,
                best_ask=row.ask_prices[0] if row.n_ask_levels else 0.0,
            )

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Trades say nothing about the book's health."""

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        """Candles say nothing about the book's health."""

    # -- queries ------------------------------------------------------------------------------------------

    def mid(self, symbol: str) -> Decimal | None:
        """The newest valid row's mid price (for sizing and exposure), or None."""
        book = self._books.get(symbol)
        if book is None or not (book.n_bid and book.n_ask) or book.best_bid >= book.best_ask:
            return None
        return Decimal(repr((book.best_bid + book.best_ask) / 2))

    def touch(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """The newest valid row's best bid and ask, or None."""
        book = self._books.get(symbol)
        if book is None or not (book.n_bid and book.n_ask) or book.best_bid >= book.best_ask:
            return None
        return Decimal(repr(book.best_bid)), Decimal(repr(book.best_ask))

    def entry_block(self, symbol: str, now_ms: int | None = None) -> HealthIssue | None:
        """The first rule that halts new entries in `symbol` now, or None when it is healthy."""
        now = self.now_ms() if now_ms is None else now_ms
        book = self._books.get(symbol)
        if book is None:
            return HealthIssue(HealthRule.NO_MARKET_DATA, f"no row of {symbol} yet", {})
        row_age = now - book.row_ts
        msg_age = (book.row_ts - book.book_msg_ts) if book.book_msg_ts is not None else 0
        if row_age > self.book_stale_ms or msg_age > self.book_stale_ms:
            return HealthIssue(
                HealthRule.BOOK_STALE,
                f"{symbol}'s newest row is {row_age} ms old and its book's last message {msg_age} ms older "
                f"(limit {self.book_stale_ms} ms)",
                {"row_age_ms": row_age, "book_msg_age_ms": msg_age, "limit_ms": self.book_stale_ms},
            )
        if not (book.n_bid and book.n_ask):
            return HealthIssue(
                HealthRule.BOOK_RESYNCING,
                f"{symbol}'s book has no levels ({book.n_bid} bids, {book.n_ask} asks): awaiting its snapshot",
                {"n_bid_levels": book.n_bid, "n_ask_levels": book.n_ask, "row_ts": book.row_ts},
            )
        if book.best_bid >= book.best_ask:
            return HealthIssue(
                HealthRule.BOOK_INVALID,
                f"{symbol}'s book is crossed: best bid {book.best_bid} >= best ask {book.best_ask}",
                {"best_bid": book.best_bid, "best_ask": book.best_ask, "row_ts": book.row_ts},
            )
        venue = self.venue_block()
        if venue is not None:
            return venue
        if self.manipulation is not None:
            detection = self.manipulation(symbol, now)
            if detection is not None:
                return HealthIssue(
                    HealthRule.MANIPULATION,
                    f"manipulation detected in {symbol}: {detection}",
                    {"detection": describe_detection(detection)},
                )
        return None

    def venue_block(self) -> HealthIssue | None:
        """A rule that halts entries in every symbol (error burst, open breaker), or None."""
        if self.errors is not None and self.errors.bursting:
            recent = self.errors.recent()
            return HealthIssue(
                HealthRule.ERROR_BURST,
                f"{sum(recent.values())} venue errors in {self.errors.window_s:g} s ({recent}), "
                f"limit {self.errors.count}",
                {"errors": recent, "window_s": self.errors.window_s, "limit": self.errors.count},
            )
        if self.breakers is not None:
            open_ = sorted(
                name
                for name, status in self.breakers.get_all_status().items()
                if status.get("state") == "open"
            )
            if open_:
                return HealthIssue(
                    HealthRule.BREAKER_OPEN,
                    f"circuit breaker(s) open: {', '.join(open_)}",
                    {"breakers": open_},
                )
        return None

    def state(self) -> dict[str, Any]:
        """Per symbol: healthy or the halting rule (for the API)."""
        now = self.now_ms()
        out: dict[str, Any] = {}
        for symbol in self.symbols:
            issue = self.entry_block(symbol, now)
            out[symbol] = None if issue is None else {"rule": issue.rule.value, "detail": issue.detail}
        return out


def describe_detection(detection: object) -> Any:
    to_dict = getattr(detection, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(detection)
