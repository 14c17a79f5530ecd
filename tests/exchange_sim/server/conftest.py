"""Fixtures for the paper exchange's network tests: a real server on an ephemeral port, and clients.

``sim`` runs :class:`SimServer` on 127.0.0.1 with a static seeded book (``ScriptedMarket``: a ladder of
resting ``seed`` orders, plus whatever a test queues), ``rest`` signs requests like pybit does, and
``public_ws``/``private_ws`` open real ``websockets`` connections.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import websockets

from exchange_sim.config import AccountConfig, SimConfig
from exchange_sim.matching import OrderRequest
from exchange_sim.server.app import SimServer
from exchange_sim.server.signing import sign, ws_auth_signature
from tests.fixtures.markets import ScriptedMarket

API_KEY = "XkTestApiKey0001"
API_SECRET = "TestSecretNotReal0123456789abcdefABCDEF"
OTHER_KEY = "XkTestApiKey0002"
OTHER_SECRET = "AnotherSecretNotReal0123456789abcdef"


def make_config(**overrides: Any) -> SimConfig:
    """A test configuration: ephemeral port, two accounts."""
    base: dict[str, Any] = {
        "port": 0,
        "accounts": (
            AccountConfig(API_KEY, API_SECRET, Decimal(100_000)),
            AccountConfig(OTHER_KEY, OTHER_SECRET, Decimal(50_000)),
        ),
    }
    base.update(overrides)
    return SimConfig(**base)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A running paper exchange with the scripted market."""
    server = SimServer(make_config(), lambda venue: ScriptedMarket(venue.engine))
    async with server:
        await wait_for(lambda: server.venue.engine.books["BTCUSDT"].best_bid() is not None)
        yield server


@pytest.fixture
def market(sim: SimServer) -> ScriptedMarket:
    """The scripted market of ``sim``."""
    assert isinstance(sim.venue.market, ScriptedMarket)
    return sim.venue.market


