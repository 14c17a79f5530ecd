"""Keeping the offset to the exchange clock fresh while the daemon runs.

`BybitHttpClient.sync_time` measures exchange time − local time once; the client measures again by itself
after a 10002 (timestamp outside recv_window). In between, an exchange clock that jumps or a local clock
that drifts (NTP) leaves the offset stale: signed requests drift towards the edge of recv_window, and the
daemon's idea of exchange time is wrong — a candle back-fill then drops recently closed candles as still
open, and the grace timer emits rows late. `keep_clock_synced` re-measures on a fixed period.
"""

from __future__ import annotations

import asyncio

import structlog

from trading_daemon.exchange.http import BybitHttpClient

log = structlog.get_logger(__name__)


async def keep_clock_synced(http: BybitHttpClient, interval_s: float) -> None:
    """Re-measure `http`'s clock offset every `interval_s` seconds until cancelled.

    A failed measurement keeps the last offset and is logged; the next period tries again.
    """
    if not interval_s > 0:
        raise ValueError(f"the clock re-measure interval must be positive, got {interval_s} s")
    while True:
        await asyncio.sleep(interval_s)
        try:
            await http.sync_time()
        except Exception as exc:  # a Bybit error or an open breaker: keep the offset we have
            log.warning(
                "exchange clock re-measure failed; keeping the last offset",
                offset_ms=http.time_offset_ms,
                error=str(exc),
            )
