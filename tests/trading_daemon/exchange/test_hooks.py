"""The rate-limiter and circuit-breaker hooks: what they are called with, and what they see."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from exchange_sim.server.app import SimServer
from schemas.enums import OrderType, Side
from trading_daemon.exchange.constants import ALL_ENDPOINTS, ENDPOINT_LIMITS_PER_S, BybitBreakerGroup
from trading_daemon.exchange.errors import BybitInsufficientBalance, BybitRateLimitError, BybitServerError
from trading_daemon.exchange.http import BreakerRegistry, RateLimiter
from trading_daemon.exchange.rest import BybitRestClient

from .conftest import Admin, make_http

T = TypeVar("T")


class RecordingBreaker:
    """Counts calls and failures, like a breaker would before deciding to open."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures: list[BaseException] = []

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        self.calls += 1
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            self.failures.append(exc)
            raise


class Breakers:
    def __init__(self) -> None:
        self.by_name: dict[str, RecordingBreaker] = {}

    def get_breaker(self, name: str) -> RecordingBreaker:
        return self.by_name.setdefault(name, RecordingBreaker())


class RefusingLimiter:
    async def acquire(self, bucket: str, tokens: int = 1, max_wait: float | None = None) -> bool:
        return False

    def update_from_headers(self, bucket: str, headers: Mapping[str, str]) -> None:
        raise AssertionError("never reached")


def test_every_endpoint_has_a_bucket_and_group() -> None:
    for endpoint in ALL_ENDPOINTS:
        assert endpoint.bucket.startswith("rest_"), endpoint
        assert endpoint.breaker in BybitBreakerGroup
        assert endpoint.signed == (not endpoint.path.startswith("/v5/market/"))
        assert endpoint.signed == (endpoint.name in ENDPOINT_LIMITS_PER_S)
    breakers: BreakerRegistry = Breakers()  # the fakes satisfy the protocols
    limiter: RateLimiter = RefusingLimiter()
    assert breakers and limiter


async def test_breaker_sees_venue_failures_not_rejections(sim: SimServer, admin: Admin) -> None:
    breakers = Breakers()
    async with make_http(sim.base_url, breakers=breakers, max_attempts=2) as http:
        rest = BybitRestClient(http)
        await rest.get_tickers("BTCUSDT")
        with pytest.raises(BybitInsufficientBalance):
            await rest.place_order(
                symbol="BTCUSDT",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                qty=Decimal(100),
                price=Decimal(63000),
            )
        trading = breakers.by_name["bybit_trading"]
        assert trading.calls == 1 and trading.failures == []  # a business rejection is not a venue fault

        await admin(
            "POST", "/sim/faults", {"error_rate": 1, "error_kinds": ["http"], "paths": ["/v5/market"]}
        )
        with pytest.raises(BybitServerError):
            await rest.get_orderbook("BTCUSDT")
        market = breakers.by_name["bybit_market"]
        assert market.calls == 3 and len(market.failures) == 2
        assert all(isinstance(f, BybitServerError) for f in market.failures)


async def test_local_limiter_refusal(sim: SimServer) -> None:
    async with make_http(sim.base_url, rate_limiter=RefusingLimiter(), max_attempts=1) as http:
        with pytest.raises(BybitRateLimitError, match="local rate limiter"):
            await BybitRestClient(http).get_positions("BTCUSDT")
