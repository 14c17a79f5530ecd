"""The real `trading_daemon.resilience` rate limiter and circuit breakers wired into the client."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange_sim.server.app import SimServer
from schemas.enums import OrderType, Side
from trading_daemon.exchange.constants import ALL_ENDPOINTS
from trading_daemon.exchange.errors import BybitInsufficientBalance, BybitServerError
from trading_daemon.exchange.http import BreakerRegistry, RateLimiter
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.resilience.circuit_breaker import (
    BreakerConfig,
    CircuitBreakerError,
    CircuitBreakerManager,
    CircuitState,
)
from trading_daemon.resilience.rate_limiter import BYBIT_BUCKETS
from trading_daemon.resilience.rate_limiter import RateLimiter as TokenBuckets

from .conftest import Admin, make_http


def test_every_endpoint_bucket_exists_in_the_limiter() -> None:
    assert {e.bucket for e in ALL_ENDPOINTS} <= set(BYBIT_BUCKETS)


async def test_real_limiter_follows_exchange_headers(sim: SimServer) -> None:
    limiter = TokenBuckets()
    typed: RateLimiter = limiter  # structural check of the protocol against the real class
    async with make_http(sim.base_url, rate_limiter=typed) as http:
        rest = BybitRestClient(http)
        for i in range(12):  # above the paper exchange's 10/s for set-leverage
            await rest.set_leverage("BTCUSDT", Decimal(2 + i % 2))
        assert (await rest.get_wallet_balance()).coins["USDT"].wallet_balance == 100_000
    status = limiter.get_status("rest_position")
    assert status["exchange_limit"] == 10 and status["tokens"] < status["max_tokens"]


async def test_real_breaker_opens_on_venue_failures_only(sim: SimServer, admin: Admin) -> None:
    manager = CircuitBreakerManager(BreakerConfig(failure_threshold=3, cooldown_seconds=60))
    breakers: BreakerRegistry = manager
    async with make_http(sim.base_url, breakers=breakers, max_attempts=2) as http:
        rest = BybitRestClient(http)
        for _ in range(4):  # business rejections keep the breaker closed
            with pytest.raises(BybitInsufficientBalance):
                await rest.place_order(
                    symbol="BTCUSDT",
                    side=Side.BUY,
                    order_type=OrderType.LIMIT,
                    qty=Decimal(100),
                    price=Decimal(63000),
                )
        assert manager.get_breaker("bybit_trading").state is CircuitState.CLOSED

        await admin(
            "POST", "/sim/faults", {"error_rate": 1, "error_kinds": ["http"], "paths": ["/v5/market"]}
        )
        with pytest.raises(BybitServerError):
            await rest.get_tickers("BTCUSDT")  # two failed attempts
        with pytest.raises(CircuitBreakerError):
            await rest.get_tickers("BTCUSDT")  # third failure opens it; the retry then fails fast
        assert manager.get_breaker("bybit_market").state is CircuitState.OPEN
        await admin("POST", "/sim/faults/reset")
        with pytest.raises(CircuitBreakerError):
            await rest.get_orderbook("BTCUSDT")  # open: not even sent
        # Other groups are unaffected.
        assert (await rest.get_positions("BTCUSDT"))[0].symbol == "BTCUSDT"
