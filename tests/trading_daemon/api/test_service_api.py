"""The API as part of the daemon's life: it starts beside start-up, a recording daemon says so, and an API
that cannot listen stops the daemon with an error naming the setting."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from exchange_sim.config import SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.settings import load_settings
from trading_daemon.api.context import DaemonContext
from trading_daemon.service import run_service

pytestmark = pytest.mark.slow


async def test_a_recording_daemon_serves_status_metrics_and_the_dashboard_placeholder(
    db: Database, tmp_path: Path
) -> None:
    sim = SimServer(
        SimConfig(port=0, symbols=("BTCUSDT",)), lambda v: build_market(v.engine, list(v.instruments), seed=3)
    )
    await sim.start()
    settings = load_settings(
        _env_file=None, DATABASE_URL=db.conninfo, VAR_DIR=str(tmp_path), TRADING_PAIRS="BTCUSDT", API_ENABLED=True, API_PORT=0,
        BYBIT_REST_URL=sim.base_url, BYBIT_WS_PUBLIC_URL=f"{sim.ws_url}/v5/public/linear",
        APP_PASSWORD="recording-admin-password", DASHBOARD_DIR=str(tmp_path / "none"),
    )  # fmt: skip
    seen: dict[str, object] = {}
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(
            settings, stop, install_signal_handlers=False, on_api=lambda c, u: seen.update(ctx=c, url=u)
        )
    )
    try:
        for _ in range(600):
            ctx = seen.get("ctx")
            if isinstance(ctx, DaemonContext) and ctx.ready:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)  # a couple of rows for the screener
        async with httpx.AsyncClient(base_url=str(seen["url"])) as client:
            token = (
                await client.post(
                    "/api/auth/login", json={"username": "admin", "password": "recording-admin-password"}
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            status = (await client.get("/api/bot/status", headers=headers)).json()
            assert status["state"] == "recording" and status["rows_recorded"] > 0
            metrics = (await client.get("/api/data/metrics/BTCUSDT", headers=headers)).json()
            assert metrics["mid"] > 0  # the API's own analyzer when the daemon does not trade
            refused = await client.get("/api/trading/balance", headers=headers)
            assert refused.status_code == 503 and "TRADING_ENABLED" in refused.json()["detail"]
            page = await client.get("/orders")
            assert page.status_code == 503 and "make dashboard" in page.text
            assert (await client.get("/api/nope")).status_code == 404
            assert (await client.get("/ready")).status_code == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await sim.stop()


async def test_an_api_that_cannot_listen_stops_the_daemon_naming_the_setting(
    db: Database, tmp_path: Path
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    sim = SimServer(
        SimConfig(port=0, symbols=("BTCUSDT",)), lambda v: build_market(v.engine, list(v.instruments), seed=3)
    )
    await sim.start()
    settings = load_settings(
        _env_file=None, DATABASE_URL=db.conninfo, VAR_DIR=str(tmp_path), TRADING_PAIRS="BTCUSDT", API_ENABLED=True, API_PORT=port,
        BYBIT_REST_URL=sim.base_url, BYBIT_WS_PUBLIC_URL=f"{sim.ws_url}/v5/public/linear",
    )  # fmt: skip
    try:
        with pytest.raises(OSError, match="API_PORT"):
            await asyncio.wait_for(run_service(settings, asyncio.Event(), install_signal_handlers=False), 60)
    finally:
        taken.close()
        await sim.stop()
