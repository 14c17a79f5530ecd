"""Reconnection: server-forced drops, dead sockets (no pong, silence), resubscribe, re-auth, hook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import ServerConnection

from schemas.enums import OrderType, Side
from trading_daemon.errors import Backoff
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPrivateWebSocket, BybitPublicWebSocket

from .conftest import Admin, Collector, wait_for


async def test_public_reconnect_resubscribes_and_calls_hook(
    public_ws: Callable[..., BybitPublicWebSocket], admin: Admin
) -> None:
    hook_calls: list[int] = []
    books = Collector()

    async def on_reconnect() -> None:
        hook_calls.append(len(books.messages))

    client = public_ws(on_reconnect=on_reconnect)
    await client.start()
    await client.subscribe_orderbook("BTCUSDT", books)
    await client.subscribe_tickers("ETHUSDT", books)
    await wait_for(lambda: sum(m.type == "snapshot" for m in books.messages) == 2)

    closed = await admin("POST", "/sim/ws/disconnect", {"scope": "public"})
    assert closed["closed"] == 1
    await wait_for(lambda: bool(hook_calls))
    assert client.reconnects == 1 and client.topics == ["orderbook.50.BTCUSDT", "tickers.ETHUSDT"]
    # Both topics were resubscribed before the hook ran: fresh snapshots follow on the new connection.
    await wait_for(lambda: sum(m.type == "snapshot" for m in books.messages) == 4)
    snapshots = [m for m in books.messages if m.type == "snapshot"]
    assert {m.topic for m in snapshots[2:]} == {"orderbook.50.BTCUSDT", "tickers.ETHUSDT"}
    assert client.connected


async def test_disconnect_hook_runs_before_the_resubscription(
    public_ws: Callable[..., BybitPublicWebSocket], admin: Admin
) -> None:
    """`on_disconnect` runs once per drop, before anything of the new connection is dispatched, so the
    snapshot that follows the resubscription finds the owner's state already marked stale."""
    events: list[str] = []

    def on_book(message: Any) -> None:
        if message.type == "snapshot":
            events.append("snapshot")

    client = public_ws(
        on_disconnect=lambda: events.append("disconnected"), on_reconnect=lambda: events.append("reconnected")
    )
    await client.start()
    await client.subscribe_orderbook("BTCUSDT", on_book)
    await wait_for(lambda: events == ["snapshot"])
    for n in range(1, 4):  # the order holds every time, not by luck of scheduling
        await admin("POST", "/sim/ws/disconnect", {"scope": "public"})
        await wait_for(lambda n=n: events.count("snapshot") == n + 1 and events.count("reconnected") == n)
    assert [e for e in events if e != "reconnected"] == ["snapshot"] + ["disconnected", "snapshot"] * 3


async def test_private_reconnect_reauthenticates(
    private_ws: Callable[..., BybitPrivateWebSocket], admin: Admin, rest: BybitRestClient
) -> None:
    hooks: list[str] = []
    orders = Collector()
    client = private_ws(on_reconnect=lambda: hooks.append("reconciled"))
    await client.start()
    await client.subscribe_private(on_order=orders)

    await admin("POST", "/sim/ws/disconnect", {"scope": "private"})
    await wait_for(lambda: hooks == ["reconciled"])
    await client.wait_connected(2)

    await rest.place_order(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.01"),
        price=Decimal("63000"),
        order_link_id="after-reconnect",
    )
    message = await orders.wait(lambda m: m.data[0].orderLinkId == "after-reconnect")
    assert message.data[0].orderStatus == "New"


@pytest.fixture
async def mute_server() -> AsyncIterator[tuple[str, list[ServerConnection]]]:
    """A WebSocket server that accepts connections and never says anything (a dead peer)."""
    connections: list[ServerConnection] = []

    async def handler(conn: ServerConnection) -> None:
        connections.append(conn)
        await conn.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}", connections


async def test_missing_pong_forces_reconnect(mute_server: tuple[str, list[ServerConnection]]) -> None:
    url, connections = mute_server
    client = BybitPublicWebSocket(
        url, ping_interval_s=0.1, pong_timeout_s=0.2, backoff_initial_s=0.02, backoff_max_s=0.05
    )
    await client.start()
    try:
        await wait_for(lambda: len(connections) >= 2, within=3)
        assert client.reconnects >= 1
    finally:
        await client.close()


async def test_silence_forces_reconnect(mute_server: tuple[str, list[ServerConnection]]) -> None:
    url, connections = mute_server
    client = BybitPublicWebSocket(
        url, ping_interval_s=60, silence_timeout_s=0.2, backoff_initial_s=0.02, backoff_max_s=0.05
    )
    await client.start()
    try:
        await wait_for(lambda: len(connections) >= 2, within=3)
    finally:
        await client.close()
    await asyncio.sleep(0.05)
    assert not client.connected


def test_reconnects_wait_with_the_daemons_backoff() -> None:
    """The bounds and jitter of `Backoff` itself are tested in tests/trading_daemon/test_errors.py."""
    client = BybitPublicWebSocket("ws://127.0.0.1:1", backoff_initial_s=0.5, backoff_max_s=30)
    assert client.backoff == Backoff(0.5, 30)
