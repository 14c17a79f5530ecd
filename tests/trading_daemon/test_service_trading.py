"""The whole daemon trading the paper exchange's synthetic market: record, decide, trade.

`depthcharge daemon` with TRADING_ENABLED against the synthetic market (regimes, manipulation episodes)
for a few minutes, serving a promoted model: it must run without an error, decide every row, send orders
through execution, and leave the database agreeing with the exchange (a fresh reconciliation finds nothing
to correct). The consensus and the cost filter are relaxed so that a few minutes see trades: at the
production costs this market gives about one consensus worth its fees in three minutes (one CI run saw
none, and the test failed on no intent at all); with no fees in the strategies' cost model and their prior
trusted over the few outcomes measured in the run, it gives a dozen. The paper exchange still charges its
fees, and the cost filter has tests of its own (tests/trading_daemon/strategies).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import structlog
from psycopg_pool import AsyncConnectionPool

from exchange_sim.config import AccountConfig, SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories.signals import SignalRepository
from infra.settings import load_settings
from ml.registry import ModelRegistry
from tests.trading_daemon.exchange.conftest import API_KEY, API_SECRET
from tests.trading_daemon.ml_gate.models import promote, register
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.execution.runtime import Credentials, ExecutionRuntime
from trading_daemon.service import run_service

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SECONDS = 180


@pytest.mark.slow(seconds=180)
async def test_the_daemon_trades_the_synthetic_market_and_every_order_reconciles(
    db: Database, pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    server = SimServer(
        SimConfig(port=0, symbols=SYMBOLS, accounts=(AccountConfig(API_KEY, API_SECRET),)),
        lambda venue: build_market(venue.engine, list(venue.instruments), seed=42),
    )
    await server.start()
    settings = load_settings(
        DATABASE_URL=db.conninfo, VAR_DIR=str(tmp_path), TRADING_PAIRS=",".join(SYMBOLS),
        BYBIT_REST_URL=server.base_url, BYBIT_WS_PUBLIC_URL=f"{server.ws_url}/v5/public/linear",
        BYBIT_WS_PRIVATE_URL=f"{server.ws_url}/v5/private", BYBIT_API_KEY=API_KEY, BYBIT_API_SECRET=API_SECRET,
        TRADING_ENABLED=True, MIN_STRATEGIES=1, MIN_CONSENSUS_CONFIDENCE=0.5, ML_MIN_VALIDATED_CONFIDENCE=0.3,
        RECONCILE_INTERVAL_S=30, TAKER_FEE_BPS=0, MAKER_FEE_BPS=0, EDGE_PRIOR_SIGNALS=1000,
        # The suite's other worker may be training models meanwhile: under that load an inference now and
        # then takes over the 250 ms default, and the row is decided without the model. In one CI run every
        # stored decision was such a row. This test is about the model being served, not the latency
        # budget; 1 s stays inside DECISION_MAX_LAG_MS.
        ML_INFERENCE_TIMEOUT_MS=1000,
    )  # fmt: skip
    registry = ModelRegistry(db, settings.models_dir)
    model = register(registry, 1)
    promote(db, model.version)
    stop = asyncio.Event()
    try:
        with structlog.testing.capture_logs() as logs:
            task = asyncio.create_task(run_service(settings, stop, install_signal_handlers=False))
            await asyncio.sleep(SECONDS)
            stop.set()
            report = await asyncio.wait_for(task, 60)
        reconciliation = await _fresh_reconciliation(server, db, pool)
    finally:
        await server.stop()

    errors = [e for e in logs if e.get("log_level") in ("error", "critical")]
    assert errors == [], errors[:5]
    decisions, execution = report.decisions, report.execution
    assert decisions is not None and execution is not None
    engine = decisions["engine"]
    assert engine["errors"] == 0 and engine["rows"] >= len(SYMBOLS) * (SECONDS - 20)
    assert decisions["ml_gate"]["production"]["version"] == model.version
    assert decisions["ml_gate"]["row_predictions"] > 0
    assert engine["intents"] > 0, engine["outcomes"]
    assert execution["manager"]["sent"] > 0 and execution["reconciled"]
    assert execution["last_reconciliation"]["success"]
    assert reconciliation["success"] and reconciliation["discrepancies"] == 0, reconciliation
    stored = await SignalRepository(pool).recent(source="decision", limit=1000)
    assert stored and any(s.model_version == model.version for s in stored)


async def _fresh_reconciliation(server: SimServer, db: Database, pool: AsyncConnectionPool) -> dict[str, Any]:
    """What a new execution process finds when it compares the database with the exchange."""
    rest = BybitRestClient(BybitHttpClient(server.base_url, api_key=API_KEY, api_secret=API_SECRET))
    runtime = ExecutionRuntime(
        load_settings(TRADING_ENABLED=True).execution, db=db, pool=pool, rest=rest,
        ws_private_url=f"{server.ws_url}/v5/private", credentials=Credentials(API_KEY, API_SECRET),
        symbols=list(SYMBOLS),
    )  # fmt: skip
    try:
        await runtime.open()
        assert runtime.first_reconciliation is not None
        return runtime.first_reconciliation.summary()
    finally:
        await runtime.close()
        await rest.close()
