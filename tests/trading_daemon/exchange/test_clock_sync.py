"""The offset to the exchange clock stays fresh: re-measured on a period, and at once after a 10002."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from exchange_sim.server.app import SimServer
from trading_daemon.exchange.clock_sync import keep_clock_synced
from trading_daemon.exchange.errors import BybitTimestampError
from trading_daemon.exchange.rest import BybitRestClient

from .conftest import Admin, make_http, wait_for

JUMP_MS = 120_000


async def test_10002_remeasures_the_clock_even_when_no_retry_follows(sim: SimServer, admin: Admin) -> None:
    async with make_http(sim.base_url, max_attempts=1) as http:
        rest = BybitRestClient(http)
        await rest.sync_time()
        await admin("POST", "/sim/clock/advance", {"ms": JUMP_MS})
        with pytest.raises(BybitTimestampError):
            await rest.get_positions("BTCUSDT")  # signed with the old offset: outside recv_window
        assert JUMP_MS - 1_000 < http.time_offset_ms < JUMP_MS + 1_000  # measured before raising
        (position,) = await rest.get_positions("BTCUSDT")  # the next request is signed right
        assert position.symbol == "BTCUSDT"


async def test_periodic_remeasure_follows_a_clock_jump(sim: SimServer, admin: Admin) -> None:
    async with make_http(sim.base_url) as http:
        offsets: list[int] = []
        http.on_time_sync = offsets.append
        await http.sync_time()
        assert abs(http.time_offset_ms) < 1_000
        task = asyncio.create_task(keep_clock_synced(http, 0.1))
        try:
            await admin("POST", "/sim/clock/advance", {"ms": JUMP_MS})
            await wait_for(lambda: http.time_offset_ms > JUMP_MS - 1_000, within=2)
            # A failing measurement keeps the last offset, and the loop goes on.
            await admin("POST", "/sim/faults", {"error_rate": 1.0, "paths": ["/v5/market/time"]})
            failed_from = len(offsets)
            await asyncio.sleep(0.5)
            assert len(offsets) == failed_from and not task.done()
            await admin("POST", "/sim/faults", {"error_rate": 0.0})
            await admin("POST", "/sim/clock/advance", {"ms": JUMP_MS})
            await wait_for(lambda: http.time_offset_ms > 2 * JUMP_MS - 1_000, within=2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert offsets[0] < 1_000 and offsets[-1] > 2 * JUMP_MS - 1_000


async def test_remeasure_interval_must_be_positive(sim: SimServer) -> None:
    async with make_http(sim.base_url) as http:
        with pytest.raises(ValueError, match="interval must be positive, got 0"):
            await keep_clock_synced(http, 0)
