"""Rate limits: per-UID per-endpoint buckets with the X-Bapi-Limit headers and 10006; the IP limit's 403."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp

from exchange_sim.config import AccountConfig, RateLimitConfig, SimConfig
from exchange_sim.server.app import SimServer


async def test_headers_on_every_private_response(rest) -> None:
    status, headers, body = await rest.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
    assert status == 200 and body["retCode"] == 0
    assert headers["X-Bapi-Limit"] == "50" and headers["X-Bapi-Limit-Status"] == "49"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > 0
    # Business errors still carry the headers.
    _, headers, body = await rest.post(
        "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": "x"}
    )
    assert (
        body["retCode"] == 110001
        and headers["X-Bapi-Limit"] == "10"
        and headers["X-Bapi-Limit-Status"] == "9"
    )
    _, headers, _ = await rest.get("/v5/account/fee-rate", {"category": "linear"})
    assert headers["X-Bapi-Limit"] == "5"
    _, headers, _ = await rest.get("/v5/market/time", signed=False)
    assert "X-Bapi-Limit" not in headers


async def test_endpoint_limit_rejects_with_10006(rest, admin) -> None:
    await admin("POST", "/sim/ratelimit/reset")
    order = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "qty": "0.010",
        "price": "63000.00",
    }
    # Eleven creates at once, so that all of them fall in one 1-second window even on a loaded machine.
    replies = await asyncio.gather(*(rest.post("/v5/order/create", order) for _ in range(11)))
    accepted = [(h, b) for _, h, b in replies if b["retCode"] == 0]
    refused = [(s, h, b) for s, h, b in replies if b["retCode"] != 0]
    assert sorted(int(h["X-Bapi-Limit-Status"]) for h, _ in accepted) == list(range(10))
    ((status, headers, body),) = refused
    assert status == 200 and body["retCode"] == 10006 and body["retMsg"] == "Too many visits!"
    assert body["result"] == {}
    assert headers["X-Bapi-Limit-Status"] == "0" and headers["X-Bapi-Limit"] == "10"
    reset = int(headers["X-Bapi-Limit-Reset-Timestamp"])
    assert body["time"] - 1000 < reset <= body["time"] + 1000
    # Buckets are per endpoint: reads are unaffected.
    _, _, body = await rest.get("/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    assert body["retCode"] == 0 and len(body["result"]["list"]) == 10


async def test_ip_limit_bans_with_http_403() -> None:
    config = SimConfig(
        port=0,
        accounts=(AccountConfig(balance=Decimal(1000)),),
        rate_limits=RateLimitConfig(ip_limit=5, ip_window_ms=5000, ip_ban_ms=60_000),
    )
    async with SimServer(config) as server, aiohttp.ClientSession() as session:
        url = f"{server.base_url}/v5/market/time"
        for _ in range(5):
            async with session.get(url) as resp:
                assert resp.status == 200
        async with session.get(url) as resp:
            assert resp.status == 403 and "X-Bapi-Limit" not in resp.headers
            assert await resp.text() == "access too frequent"
        async with session.get(url) as resp:
            assert resp.status == 403  # banned, not just over the window
        async with session.post(f"{server.base_url}/sim/ratelimit/reset") as resp:
            assert resp.status == 200  # the admin API is not limited
        async with session.get(url) as resp:
            assert resp.status == 200
