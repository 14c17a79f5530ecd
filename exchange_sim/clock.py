"""The exchange clock: every timestamp the paper exchange sends or checks is read from it.

Exchange time runs ``speed`` times faster than the wall clock from a start instant (SIM_MARKET.md §14):
``t = t0 + offset + speed · (wall − wall0)``. With ``speed = 1`` and the default ``t0`` (the wall time at
start) it is simply the current UTC time in ms, so a real client that signs with its own clock works
unchanged; at other speeds clients must measure the offset with ``GET /v5/market/time``, as Bybit
recommends anyway. :meth:`ExchangeClock.jump` moves exchange time forward at once (tests, the admin API)
so that funding intervals and kline buckets can be reached without waiting.
"""

from __future__ import annotations

import time


class ExchangeClock:
    """Exchange time in integer ms since the epoch, wall-driven and optionally accelerated."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = float(speed)
        self._wall0 = time.monotonic()
        self._t0 = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._offset = 0
        self._last = self._t0

    def now(self) -> int:
        """Current exchange time in ms; never goes backwards, even across :meth:`jump`."""
        elapsed = time.monotonic() - self._wall0
        value = self._t0 + self._offset + int(elapsed * 1000 * self.speed)
        # monotonic() cannot go back, but keep the guarantee explicit for callers that compare stamps.
        if value < self._last:
            value = self._last
        self._last = value
        return value

    __call__ = now

    def jump(self, ms: int) -> int:
        """Move exchange time forward by ``ms`` (must be >= 0); returns the new time."""
        if ms < 0:
            raise ValueError(f"the exchange clock only moves forward; jump of {ms} ms refused")
        self._offset += int(ms)
        return self.now()
