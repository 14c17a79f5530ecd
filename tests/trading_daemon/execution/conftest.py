"""Fixtures: execution against the real paper exchange (a replenishing ladder) and a real, migrated Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from psycopg_pool import AsyncConnectionPool

from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.settings import ExecutionConfig, code_defaults
from schemas.enums import OrderType, Side, TimeInForce
from schemas.trading import TradeIntent
from tests.trading_daemon.exchange.conftest import API_KEY, API_SECRET, make_config, make_http, ws_options
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.execution.runtime import Credentials, ExecutionRuntime

RECV_WINDOW_MS = 1500  # short, so that the ambiguous-outcome rule's wait is short in tests


def exec_config(**overrides: Any) -> ExecutionConfig:
    base = dataclasses.replace(
        code_defaults().execution,
        trading_enabled=True,
        reconcile_interval_s=3600.0,
        recv_window_margin_ms=300,
        reconciliation_retry_delay_s=0.2,
        order_poll_interval_s=0.3,
        post_only_timeout_s=2.0,
    )
    return dataclasses.replace(base, **overrides)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.05)


async def start_venue(**overrides: Any) -> SimServer:
    config = make_config(symbols=("BTCUSDT",), **overrides)
    server = SimServer(
        config, lambda venue: LadderMarket(venue.engine, events_per_second=4.0, trade_share=0.2)
    )
    await server.start()
    deadline = time.monotonic() + 5
    while server.venue.engine.books["BTCUSDT"].best_ask() is None:
        if time.monotonic() > deadline:
            raise AssertionError("the ladder was not seeded")
        await asyncio.sleep(0.02)
    return server


@pytest.fixture
async def venue() -> AsyncIterator[SimServer]:
    server = await start_venue()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def admin(venue: SimServer) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            async with session.request(method, f"{venue.base_url}{path}", json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        yield call


def make_rest(venue: SimServer, **kwargs: Any) -> BybitRestClient:
    options = {"recv_window_ms": RECV_WINDOW_MS, "timeout_s": 2.0, **kwargs}
    return BybitRestClient(make_http(venue.base_url, **options))


def make_runtime(
    venue: SimServer, db: Database, pool: AsyncConnectionPool, rest: BybitRestClient, **config: Any
) -> ExecutionRuntime:
    return ExecutionRuntime(
        exec_config(**config),
        db=db,
        pool=pool,
        rest=rest,
        ws_private_url=f"{venue.ws_url}/v5/private",
        credentials=Credentials(API_KEY, API_SECRET),
        symbols=["BTCUSDT"],
        ws_options=ws_options(),
    )


@pytest.fixture
async def runtime(
    venue: SimServer, db: Database, pool: AsyncConnectionPool
) -> AsyncIterator[ExecutionRuntime]:
    """Execution opened (lock taken, stream up, reconciled once) against the paper exchange."""
    rest = make_rest(venue)
    rt = make_runtime(venue, db, pool, rest)
    await rt.open()
    try:
        yield rt
    finally:
        await rt.close()
        await rest.close()


def market_intent(intent_id: str, side: Side = Side.BUY, *, qty: str = "0.01", reduce_only: bool = False,
                  **kw: Any) -> TradeIntent:  # fmt: skip
    return TradeIntent(
        intent_id=intent_id, symbol="BTCUSDT", side=side, order_type=OrderType.MARKET, ts=int(time.time() * 1000),
        quantity=Decimal(qty), reduce_only=reduce_only, time_in_force=TimeInForce.IOC, source="test",
        reason=f"test {intent_id}", context={"signal": {"type": "test", "strength": 0.9}}, **kw,
    )  # fmt: skip
