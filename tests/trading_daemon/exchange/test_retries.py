"""Retries: only requests that are safe to repeat, and order creation made safe by its orderLinkId.

Faults come from the paper exchange's admin API (`/sim/faults`). A counting rate limiter doubles as the
probe: the client calls `acquire` once per attempt, so the calls count attempts, and a test can lift a
fault after a given attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest

from exchange_sim.server.app import SimServer
from schemas.enums import OrderType, Side
from trading_daemon.exchange.errors import BybitNetworkError, BybitServerError
from trading_daemon.exchange.records import BybitOrderReport
from trading_daemon.exchange.rest import BybitRestClient

from .conftest import Admin, make_http


class CountingLimiter:
    """A `RateLimiter` that grants everything, counts attempts per bucket and can run a callback."""

    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.headers: list[tuple[str, dict[str, str]]] = []
        self.on_acquire: Callable[[int], Awaitable[None]] | None = None

    async def acquire(self, bucket: str, tokens: int = 1, max_wait: float | None = None) -> bool:
        self.acquired.append(bucket)
        if self.on_acquire is not None:
            await self.on_acquire(len(self.acquired))
        return True

    def update_from_headers(self, bucket: str, headers: Mapping[str, str]) -> None:
        self.headers.append((bucket, dict(headers)))

    def count(self, bucket: str) -> int:
        return self.acquired.count(bucket)


def lift_faults_at(admin: Admin, attempt: int) -> Callable[[int], Awaitable[None]]:
    async def hook(n: int) -> None:
        if n == attempt:
            await admin("POST", "/sim/faults/reset")

    return hook


@pytest.fixture
async def probe(sim: SimServer) -> Any:
    limiter = CountingLimiter()
    async with make_http(sim.base_url, rate_limiter=limiter, timeout_s=0.5) as http:
        yield limiter, BybitRestClient(http)


async def test_get_is_retried_through_503s(probe: Any, admin: Admin) -> None:
    limiter, rest = probe
    await admin(
        "POST", "/sim/faults", {"error_rate": 1, "error_kinds": ["http"], "paths": ["/v5/market/tickers"]}
    )
    limiter.on_acquire = lift_faults_at(admin, 3)
    (ticker,) = await rest.get_tickers("BTCUSDT")
    assert ticker.symbol == "BTCUSDT"
    assert limiter.count("rest_public") == 3  # two 503s, then success


async def test_get_gives_up_after_max_attempts(probe: Any, admin: Admin) -> None:
    limiter, rest = probe
    await admin(
        "POST", "/sim/faults", {"error_rate": 1, "error_kinds": ["retcode"], "paths": ["/v5/position"]}
    )
    with pytest.raises(BybitServerError) as info:
        await rest.get_positions("BTCUSDT")
    assert info.value.ret_code == 10016
    assert limiter.count("rest_position") == rest.http.max_attempts


@pytest.mark.parametrize("kind", ["http", "retcode"])
async def test_create_without_link_id_is_sent_once(probe: Any, admin: Admin, kind: str) -> None:
    limiter, rest = probe
    await admin(
        "POST", "/sim/faults", {"error_rate": 1, "error_kinds": [kind], "paths": ["/v5/order/create"]}
    )
    with pytest.raises(BybitServerError):
        await rest.place_order(
            symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal("0.01")
        )
    assert limiter.count("rest_trade") == 1


async def test_cancel_is_not_retried(probe: Any, admin: Admin) -> None:
    limiter, rest = probe
    await admin(
        "POST", "/sim/faults", {"error_rate": 1, "error_kinds": ["http"], "paths": ["/v5/order/cancel"]}
    )
    with pytest.raises(BybitServerError):
        await rest.cancel_order("BTCUSDT", order_link_id="x")
    assert limiter.count("rest_trade") == 1


async def test_create_with_link_id_retried_after_rejection(probe: Any, admin: Admin) -> None:
    """10016 before processing: the lookup finds nothing, so the same id is resent and placed once."""
    limiter, rest = probe
    await admin(
        "POST", "/sim/faults", {"error_rate": 1, "error_kinds": ["retcode"], "paths": ["/v5/order/create"]}
    )
    limiter.on_acquire = lift_faults_at(admin, 2)
    ack = await rest.place_order(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.01"),
        price=Decimal("63000"),
        order_link_id="retry-1",
    )
    assert limiter.count("rest_trade") == 2
    assert limiter.count("rest_account") >= 1  # looked up before resending (§8.5)
    orders = await rest.get_open_orders("BTCUSDT")
    assert [(o.order_id, o.order_link_id) for o in orders] == [(ack.order_id, "retry-1")]


async def test_create_timeout_is_resolved_by_lookup(probe: Any, admin: Admin) -> None:
    """The reply is withheld but the order *was* placed: the client finds it instead of resending."""
    limiter, rest = probe
    await admin("POST", "/sim/faults", {"timeout_rate": 1, "timeout_ms": 1500, "paths": ["/v5/order/create"]})
    ack = await rest.place_order(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.01"),
        price=Decimal("63000"),
        order_link_id="timeout-1",
    )
    assert limiter.count("rest_trade") == 1
    orders = await rest.get_open_orders("BTCUSDT")
    assert [(o.order_id, o.order_link_id) for o in orders] == [(ack.order_id, "timeout-1")]


async def test_timeout_without_link_id_is_not_retried(probe: Any, admin: Admin) -> None:
    limiter, rest = probe
    await admin("POST", "/sim/faults", {"timeout_rate": 1, "timeout_ms": 1500, "paths": ["/v5/order/create"]})
    with pytest.raises(BybitNetworkError):
        await rest.place_order(
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=Decimal("0.01"),
            price=Decimal("63000"),
        )
    assert limiter.count("rest_trade") == 1


class BlindLookupClient(BybitRestClient):
    """A client whose first lookup misses (Bybit's closed-order cache may be cleared, §4.5)."""

    lookups = 0

    async def find_order(
        self, symbol: str, *, order_id: str | None = None, order_link_id: str | None = None
    ) -> BybitOrderReport | None:
        self.lookups += 1
        if self.lookups == 1:
            return None
        return await super().find_order(symbol, order_id=order_id, order_link_id=order_link_id)


async def test_duplicate_link_id_on_resend_is_success(sim: SimServer, admin: Admin) -> None:
    limiter = CountingLimiter()
    async with make_http(sim.base_url, rate_limiter=limiter, timeout_s=0.5) as http:
        rest = BlindLookupClient(http)
        await admin(
            "POST", "/sim/faults", {"timeout_rate": 1, "timeout_ms": 1500, "paths": ["/v5/order/create"]}
        )
        limiter.on_acquire = lift_faults_at(admin, 3)  # 1 create (times out), 1 lookup, then resend
        ack = await rest.place_order(
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=Decimal("0.01"),
            price=Decimal("63000"),
            order_link_id="dup-resend",
        )
        assert limiter.count("rest_trade") == 2  # the resend got 110072
        assert rest.lookups == 2
        orders = await rest.get_open_orders("BTCUSDT")
        assert [(o.order_id, o.order_link_id) for o in orders] == [(ack.order_id, "dup-resend")]


async def test_rate_limit_10006_waits_for_reset(probe: Any) -> None:
    """12 leverage changes in one second against a 10/s limit: the client waits and all succeed."""
    limiter, rest = probe
    for i in range(12):
        await rest.set_leverage("BTCUSDT", Decimal(2 + i % 2))
    assert limiter.count("rest_position") > 12  # some attempts were refused with 10006 and resent
    statuses = [h.get("X-Bapi-Limit-Status") for b, h in limiter.headers if b == "rest_position"]
    assert statuses and all(s is not None for s in statuses)
