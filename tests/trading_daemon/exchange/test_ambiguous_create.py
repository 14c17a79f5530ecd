"""The ambiguous create (§8.5) against the paper exchange's request faults: a create whose reply is lost,
a create that is lost, a create that arrives after the client gave up. With an `orderLinkId` the client
resends only after the venue, asked once the request's receive window has passed, does not have the order;
exactly one order exists in the end, whatever the fault."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from exchange_sim.server.app import SimServer
from schemas.enums import OrderType, Side
from trading_daemon.exchange.errors import BybitNetworkError
from trading_daemon.exchange.rest import RECV_WINDOW_MARGIN_MS, BybitRestClient

from .conftest import Admin, make_http

RECV_WINDOW_MS = 2_000  # short tests, yet a second of slack either side of the late arrivals below
CREATE = "/v5/order/create"
ORDER = {
    "symbol": "BTCUSDT",
    "side": Side.BUY,
    "order_type": OrderType.LIMIT,
    "qty": Decimal("0.010"),
    "price": Decimal("63000.00"),
}


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[BybitRestClient]:
    """A client that gives up after 0.3 s and signs with a 2 s receive window."""
    async with make_http(sim.base_url, timeout_s=0.3, recv_window_ms=RECV_WINDOW_MS) as http:
        yield BybitRestClient(http)


async def _fault(admin: Admin, mode: str, **options: int) -> None:
    await admin("POST", "/sim/faults", {"request_faults": [{"path": CREATE, "mode": mode, **options}]})


async def _orders_with(client: BybitRestClient, link_id: str) -> list[str]:
    return [o.order_id for o in await client.get_open_orders("BTCUSDT") if o.order_link_id == link_id]


async def test_lost_reply_is_found_not_resent(client: BybitRestClient, admin: Admin) -> None:
    await _fault(admin, "lost_reply")
    started = time.monotonic()
    ack = await client.place_order(**ORDER, order_link_id="amb-lost-reply")
    assert time.monotonic() - started >= RECV_WINDOW_MS / 1000  # looked up only after the window
    assert await _orders_with(client, "amb-lost-reply") == [ack.order_id]


async def test_lost_request_is_resent_once_proven_absent(client: BybitRestClient, admin: Admin) -> None:
    await _fault(admin, "lost_request")
    ack = await client.place_order(**ORDER, order_link_id="amb-lost-request")
    assert await _orders_with(client, "amb-lost-request") == [ack.order_id]


async def test_late_request_is_found_after_the_window(client: BybitRestClient, admin: Admin) -> None:
    await _fault(admin, "late_request", delay_ms=1_000)  # arrives within its 2 s window: executed
    with pytest.raises(BybitNetworkError) as info:
        await client.place_order(**ORDER, order_link_id="amb-late", resend_after_unknown=False)
    request_ms = info.value.request_ms
    assert request_ms is not None
    # Asked at once, the venue does not have it yet: that answer proves nothing.
    assert await client.find_order("BTCUSDT", order_link_id="amb-late") is None
    found = await client.find_order_after_recv_window("BTCUSDT", "amb-late", request_ms)
    assert found is not None and client.http.now_ms() >= request_ms + RECV_WINDOW_MS + RECV_WINDOW_MARGIN_MS
    assert await _orders_with(client, "amb-late") == [found.order_id]


async def test_late_request_with_resend_yields_one_order(client: BybitRestClient, admin: Admin) -> None:
    await _fault(admin, "late_request", delay_ms=1_000)
    ack = await client.place_order(**ORDER, order_link_id="amb-late-2")
    assert await _orders_with(client, "amb-late-2") == [ack.order_id]


async def test_request_too_late_for_its_window_is_never_executed(
    client: BybitRestClient, admin: Admin
) -> None:
    await _fault(admin, "late_request", delay_ms=3_000)  # refused 10002 when it arrives
    ack = await client.place_order(**ORDER, order_link_id="amb-too-late")
    assert await _orders_with(client, "amb-too-late") == [ack.order_id]  # the resend, alone


async def test_without_order_link_id_the_outcome_goes_to_the_caller(
    client: BybitRestClient, admin: Admin
) -> None:
    await _fault(admin, "lost_reply")
    before = client.http.now_ms()
    with pytest.raises(BybitNetworkError) as info:
        await client.place_order(**ORDER)
    assert info.value.request_ms is not None and info.value.request_ms >= before
    assert len(await client.get_open_orders("BTCUSDT")) == 1  # it was placed: never resent blindly
