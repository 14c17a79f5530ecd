"""Is the database reachable? Shared by the recorder's channels so that one failure switches every
kind to the spool at once, and one background probe (not every channel) finds out when it is back."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from psycopg_pool import AsyncConnectionPool

log = structlog.get_logger(__name__)


class DatabaseHealth:
    """`up` until a write fails; then a probe task runs `SELECT 1` until it succeeds."""

    def __init__(self, pool: AsyncConnectionPool, *, interval_s: float, timeout_s: float) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.up = True
        self.outages = 0
        self._probe: asyncio.Task[None] | None = None

    def mark_down(self) -> None:
        """Record that a write failed; start probing (idempotent)."""
        if self.up:
            self.outages += 1
            log.warning("recorder database unreachable, probing", probe_interval_s=self._interval_s)
        self.up = False
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._run(), name="recorder-db-probe")

    async def check(self) -> bool:
        """One probe through the pool the writes use (so "up" means the writes' path works)."""
        try:
            async with asyncio.timeout(self._timeout_s), self._pool.connection() as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            log.debug("recorder database probe failed", error=str(exc), error_type=type(exc).__name__)
            return False
        return True

    async def _run(self) -> None:
        while not self.up:
            await asyncio.sleep(self._interval_s)
            if await self.check():
                log.info("recorder database reachable again, back-filling the spool")
                self.up = True

    async def close(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
