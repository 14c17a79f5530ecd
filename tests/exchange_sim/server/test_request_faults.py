"""Scripted request faults (``request_faults`` of ``/sim/faults``) as a client experiences them: a create
whose reply is lost after it executed, a create lost before it executed, a create that arrives late."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from exchange_sim.config import RequestFault
from exchange_sim.server.faults import FaultInjector

CREATE = "/v5/order/create"
ORDER = {
    "category": "linear",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "orderType": "Limit",
    "qty": "0.010",
    "price": "63000.00",
}


async def _create(
    rest, session, sim, link_id: str, timeout_s: float = 2.0, recv_window: str = "5000"
) -> dict:
    """POST a create signed like pybit; returns the envelope or raises what the transport raised."""
    body = json.dumps({**ORDER, "orderLinkId": link_id})
    async with session.post(
        f"{sim.base_url}{CREATE}",
        data=body,
        headers=rest.headers(body, recv_window=recv_window),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as resp:
        return await resp.json()


async def _exists(rest, link_id: str) -> bool:
    found = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": link_id})
    return bool(found["list"])


async def test_lost_reply_executes_then_drops_the_connection(rest, admin, session, sim) -> None:
    await admin("POST", "/sim/faults", {"request_faults": [{"path": CREATE, "mode": "lost_reply"}]})
    with pytest.raises(aiohttp.ClientConnectionError):
        await _create(rest, session, sim, "lost-reply-1")
    assert await _exists(rest, "lost-reply-1")  # the order is there; only its answer was lost
    assert (await admin("GET", "/sim/faults"))["request_faults"][0]["count"] == 0
    reply = await _create(rest, session, sim, "lost-reply-2")  # the fault was for one request only
    assert reply["retCode"] == 0


async def test_lost_reply_held_past_the_client_timeout(rest, admin, session, sim) -> None:
    fault = {"path": CREATE, "mode": "lost_reply", "hold_ms": 1000}
    await admin("POST", "/sim/faults", {"request_faults": [fault]})
    with pytest.raises(TimeoutError):
        await _create(rest, session, sim, "lost-reply-3", timeout_s=0.2)
    assert await _exists(rest, "lost-reply-3")


async def test_lost_request_is_never_executed(rest, admin, session, sim) -> None:
    fault = {"path": CREATE, "mode": "lost_request", "hold_ms": 300}
    await admin("POST", "/sim/faults", {"request_faults": [fault]})
    with pytest.raises(TimeoutError):
        await _create(rest, session, sim, "lost-request-1", timeout_s=0.1)
    await asyncio.sleep(0.4)
    assert not await _exists(rest, "lost-request-1")
    await admin("POST", "/sim/faults", {"request_faults": [{**fault, "hold_ms": 0}]})
    with pytest.raises(aiohttp.ClientConnectionError):
        await _create(rest, session, sim, "lost-request-2")
    assert not await _exists(rest, "lost-request-2")


async def test_late_request_executes_after_the_client_gave_up(rest, admin, session, sim) -> None:
    fault = {"path": CREATE, "mode": "late_request", "delay_ms": 1_200}
    await admin("POST", "/sim/faults", {"request_faults": [fault]})
    with pytest.raises(TimeoutError):
        await _create(rest, session, sim, "late-1", timeout_s=0.2)
    assert not await _exists(rest, "late-1")  # not yet arrived
    for _ in range(60):  # arrives within its receive window: executed late
        if await _exists(rest, "late-1"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the late request was never executed")


async def test_late_request_past_its_receive_window_is_refused(rest, admin, session, sim) -> None:
    fault = {"path": CREATE, "mode": "late_request", "delay_ms": 800}
    await admin("POST", "/sim/faults", {"request_faults": [fault]})
    with pytest.raises(TimeoutError):
        await _create(rest, session, sim, "late-2", timeout_s=0.2, recv_window="500")
    await asyncio.sleep(1.0)
    assert not await _exists(rest, "late-2")  # 10002 on arrival: a late request can no longer be accepted
    # A client still waiting sees the refusal itself.
    await admin("POST", "/sim/faults", {"request_faults": [{**fault, "delay_ms": 700}]})
    reply = await _create(rest, session, sim, "late-3", recv_window="500")
    assert reply["retCode"] == 10002


async def test_skip_and_other_paths(rest, admin, session, sim) -> None:
    await admin(
        "POST", "/sim/faults", {"request_faults": [{"path": CREATE, "mode": "lost_request", "skip": 1}]}
    )
    assert (await _create(rest, session, sim, "skip-1"))["retCode"] == 0
    await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})  # other path
    with pytest.raises(aiohttp.ClientConnectionError):
        await _create(rest, session, sim, "skip-2")
    assert not await _exists(rest, "skip-2")


async def test_request_faults_are_validated(admin) -> None:
    for bad, named in (
        ({"path": CREATE, "mode": "gone"}, "mode"),
        ({"path": "order", "mode": "lost_reply"}, "path"),
        ({"path": CREATE, "mode": "late_request"}, "delay_ms"),
        ({"path": CREATE, "mode": "lost_reply", "count": -1}, "count"),
        ({"path": CREATE, "mode": "lost_reply", "colour": 1}, "colour"),
    ):
        error = await admin("POST", "/sim/faults", {"request_faults": [bad]}, status=400)
        assert named in error["error"], error
    assert (await admin("POST", "/sim/faults/reset"))["request_faults"] == []


def test_rates_are_deterministic_under_the_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        injector = FaultInjector(seed=seed)
        injector.config.request_faults = (RequestFault(CREATE, "lost_reply", count=100, rate=0.5),)
        return [injector.request_fault(CREATE) is not None for _ in range(40)]

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 5 < sum(pattern(7)) < 35
