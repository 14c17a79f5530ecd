"""Fault injection, configured at start and through the admin API: latency, errors, timeouts,
WebSocket disconnects, dropped and duplicated deltas, delayed order acks; plus the admin API itself."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from decimal import Decimal

import aiohttp
import pytest
import websockets

from exchange_sim.config import FaultConfig, SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer

ORDER = {
    "category": "linear",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "orderType": "Limit",
    "qty": "0.010",
    "price": "63000.00",
}


async def test_admin_faults_roundtrip_and_validation(admin) -> None:
    current = await admin("GET", "/sim/faults")
    assert current["error_rate"] == 0 and current["latency_ms"] == 0
    updated = await admin("POST", "/sim/faults", {"latency_ms": 5, "delta_drop_rate": 0.5})
    assert updated["latency_ms"] == 5 and updated["delta_drop_rate"] == 0.5
    bad = await admin("POST", "/sim/faults", {"error_rate": 2}, status=400)
    assert "error_rate" in bad["error"]
    bad = await admin("POST", "/sim/faults", {"no_such_fault": 1}, status=400)
    assert "no_such_fault" in bad["error"]
    assert (await admin("POST", "/sim/faults/reset"))["latency_ms"] == 0


async def test_latency(rest, admin) -> None:
    await admin("POST", "/sim/faults", {"latency_ms": 200})
    started = time.monotonic()
    await rest.ok("GET", "/v5/market/time", {})
    assert time.monotonic() - started >= 0.2


async def test_errors_http_and_retcode(rest, admin) -> None:
    await admin("POST", "/sim/faults", {"error_rate": 1.0, "error_kinds": ["http"]})
    status, _, body = await rest.post("/v5/order/create", ORDER)
    assert status == 503 and isinstance(body, str)
    await admin("POST", "/sim/faults", {"error_kinds": ["retcode"]})
    status, _, body = await rest.post("/v5/order/create", ORDER)
    assert status == 200 and body["retCode"] == 10016 and body["result"] == {}
    # Errors are raised before processing: nothing was placed.
    await admin("POST", "/sim/faults", {"error_rate": 0.0, "paths": ["/v5/market"]})
    listed = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    assert listed["list"] == []
    # Faults limited to other paths leave order entry alone.
    await admin("POST", "/sim/faults", {"error_rate": 1.0})
    await rest.ok("POST", "/v5/order/create", ORDER)
    _, _, body = await rest.get("/v5/market/time", signed=False)
    assert body["retCode"] == 10016


async def test_timeout_places_the_order_but_withholds_the_reply(rest, admin, session, sim) -> None:
    await admin(
        "POST", "/sim/faults", {"timeout_rate": 1.0, "timeout_ms": 5000, "paths": ["/v5/order/create"]}
    )
    body = json.dumps({**ORDER, "orderLinkId": "lost-reply"})
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            f"{sim.base_url}/v5/order/create",
            data=body,
            headers=rest.headers(body),
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as resp:
            await resp.read()
    found = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "lost-reply"})
    assert found["list"][0]["orderStatus"] == "New"
    _, _, reply = await rest.get("/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    assert reply["retCode"] == 0


async def test_delayed_ack_sends_stream_first(rest, admin, private_ws) -> None:
    ws = await private_ws()
    await admin("POST", "/sim/faults", {"order_ack_delay_ms": 500})
    reply_task = asyncio.create_task(rest.post("/v5/order/create", {**ORDER, "orderLinkId": "slow-ack"}))
    message = await ws.recv()
    assert message["topic"] == "order" and message["data"][0]["orderLinkId"] == "slow-ack"
    assert not reply_task.done()
    _, _, body = await reply_task
    assert body["retCode"] == 0 and body["result"]["orderLinkId"] == "slow-ack"


async def test_ws_disconnects(public_ws, private_ws, admin, sim) -> None:
    public = await public_ws()
    private = await private_ws()
    closed = await admin("POST", "/sim/ws/disconnect", {"scope": "all"})
    assert closed["closed"] == 2
    for ws in (public, private):
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv(within=2)
    await admin("POST", "/sim/faults", {"ws_disconnect_rate": 1.0})
    again = await public_ws()
    with pytest.raises(websockets.ConnectionClosed):
        await again.recv_until(lambda m: False, within=3)


async def _deltas(server: SimServer, seconds: float) -> list[dict]:
    conn = await websockets.connect(f"{server.ws_url}/v5/public/linear")
    await conn.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}))
    out = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (remaining := end - loop.time()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(conn.recv(), remaining))
        except TimeoutError:
            break
        if "topic" in message:
            out.append(message)
    await conn.close()
    return out


@pytest.mark.parametrize("fault", ["delta_drop_rate", "delta_duplicate_rate", "book_reset_rate"])
async def test_book_stream_faults_configured_at_start(fault: str) -> None:
    config = SimConfig(port=0, symbols=("BTCUSDT",), faults=FaultConfig(**{fault: 0.3}))
    server = SimServer(config, lambda v: LadderMarket(v.engine, seed=3, events_per_second=300))
    async with server:
        messages = await _deltas(server, 1.0)
    us = [m["data"]["u"] for m in messages]
    steps = [b - a for a, b in itertools.pairwise(us)]
    assert len(messages) > 10
    if fault == "delta_drop_rate":
        assert any(s > 1 for s in steps) and all(s >= 1 for s in steps)  # gaps, never repeats
    elif fault == "delta_duplicate_rate":
        assert 0 in steps and all(s in (0, 1) for s in steps)  # repeats, never gaps
    else:
        resets = [m for m in messages[1:] if m["data"]["u"] == 1]
        assert resets and all(m["type"] == "snapshot" for m in resets)


async def test_true_book_and_ground_truth(admin, market, sim) -> None:
    book = await admin("GET", "/sim/book?symbol=BTCUSDT&depth=3")
    assert book["b"] == [["63999.90", "0.010"], ["63999.80", "0.020"], ["63999.70", "0.030"]]
    assert book["checksum"] == sim.venue.engine.books["BTCUSDT"].checksum(3) and book["orders"] == 20
    assert "NOPE" in (await admin("GET", "/sim/book?symbol=NOPE", status=400))["error"]
    assert await admin("GET", "/sim/ground-truth") == []
    market.truth.append({"kind": "spoof", "symbol": "BTCUSDT", "start": 1, "notional": Decimal("60000")})
    assert await admin("GET", "/sim/ground-truth") == [
        {"kind": "spoof", "symbol": "BTCUSDT", "start": 1, "notional": "60000"}
    ]
    marked = await admin("POST", "/sim/mark", {"symbol": "BTCUSDT", "price": "64010.00"})
    assert marked["markPrice"] == "64010.00"
    assert sim.venue.accounts.marks.get("BTCUSDT") == Decimal("64010.00")
