"""Fixtures: the real paper exchange on an ephemeral port, and the daemon's client pointed at it.

The paper exchange is the client's counterpart only: nothing of its signing or wire code is used by
the client, so the two check each other (docs/architecture.md, "Import rules"). ``ScriptedMarket`` seeds a static ladder of
resting orders around fixed mid prices (owned by a third account), so books and fills are predictable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from exchange_sim.config import AccountConfig, SimConfig
from exchange_sim.server.app import SimServer
from tests.fixtures.markets import ScriptedMarket
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPrivateWebSocket, BybitPublicWebSocket

API_KEY = "XkTestApiKey0001"
API_SECRET = "TestSecretNotReal0123456789abcdefABCDEF"
OTHER_KEY = "XkTestApiKey0002"
OTHER_SECRET = "AnotherSecretNotReal0123456789abcdef"


def make_config(**overrides: Any) -> SimConfig:
    """Ephemeral port, two accounts, BTCUSDT and ETHUSDT."""
    base: dict[str, Any] = {
        "port": 0,
        "symbols": ("BTCUSDT", "ETHUSDT"),
        "accounts": (
            AccountConfig(API_KEY, API_SECRET, Decimal(100_000)),
            AccountConfig(OTHER_KEY, OTHER_SECRET, Decimal(50_000)),
        ),
    }
    base.update(overrides)
    return SimConfig(**base)


async def wait_for(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Poll `predicate` until it holds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def start_sim(config: SimConfig) -> SimServer:
    """Start a paper exchange and wait until the ladder is seeded."""
    server = SimServer(config, lambda venue: ScriptedMarket(venue.engine))
    await server.start()
    await wait_for(lambda: server.venue.engine.books["BTCUSDT"].best_bid() is not None)
    return server


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A running paper exchange."""
    server = await start_sim(make_config())
    try:
        yield server
    finally:
        await server.stop()


def make_http(base_url: str, **kwargs: Any) -> BybitHttpClient:
    """A client with test-friendly timing (short timeouts, fast backoff)."""
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "timeout_s": 3.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    options.update(kwargs)
    return BybitHttpClient(base_url, **options)


@pytest.fixture
async def http(sim: SimServer) -> AsyncIterator[BybitHttpClient]:
    """The daemon's HTTP transport for the main account."""
    client = make_http(sim.base_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def rest(http: BybitHttpClient) -> BybitRestClient:
    """The daemon's REST client for the main account."""
    return BybitRestClient(http)


Admin = Callable[..., Awaitable[Any]]


@pytest.fixture
async def admin(sim: SimServer) -> AsyncIterator[Admin]:
    """`await admin("POST", "/sim/faults", {...})`: the paper exchange's admin API."""
    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            async with session.request(method, f"{sim.base_url}{path}", json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        yield call


def ws_options() -> dict[str, Any]:
    """Fast reconnects for tests."""
    return {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "ack_timeout_s": 3.0}


@pytest.fixture
async def public_ws(sim: SimServer) -> AsyncIterator[Callable[..., BybitPublicWebSocket]]:
    """A factory of public stream clients, closed at teardown."""
    made: list[BybitPublicWebSocket] = []

    def make(**kwargs: Any) -> BybitPublicWebSocket:
        client = BybitPublicWebSocket(f"{sim.ws_url}/v5/public/linear", **{**ws_options(), **kwargs})
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
async def private_ws(sim: SimServer) -> AsyncIterator[Callable[..., BybitPrivateWebSocket]]:
    """A factory of private stream clients, closed at teardown."""
    made: list[BybitPrivateWebSocket] = []

    def make(**kwargs: Any) -> BybitPrivateWebSocket:
        options = {"api_key": API_KEY, "api_secret": API_SECRET, **ws_options(), **kwargs}
        client = BybitPrivateWebSocket(f"{sim.ws_url}/v5/private", **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


class Collector:
    """A handler that keeps every message and lets a test wait for one."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def __call__(self, message: Any) -> None:
        self.messages.append(message)

    async def wait(self, predicate: Callable[[Any], bool], within: float = 3.0) -> Any:
        """The first message (seen so far or arriving) that satisfies `predicate`."""
        deadline = time.monotonic() + within
        while True:
            for message in self.messages:
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching message among {len(self.messages)}")
            await asyncio.sleep(0.01)
