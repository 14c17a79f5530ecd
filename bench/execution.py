"""Execution latency: a signal's intent to its order request on the wire, beside the bare REST round trip.

Over the paper exchange on loopback and the embedded PostgreSQL, one intent at a time:

* ``signal_to_wire``: `ExecutionManager.submit(intent)` called → the create request's bytes leave for the
  exchange (idempotency claim, the checks, the order, its position and audit row written in one
  transaction, the order marked sent — everything the ambiguous-outcome rule needs before a send);
* ``signal_to_ack``: the same call until it returns, the acknowledgement applied (Placed);
* ``bare_create_round_trip``: `BybitRestClient.place_order` alone, the baseline a client without
  persistence would pay;
* ``fsm_transition_us`` and ``idempotency_*``: the in-memory costs (a transition checked and applied; a
  repeat answered from the cache) and the database lookup behind the cache, which is the cache's
  baseline; the transition's baseline, ``unchecked_transition_us``, is the same reports assigned to a
  plain record without a transition table (what a client that trusts the venue's order would do).

Limit orders far from the touch, so they rest and nothing fills (the same work per intent). The paper
exchange's rate limits are off: one intent at a time on loopback exceeds Bybit's 10 creates per second,
and the waits for the window would be measured instead of the path. Run it alone
with ``.venv/bin/python -c "from bench import execution; print(execution.run())"``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.report import Figure, Section
from exchange_sim.config import AccountConfig, RateLimitConfig, SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer
from infra.db import migrate
from infra.db.connection import Database
from infra.db.embedded import EmbeddedPostgres
from infra.db.repositories import IdempotencyRepository
from infra.settings import code_defaults
from schemas.enums import OrderStatus, OrderType, Side, TimeInForce
from schemas.trading import TradeIntent
from trading_daemon.exchange.constants import BybitEndpoints
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.execution.idempotency import IdempotencyService
from trading_daemon.execution.order_fsm import OrderReport, OrderStateMachine
from trading_daemon.execution.runtime import Credentials, ExecutionRuntime

N = 200
KEY, SECRET = "BenchKey0001", "BenchSecretNotReal0123456789abcdef"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(_pct(ms, 0.99), 3), "n": len(ms)}


async def _measure(db: Database, n: int) -> dict[str, Any]:
    server = SimServer(
        SimConfig(
            port=0,
            symbols=("BTCUSDT",),
            accounts=(AccountConfig(KEY, SECRET, Decimal(10_000_000)),),
            rate_limits=RateLimitConfig(enabled=False),
        ),
        lambda venue: LadderMarket(venue.engine, events_per_second=2.0, trade_share=0.0),
    )
    await server.start()
    pool = await db.open_pool(min_size=2, max_size=4)
    http = BybitHttpClient(server.base_url, api_key=KEY, api_secret=SECRET)
    rest = BybitRestClient(http)
    config = dataclasses.replace(code_defaults().execution, trading_enabled=True, reconcile_interval_s=3600.0)
    runtime = ExecutionRuntime(
        config, db=db, pool=pool, rest=rest, ws_private_url=f"{server.ws_url}/v5/private",
        credentials=Credentials(KEY, SECRET), symbols=["BTCUSDT"],
    )  # fmt: skip
    wire: list[float] = []
    original = http._exchange

    async def timed_exchange(endpoint: Any, params: Any) -> Any:
        if endpoint is BybitEndpoints.ORDER_CREATE:
            wire.append(time.perf_counter())
        return await original(endpoint, params)

    http._exchange = timed_exchange  # type: ignore[method-assign]
    try:
        await rest.sync_time()
        await runtime.open()
        price = Decimal(50_000)
        to_wire: list[float] = []
        to_ack: list[float] = []
        for i in range(n + 10):
            intent = TradeIntent(
                intent_id=f"bench-{i}", symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT,
                ts=http.now_ms(), price=price, quantity=Decimal("0.001"), time_in_force=TimeInForce.GTC,
                source="bench",
            )  # fmt: skip
            wire.clear()
            start = time.perf_counter()
            result = await runtime.manager.submit(intent)
            end = time.perf_counter()
            assert result.status is OrderStatus.PLACED and wire, result
            if i >= 10:  # the first few warm connections and caches
                to_wire.append((wire[0] - start) * 1000)
                to_ack.append((end - start) * 1000)
        bare: list[float] = []
        for i in range(n + 10):
            start = time.perf_counter()
            await rest.place_order(
                symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, qty=Decimal("0.001"), price=price,
                order_link_id=f"bare-{i}",
            )  # fmt: skip
            if i >= 10:
                bare.append((time.perf_counter() - start) * 1000)
        await rest.cancel_all_orders("BTCUSDT")
        idem = IdempotencyService(IdempotencyRepository(pool), ttl_s=3600)
        await idem.run("bench", "k", {}, _nothing)
        hits = _time_async_us(lambda: idem.run("bench", "k", {}, _nothing), 2000)
        db_lookup = [await _time_one(lambda: idem.repo.get("k")) for _ in range(200)]
    finally:
        await runtime.close()
        await rest.close()
        await pool.close()
        await server.stop()
    return {
        "intents": n,
        "signal_to_wire": _summary(to_wire),
        "signal_to_ack": _summary(to_ack),
        "bare_create_round_trip": _summary(bare),
        "fsm_transition_us": _fsm_cost_us(),
        "unchecked_transition_us": _unchecked_cost_us(),
        "idempotency_cache_hit_us": round(await hits, 2),
        "idempotency_db_lookup": _summary(db_lookup),
    }


async def _nothing() -> dict[str, Any]:
    return {}


async def _time_one(fn: Any) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def _time_async_us(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - start) / n * 1e6


def _fsm_cost_us(n: int = 20_000) -> float:
    """One transition checked (`classify`) and applied, Pending → Placed → Partially_Filled → Filled."""
    reports = _REPORTS
    start = time.perf_counter()
    for _ in range(n):
        fsm = OrderStateMachine("o", OrderStatus.PENDING, Decimal(1))
        for report in reports:
            fsm.apply(report)
    return round((time.perf_counter() - start) / (n * len(reports)) * 1e6, 3)


@dataclass
class _PlainOrder:
    status: OrderStatus
    filled: Decimal


_REPORTS = [
    OrderReport(OrderStatus.PLACED),
    OrderReport(OrderStatus.PARTIALLY_FILLED, Decimal("0.5")),
    OrderReport(OrderStatus.FILLED, Decimal(1)),
]


def _unchecked_cost_us(n: int = 20_000) -> float:
    """The baseline of `_fsm_cost_us`: the same reports assigned to a record, nothing checked."""
    reports = _REPORTS
    start = time.perf_counter()
    for _ in range(n):
        order = _PlainOrder(OrderStatus.PENDING, Decimal(0))
        for report in reports:
            order.status = report.status
            order.filled = report.filled_quantity
    return round((time.perf_counter() - start) / (n * len(reports)) * 1e6, 3)


def run(quick: bool = False) -> dict[str, Any]:
    n = 20 if quick else N
    root = Path(tempfile.mkdtemp(prefix="dc-bench-exec-"))
    server = EmbeddedPostgres(root / "pg").start()
    try:
        admin = Database(server.uri("postgres"), "embedded", server)
        with admin.connect(autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_execution")
        db = admin.with_dbname("bench_execution")
        migrate.upgrade(db)
        result = asyncio.run(_measure(db, n))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"execution over the paper exchange on loopback, {n} limit intents one at a time:")
    for name in ("signal_to_wire", "signal_to_ack", "bare_create_round_trip", "idempotency_db_lookup"):
        r = result[name]
        print(f"  {name:<24} p50 {r['p50_ms']:>8.3f} ms   p99 {r['p99_ms']:>8.3f} ms")
    print(f"  fsm transition           {result['fsm_transition_us']:.3f} us")
    print(f"  unchecked assignment     {result['unchecked_transition_us']:.3f} us")
    print(f"  idempotency cache hit    {result['idempotency_cache_hit_us']:.2f} us")
    return result


def section(result: Mapping[str, Any]) -> Section:
    wire, ack, bare = result["signal_to_wire"], result["signal_to_ack"], result["bare_create_round_trip"]
    return Section(
        title="Execution",
        summary=(
            f"{result['intents']} resting limit intents, one at a time, through the execution manager to the "
            "paper exchange on loopback with the embedded PostgreSQL, against the bare REST create call"
        ),
        figures=[
            Figure("intent → create request on the wire, p50", wire["p50_ms"], "ms",
                   "bare REST create round trip, p50", bare["p50_ms"]),
            Figure("intent → create request on the wire, p99", wire["p99_ms"], "ms",
                   "bare REST create round trip, p99", bare["p99_ms"]),
            Figure("intent → acknowledged (Placed), p50", ack["p50_ms"], "ms",
                   "bare REST create round trip, p50", bare["p50_ms"]),
            Figure("idempotency: repeat answered from the cache", result["idempotency_cache_hit_us"], "µs",
                   "the database lookup behind the cache, p50", result["idempotency_db_lookup"]["p50_ms"] * 1000),
            Figure("order state machine: a transition checked and applied", result["fsm_transition_us"], "µs",
                   "the same report assigned unchecked", result["unchecked_transition_us"]),
        ],
        details=result,
    )  # fmt: skip
