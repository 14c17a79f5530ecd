"""Soak: the running service (record mode) against a paper exchange whose REST API fails at a high rate.

Three phases, with the exchange's fault injection (`/sim/faults`) and a log of every market-data request
the exchange received:

1. start-up under 10006 rate-limit refusals (with `X-Bapi-Limit*` headers) and HTTP 503s on half the
   requests: the service starts, the rate limiter waits for each refusal's reset, and the circuit
   breaker stays closed (a 10006 says nothing about the venue's health);
2. a candle lost during a WebSocket outage (disconnect, then the exchange clock jumps across a minute)
   makes the feed back-fill over REST while the kline endpoint answers only 503: the market breaker opens
   after its threshold of venue failures, reports it, and then no request reaches the venue;
3. faults off: recording goes on.

Throughout, rows are complete: 1 s apart without a gap, every row built is stored once. The books are
invalid from the drop to the fresh snapshots of the resubscription, and no needless resync follows.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from exchange_sim.config import FaultConfig, SimConfig
from exchange_sim.market import build_market
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import read_snapshots
from infra.settings import load_settings
from schemas.arrow import table_to_raw_rows
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.service import run_service

SYMBOLS = ("BTCUSDT", "SOLUSDT")
BREAKER = "bybit_market"
FAILURE_THRESHOLD = 5  # trading_daemon.resilience.circuit_breaker.BreakerConfig default
MINUTE = 60_000


@dataclass(frozen=True)
class Seen:
    """One market-data request as the exchange saw it."""

    at_ms: int  # exchange time of arrival, as the requested (wall-anchored) clock reads it
    path: str
    status: int
    ret_code: int | None
    reset_ms: int | None
    answered_ms: int = 0  # exchange time the answer left the exchange


def _request_log(server: SimServer, seen: list[Seen]) -> None:
    @web.middleware
    async def log_requests(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        # The venue's own time is the time it has simulated to, which trails the wall-anchored requested
        # time by the driver's lag (up to tens of ms while this one event loop also runs the daemon and
        # its database writes); the client paces itself on the wall clock, so its sends are judged there.
        arrived = server.venue.clock.requested()
        response = await handler(request)
        if request.path.startswith("/v5/market/"):
            ret_code = None
            if response.status == 200 and isinstance(response, web.Response) and response.text is not None:
                ret_code = json.loads(response.text)["retCode"]
            reset = response.headers.get("X-Bapi-Limit-Reset-Timestamp")
            answered = server.venue.clock.requested()
            seen.append(
                Seen(
                    arrived, request.path, response.status, ret_code, int(reset) if reset else None, answered
                )
            )
        return response

    server.app.middlewares.insert(0, log_requests)  # outermost: sees the injected faults too


def _sample(metrics: DaemonMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"depthcharge_{name}", labels) or 0.0


async def _until(predicate: Callable[[], bool], within: float, what: str, service: asyncio.Task[Any]) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if service.done():
            raise AssertionError(f"the service stopped while waiting for {what}") from service.exception()
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {what}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_service_records_through_rest_faults(db: Database, tmp_path: Path) -> None:
    faults = FaultConfig(error_rate=0.5, error_kinds=("ratelimit", "http"), paths=("/v5/market/",))
    server = SimServer(
        # The fault injector is seeded by the config: with seed 4 the start-up requests meet four 10006
        # refusals and two 503s, and every call succeeds within its four attempts.
        SimConfig(port=0, symbols=SYMBOLS, seed=4, faults=faults),
        lambda venue: build_market(venue.engine, list(SYMBOLS), seed=5),
    )
    seen: list[Seen] = []
    _request_log(server, seen)
    metrics = DaemonMetrics()
    await server.start()
    settings = load_settings(
        DATABASE_URL=db.conninfo, VAR_DIR=str(tmp_path), TRADING_PAIRS=",".join(SYMBOLS),
        BYBIT_REST_URL=server.base_url, BYBIT_WS_PUBLIC_URL=f"{server.ws_url}/v5/public/linear",
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(settings, stop, metrics=metrics, install_signal_handlers=False))
    try:
        async with aiohttp.ClientSession() as session:

            async def admin(path: str, body: dict[str, Any]) -> Any:
                async with session.post(f"{server.base_url}{path}", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()

            # 1. Start-up through refusals: ready once every symbol streams.
            await _until(
                lambda: _sample(metrics, "market_messages_total", topic="kline") >= 2, 25, "streaming", task
            )
            assert not task.done()
            phase1 = list(seen)
            assert any(s.ret_code == 10006 for s in phase1) and any(s.status == 503 for s in phase1)
            assert _sample(metrics, "circuit_breaker_transitions_total", breaker=BREAKER, state="open") == 0
            await asyncio.sleep(1.5)

            # 2. The kline endpoint fails; a candle is lost while the socket is down, so the feed back-fills.
            await admin(
                "/sim/faults", {"error_rate": 1.0, "error_kinds": ["http"], "paths": ["/v5/market/kline"]}
            )
            before = len(seen)
            now = server.venue.clock.now()
            boundary = now - now % MINUTE + MINUTE
            await admin("/sim/ws/disconnect", {"scope": "public"})
            await admin("/sim/clock/advance", {"ms": boundary + 10 - now})  # its confirm goes nowhere
            await _until(
                lambda: _sample(metrics, "ws_reconnects_total", stream="public") >= 1, 10, "reconnect", task
            )
            now = server.venue.clock.now()
            await admin("/sim/clock/advance", {"ms": boundary + MINUTE + 10 - now})  # the next confirm
            await _until(
                lambda: (
                    _sample(metrics, "circuit_breaker_transitions_total", breaker=BREAKER, state="open") == 1
                ),
                15,
                "the market breaker opening",
                task,
            )
            await asyncio.sleep(2.5)  # kline updates keep asking for the back-fill; the breaker answers
            phase2 = seen[before:]

            # 3. Faults off: the service keeps recording.
            await admin("/sim/faults", {"error_rate": 0.0})
            await asyncio.sleep(2.0)
            assert not task.done()
            stop.set()
            report = await asyncio.wait_for(task, 30)
            server_now = server.venue.clock.now()
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await server.stop()

    # The rate limiter obeyed every refusal: nothing was sent before the reset it named.
    refusals = [s for s in phase1 if s.ret_code == 10006]
    for refusal in refusals:
        assert refusal.reset_ms is not None
        # Requests of other symbols already on their way when the refusal was answered (the back-fills run
        # concurrently) could not know of it; every request that arrived after the answer waited.
        later = [s for s in phase1 if s.at_ms > refusal.answered_ms]
        early = [s for s in later if s.at_ms < refusal.reset_ms]
        assert not early, (refusal, early)

    # The breaker opened on venue failures only, after its threshold, and then held traffic back. The
    # symbols back-fill independently: a request of each may be in flight when the breaker opens.
    assert FAILURE_THRESHOLD <= len(phase2) <= FAILURE_THRESHOLD + len(SYMBOLS) - 1, phase2
    assert all(s.status == 503 for s in phase2), phase2
    assert _sample(metrics, "circuit_breaker_transitions_total", breaker=BREAKER, state="open") == 1
    assert _sample(metrics, "circuit_breaker_state", breaker=BREAKER) == 2.0

    # Nothing lost: rows 1 s apart without a gap (the clock jumps included), each stored once.
    assert report.recorder.rows_spooled == 0
    assert report.feed.resyncs == 0  # the reconnect's snapshots were applied, not discarded
    with db.connect() as conn:
        for symbol in SYMBOLS:
            rows = table_to_raw_rows(read_snapshots(conn, symbol, 0, server_now + MINUTE))
            assert len(rows) == report.feed.by_symbol_rows[symbol] > MINUTE // 1000  # the jumps span a minute
            assert all(b.ts - a.ts == 1000 for a, b in itertools.pairwise(rows))
            resets = [r.ts for r in rows if r.book_reset]
            # The first row, then one run from the drop to the first row with the fresh snapshot (the jump's
            # rows included): no resync after the reconnect. The book is valid again at the end.
            assert resets[0] == rows[0].ts and len(resets) >= 2, resets
            assert all(b - a == 1000 for a, b in itertools.pairwise(resets[1:])), resets
            assert not any(
                r.n_bid_levels for r in rows if r.book_reset and r.ts not in (resets[0], resets[-1])
            )
            assert not any(r.book_reset for r in rows[-10:]) and all(r.n_bid_levels == 50 for r in rows[-10:])
            assert all(r.last_candle_start_ms + MINUTE <= r.ts for r in rows)