async def wait_for(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Poll ``predicate`` until true."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class RestClient:
    """Signs and sends Bybit v5 requests the way pybit does (sorted GET params, spaced JSON bodies)."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, key: str = API_KEY, secret: str = API_SECRET
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.key = key
        self.secret = secret
        self.offset_ms = 0

    async def sync(self) -> None:
        """Measure the server clock offset (as a real client does after ``GET /v5/market/time``)."""
        _, _, body = await self.get("/v5/market/time", signed=False)
        self.offset_ms = body["time"] - int(time.time() * 1000)

    def headers(
        self, payload: str, timestamp: int | None = None, recv_window: str = "5000"
    ) -> dict[str, str]:
        """The authentication headers for ``payload``."""
        ts = str(timestamp if timestamp is not None else int(time.time() * 1000) + self.offset_ms)
        return {
            "X-BAPI-API-KEY": self.key,
            "X-BAPI-TIMESTAMP": ts,
            "X-BAPI-RECV-WINDOW": recv_window,
            "X-BAPI-SIGN-TYPE": "2",
            "X-BAPI-SIGN": sign(self.secret, ts + self.key + recv_window + payload),
            "Content-Type": "application/json",
        }

    async def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        signed: bool = True,
    ) -> tuple[int, dict[str, str], Any]:
        """GET with the query string signed exactly as sent."""
        query = "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        headers = self.headers(query) if signed else {}
        async with self.session.get(url, headers=headers) as resp:
            return resp.status, dict(resp.headers), await _decode(resp)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """POST with the JSON body (pybit's spaced serialisation) signed exactly as sent."""
        text = json.dumps(body)
        async with self.session.post(f"{self.base_url}{path}", data=text, headers=self.headers(text)) as resp:
            return resp.status, dict(resp.headers), await _decode(resp)

    async def ok(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send and assert retCode 0; returns ``result``."""
        status, _, body = await (self.get(path, params) if method == "GET" else self.post(path, params))
        assert status == 200, body
        assert body["retCode"] == 0, body
        return body["result"]


async def _decode(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    try:
        return json.loads(text)
    except ValueError:
        return text


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def rest(sim: SimServer, session: aiohttp.ClientSession) -> RestClient:
    """A signed REST client for the main account."""
    return RestClient(session, sim.base_url)


class WsClient:
    """A thin JSON wrapper over a ``websockets`` connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def send(self, message: dict[str, Any]) -> None:
        """Send a JSON request."""
        await self.conn.send(json.dumps(message))

    async def recv(self, within: float = 2.0) -> dict[str, Any]:
        """The next JSON message."""
        return json.loads(await asyncio.wait_for(self.conn.recv(), within))

    async def recv_until(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 3.0
    ) -> dict[str, Any]:
        """Skip messages until one satisfies ``predicate``."""
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("expected message not received")
            message = await self.recv(remaining)
            if predicate(message):
                return message

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Everything received until ``quiet`` seconds pass without a message."""
        out = []
        while True:
            try:
                out.append(await self.recv(quiet))
            except TimeoutError:
                return out


@pytest.fixture
async def public_ws(sim: SimServer) -> AsyncIterator[Callable[[], Awaitable[WsClient]]]:
    """A factory of public WebSocket connections (closed at teardown)."""
    opened: list[Any] = []

    async def connect() -> WsClient:
        conn = await websockets.connect(f"{sim.ws_url}/v5/public/linear")
        opened.append(conn)
        return WsClient(conn)

    yield connect
    for conn in opened:
        await conn.close()


@pytest.fixture
async def private_ws(sim: SimServer) -> AsyncIterator[Callable[..., Awaitable[WsClient]]]:
    """A factory of authenticated private connections subscribed to the four topics."""
    opened: list[Any] = []

    async def connect(authenticate: bool = True, key: str = API_KEY, secret: str = API_SECRET) -> WsClient:
        conn = await websockets.connect(f"{sim.ws_url}/v5/private")
        opened.append(conn)
        client = WsClient(conn)
        if authenticate:
            expires = int(time.time() * 1000) + 1000
            await client.send(
                {"req_id": "auth", "op": "auth", "args": [key, expires, ws_auth_signature(secret, expires)]}
            )
            assert (await client.recv())["success"] is True
            await client.send(
                {"req_id": "sub", "op": "subscribe", "args": ["order", "execution", "position", "wallet"]}
            )
            assert (await client.recv())["success"] is True
        return client

    yield connect
    for conn in opened:
        await conn.close()


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """``await until(predicate, within=3.0)``: poll until the predicate holds."""
    return wait_for


@pytest.fixture
def published(sim: SimServer) -> Callable[[str], Awaitable[None]]:
    """``await published(symbol)``: wait until every depth topic has published the current book (or,
    with nobody subscribed, is idle: it is brought up to date when read)."""

    async def wait(symbol: str = "BTCUSDT") -> None:
        book = sim.venue.engine.books[symbol]
        topics = [t for t in sim.state.public.feed.topics.values() if t.symbol == symbol and t.depth != 1]
        await wait_for(lambda: all(t.idle or t.seq == book.seq for t in topics))

    return wait


@pytest.fixture
def order_request() -> type[OrderRequest]:
    """The engine's order request type, for tests that queue market flow."""
    return OrderRequest


@pytest.fixture
def admin(sim: SimServer, session: aiohttp.ClientSession) -> Callable[..., Awaitable[Any]]:
    """``await admin("POST", "/sim/clock/advance", {"ms": 60000})``: call the admin API, return its JSON."""

    async def call(method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
        async with session.request(method, f"{sim.base_url}{path}", json=body) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()

    return call


@pytest.fixture
def align_minute(admin: Callable[..., Awaitable[Any]], sim: SimServer) -> Callable[[], Awaitable[None]]:
    """``await align_minute()``: jump the exchange clock just past a minute boundary.

    Kline tests then have almost a minute before a candle closes on its own, so they cannot race the
    wall clock. Signed requests need ``rest.sync()`` afterwards (the exchange clock is ahead).
    """

    async def align() -> None:
        now = sim.venue.clock.now()
        await admin("POST", "/sim/clock/advance", {"ms": 60_000 - now % 60_000 + 100})

    return align
