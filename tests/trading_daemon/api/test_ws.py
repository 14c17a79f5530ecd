"""`/ws` on a real uvicorn server: the first message must carry a valid access token (the real AuthService)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from infra.settings import load_settings
from tests.trading_daemon.api.conftest import serving
from trading_daemon.api.auth import AuthService
from trading_daemon.api.hub import Hub
from trading_daemon.api.routes import ws as ws_route

PASSWORD = "correct horse battery staple"


@dataclass
class _Daemon:
    """What the route reads of `app.state.daemon` (a `DaemonContext` in the daemon)."""

    hub: Hub | None


@dataclass
class Api:
    url: str
    hub: Hub
    auth: AuthService
    token: str


@pytest.fixture
async def api(pool: AsyncConnectionPool, tmp_path: Path) -> AsyncIterator[Api]:
    config = load_settings(_env_file=None, APP_PASSWORD=PASSWORD, VAR_DIR=str(tmp_path)).api
    auth = AuthService(config, pool, bcrypt_rounds=4)
    await auth.open()
    token = (await auth.login(config.admin_username, PASSWORD, "test")).access_token
    hub = Hub(64)
    app = FastAPI()
    app.include_router(ws_route.router)
    app.state.auth = auth
    app.state.daemon = _Daemon(hub)
    async with serving(app) as url:
        yield Api(url, hub, auth, token)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10.0))
    return message


async def refused(ws: ClientConnection) -> tuple[str, int]:
    """The error the server sent, and the code it closed with."""
    error = await recv(ws)
    assert error["topic"] == "error"
    with pytest.raises(ConnectionClosed) as closed:
        await recv(ws)
    assert closed.value.rcvd is not None
    return error["data"]["error"], closed.value.rcvd.code


async def test_a_good_token_in_the_first_message_gets_the_hello(api: Api) -> None:
    async with connect(api.url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": api.token}))
        hello = await recv(ws)
        assert hello["topic"] == "hello"
        assert (hello["data"]["username"], hello["data"]["role"]) == ("admin", "admin")
        api.hub.publish("bot", {"state": "running"})
        assert (await recv(ws))["data"] == {"state": "running"}
    async with asyncio.timeout(5):  # the server sees the client leave
        while api.hub.stats()["clients"]:  # noqa: ASYNC110 (the hub has no event for a client leaving)
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("first", "error"),
    [
        ({"op": "auth", "token": "not.a.jwt"}, "authentication failed: "),
        ({"op": "auth", "token": ""}, "the first message must authenticate"),
        ({"op": "subscribe", "topics": ["book"]}, "the first message must authenticate"),
        ("not json", "the first message must authenticate"),
    ],
)
async def test_anything_but_a_valid_token_first_is_closed_4401(api: Api, first: Any, error: str) -> None:
    async with connect(api.url) as ws:
        await ws.send(first if isinstance(first, str) else json.dumps(first))
        text, code = await refused(ws)
    assert error in text and code == 4401
    assert api.hub.stats()["clients"] == 0


async def test_a_refresh_token_is_no_access_token(
    api: Api, pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    config = load_settings(_env_file=None, APP_PASSWORD=PASSWORD, VAR_DIR=str(tmp_path)).api
    refresh = (await api.auth.login(config.admin_username, PASSWORD, "test")).refresh_token
    async with connect(api.url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": refresh}))
        text, code = await refused(ws)
    assert text.startswith("authentication failed") and code == 4401


@pytest.mark.slow  # AUTH_TIMEOUT_S
async def test_no_auth_message_within_the_timeout_is_closed_4401(api: Api) -> None:
    began = time.monotonic()
    async with connect(api.url) as ws:
        text, code = await refused(ws)
    assert code == 4401 and f"no auth message within {ws_route.AUTH_TIMEOUT_S:g} s" in text
    assert time.monotonic() - began >= ws_route.AUTH_TIMEOUT_S - 0.5


async def test_a_daemon_without_a_hub_says_so(api: Api) -> None:
    app = FastAPI()
    app.include_router(ws_route.router)
    app.state.auth = api.auth
    app.state.daemon = _Daemon(None)
    async with serving(app) as url, connect(url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": api.token}))
        text, code = await refused(ws)
    assert "the live feed is not running" in text and code == 1011


async def test_a_password_change_ends_the_feed_of_older_tokens(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_route, "TOKEN_RECHECK_S", 0.2)
    async with connect(api.url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": api.token}))
        assert (await recv(ws))["topic"] == "hello"
        grant = await api.auth.verify_grant(api.token)
        await api.auth.change_password(grant.principal, PASSWORD, "another long password")
        error, code = await refused(ws)
    assert code == 4401 and "authenticate again" in error
