"""A running daemon with its API, trading the paper exchange, shared by the API tests of a module.

`live_api` (module scope): the paper exchange with the synthetic market, a migrated database of its own on
the embedded server, a tiny CNN-LSTM promoted to production, and `run_service` with TRADING_ENABLED and the
API on a free port. Users: `admin` (from APP_PASSWORD), `trader` and `viewer` (created through the API).

    live_api.url                 the API's base URL
    live_api.ctx                 the daemon's DaemonContext (its components, for arranging and checking)
    live_api.client("trader")    an httpx.AsyncClient logged in with that role (None: no token)
    live_api.token("viewer")     that role's access token
    live_api.sim                 the SimServer, live_api.db the Database
    live_api.resting_order()     places a PostOnly buy far below the market through execution; its orderLinkId
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from exchange_sim.config import AccountConfig, SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from infra.db import migrate
from infra.db.connection import Database
from infra.db.embedded import EmbeddedPostgres
from infra.settings import load_settings
from ml.registry import ModelRegistry
from schemas.enums import OrderStatus, OrderType, Side, TimeInForce
from schemas.trading import TradeIntent
from tests.conftest import create_database, drop_database
from tests.trading_daemon.exchange.conftest import API_KEY, API_SECRET
from tests.trading_daemon.ml_gate.models import promote, register
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.server import ApiServer
from trading_daemon.service import ServiceReport, run_service

SYMBOLS = ("BTCUSDT", "ETHUSDT")
ADMIN_PASSWORD = "admin-password-for-tests-1"
PASSWORDS = {
    "admin": ADMIN_PASSWORD,
    "trader": "trader-password-for-tests",
    "viewer": "viewer-password-for-tests",
}
SECRET_KEY = "a-secret-key-for-the-api-tests-that-is-long-enough-0123"


@dataclass
class LiveApi:
    url: str
    ctx: DaemonContext
    sim: SimServer
    db: Database
    tokens: dict[str, str] = field(default_factory=dict)
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def token(self, role: str) -> str:
        return self.tokens[role]

    def client(self, role: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role is not None else {}
        client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)
        self._clients.append(client)
        return client

    async def resting_order(self, symbol: str = "BTCUSDT") -> str:
        """A PostOnly buy 5 % below the mid: it rests on the exchange until someone cancels it."""
        execution = self.ctx.execution
        assert execution is not None
        mid = self.ctx.feed.builders[symbol].book.mid()
        assert mid is not None, "no book yet"
        price = Decimal(str(round(mid * 0.95, 1)))
        result = await execution.manager.submit(
            TradeIntent(
                intent_id=f"test-{uuid.uuid4().hex[:12]}", symbol=symbol, side=Side.BUY, order_type=OrderType.LIMIT,
                ts=self.ctx.exchange_now_ms(), notional=Decimal(200), price=price,
                time_in_force=TimeInForce.POST_ONLY, source="test", reason="a resting order for the API tests",
            )
        )  # fmt: skip
        if self.ctx.decisions is not None:  # as the decision engine does once the order is visible
            self.ctx.decisions.risk.release(result.intent_id)
        assert result.accepted and result.client_order_id, result
        coid = result.client_order_id
        for _ in range(200):  # the exchange's acknowledgement reaches the ledger over the private stream
            order = await execution.ledger.get(coid)
            if order is not None and order.status is OrderStatus.PLACED:
                return coid
            await asyncio.sleep(0.05)
        raise AssertionError(f"order {coid} was not placed: {order}")


@contextlib.asynccontextmanager
async def running_daemon(
    embedded_server: EmbeddedPostgres,
    var: Path,
    *,
    roles: tuple[str, ...] = ("trader", "viewer"),
    **settings: object,
) -> AsyncIterator[LiveApi]:
    """The paper exchange, a database of its own, a promoted tiny model and the daemon with its API, ready
    (reconciled, books two-sided); the admin and the users of `roles` logged in. `settings` are extra."""
    server_db = Database(embedded_server.uri("postgres"), "embedded", embedded_server)
    name = f"dc_api_{uuid.uuid4().hex[:10]}"
    db = create_database(server_db, name)
    migrate.upgrade(db, retention_days=30)
    sim = SimServer(
        SimConfig(port=0, symbols=SYMBOLS, accounts=(AccountConfig(API_KEY, API_SECRET),)),
        lambda venue: build_market(venue.engine, list(venue.instruments), seed=7),
    )
    await sim.start()
    env: dict[str, object] = dict(
        DATABASE_URL=db.conninfo, VAR_DIR=str(var), TRADING_PAIRS=",".join(SYMBOLS),
        BYBIT_REST_URL=sim.base_url, BYBIT_WS_PUBLIC_URL=f"{sim.ws_url}/v5/public/linear",
        BYBIT_WS_PRIVATE_URL=f"{sim.ws_url}/v5/private", BYBIT_API_KEY=API_KEY, BYBIT_API_SECRET=API_SECRET,
        TRADING_ENABLED=True, API_ENABLED=True, API_PORT=0, APP_PASSWORD=ADMIN_PASSWORD, SECRET_KEY=SECRET_KEY,
        LOGIN_ATTEMPTS_PER_MINUTE=1000, DASHBOARD_DIR=str(var / "no-dashboard"),
        POST_ONLY_TIMEOUT_S=3600,  # a test's resting order rests until the test closes it, never re-priced
    )  # fmt: skip
    config = load_settings(_env_file=None, **(env | settings))
    promote(db, register(ModelRegistry(db, config.models_dir), 1).version)
    stop = asyncio.Event()
    seen: dict[str, object] = {}

    def on_api(ctx: DaemonContext, url: str) -> None:
        seen.update(ctx=ctx, url=url)

    task: asyncio.Task[ServiceReport] = asyncio.create_task(
        run_service(config, stop, install_signal_handlers=False, on_api=on_api)
    )
    live: LiveApi | None = None
    try:
        for _ in range(600):
            ctx = seen.get("ctx")
            if (
                isinstance(ctx, DaemonContext)
                and ctx.ready
                and ctx.execution is not None
                and ctx.execution.account.reconciled()
                and all(ctx.feed.builders[s].book.mid() for s in SYMBOLS)
            ):
                break
            if task.done():
                task.result()  # start-up failed: show why
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the daemon did not become ready within 60 s")
        live = LiveApi(url=str(seen["url"]), ctx=seen["ctx"], sim=sim, db=db)  # type: ignore[arg-type]
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as anon:
            live.tokens["admin"] = await _login(anon, "admin", ADMIN_PASSWORD)
            for role in roles:
                created = await anon.post(
                    "/api/auth/users",
                    json={"username": role, "password": PASSWORDS[role], "role": role},
                    headers={"Authorization": f"Bearer {live.tokens['admin']}"},
                )
                assert created.status_code in (200, 201), created.text
                live.tokens[role] = await _login(anon, role, PASSWORDS[role])
        yield live
    finally:
        if live is not None:
            for client in live._clients:
                await client.aclose()
        stop.set()
        await asyncio.wait_for(task, 60)
        await sim.stop()
        drop_database(server_db, name)


@pytest.fixture(scope="module")
async def live_api(
    embedded_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveApi]:
    async with running_daemon(embedded_server, tmp_path_factory.mktemp("api-var")) as live:
        yield live


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` served by the daemon's own `ApiServer` on a free port; yields the WebSocket URL of /ws."""
    server = ApiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield server.url.replace("http://", "ws://", 1) + "/ws"
    finally:
        await server.stop()


async def _login(client: httpx.AsyncClient, username: str, password: str) -> str:
    response = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
