"""The exchange clock: every timestamp the paper exchange sends or checks is read from it.

The requested exchange time runs ``speed`` times faster than the wall clock from a start instant
(docs/exchange_sim_market.md §14): ``t = t0 + offset + speed · (wall − wall0)``. With
``speed = 1`` and the default ``t0`` (the wall time at start) it is the current UTC time in ms, so a real
client that signs with its own clock works unchanged; at other speeds clients must measure the offset
with ``GET /v5/market/time``, as Bybit recommends anyway. :meth:`ExchangeClock.jump` moves exchange time
forward at once (tests, the admin API) so that funding intervals and kline buckets can be reached
without waiting.

**The requested time is a ceiling.** Once the venue's driver runs, exchange time is the time the venue
has been simulated to (:meth:`ExchangeClock.pace`, in steps of the driver interval), never more than
the requested time. A process that cannot keep the requested speed therefore slows the clock: every
topic keeps its cadence per exchange second, the exchange just produces fewer exchange seconds per
wall second. The clock never runs faster than requested to catch up: when the simulated time trails
the requested one by more than ``max_lag_ms`` of wall time, the requested time is moved back
(:meth:`ExchangeClock.slip`, counted in :attr:`ExchangeClock.slipped_ms`). The achieved speed
(exchange ms simulated per wall ms over the last few seconds, jumps left out) is measured from samples
the driver takes (:meth:`ExchangeClock.sample`, :meth:`ExchangeClock.achieved_speed`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_LAG_WALL_MS = 250.0  # how far (in wall ms) simulated time may trail the request before the clock slips
SPEED_WINDOW_S = 5.0  # the achieved speed is measured over this much wall time
MIN_SPEED_SPAN_S = 0.5  # ... once at least this much has been sampled
SAMPLE_EVERY_S = 0.1


class ExchangeClock:
    """Exchange time in integer ms since the epoch: wall-driven and optionally accelerated, and paced by
    the venue's driver once it runs (the requested speed is then a ceiling)."""

    def __init__(
        self,
        speed: float = 1.0,
        start_ms: int | None = None,
        *,
        max_lag_ms: float = MAX_LAG_WALL_MS,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        if not max_lag_ms >= 0:
            raise ValueError(f"max_lag_ms must be >= 0, got {max_lag_ms}")
        self.speed = float(speed)
        self.max_lag_ms = float(max_lag_ms)
        self._wall = wall
        self._wall0 = wall()
        self._t0 = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._explicit_start = start_ms is not None
        self._offset = 0
        self._last = self._t0
        self._paced: int | None = None  # exchange time set by the driver; None: the clock follows the wall
        self._progress = 0  # exchange ms moved by pace() (simulated), jumps excluded
        self._samples: deque[tuple[float, int]] = deque()
        self.slipped_ms = 0  # requested exchange ms given up because the process could not keep up

    def requested(self) -> int:
        """The exchange time the requested speed asks for now: the ceiling of :meth:`now`."""
        elapsed = self._wall() - self._wall0
        return self._t0 + self._offset + int(elapsed * 1000 * self.speed)

    def now(self) -> int:
        """Current exchange time in ms; never goes backwards, even across :meth:`jump` (once paced, see
        :meth:`begin_pacing`)."""
        if self._paced is not None:
            return self._paced
        value = self.requested()
        # monotonic() cannot go back, but keep the guarantee explicit for callers that compare stamps.
        if value < self._last:
            value = self._last
        self._last = value
        return value

    __call__ = now

    @property
    def paced(self) -> bool:
        """Whether a driver sets the exchange time (:meth:`pace`) rather than the wall clock."""
        return self._paced is not None

    def begin_pacing(self) -> int:
        """The driver starts: from now on exchange time is what :meth:`pace` sets; returns the start time.

        The requested time is re-anchored to the wall at this instant. With an explicit ``start_ms`` the
        exchange starts there (time read before the driver runs is not kept: nothing was served yet), so
        a run is aligned to its configured start whatever the set-up cost; otherwise it starts at the
        current reading (the wall's UTC time at speed 1).
        """
        start = self._t0 + self._offset if self._explicit_start else self.now()
        self._wall0 = self._wall()
        self._t0, self._offset = start, 0
        self._paced = self._last = start
        self._samples.clear()
        return start

    def pace(self, ms: int) -> None:
        """Exchange time is now ``ms``: the venue has been simulated up to it (the driver calls this)."""
        current = self.now()
        if ms < current:
            raise ValueError(f"the exchange clock only moves forward; pace to {ms} < {current} refused")
        self._progress += ms - current
        self._paced = self._last = int(ms)

    def jump(self, ms: int) -> int:
        """Move exchange time forward by ``ms`` (must be >= 0); returns the new time."""
        if ms < 0:
            raise ValueError(f"the exchange clock only moves forward; jump of {ms} ms refused")
        self._offset += int(ms)
        if self._paced is not None:
            self._paced += int(ms)
            self._last = self._paced
        return self.now()

    def wall_seconds_until(self, ms: int) -> float:
        """Wall seconds until the requested time reaches ``ms`` (0 if it already has)."""
        return max(ms - self.requested(), 0) / self.speed / 1000

    def slip(self) -> int:
        """Move the requested time back if paced time trails it by more than ``max_lag_ms`` of wall time.

        Returns the exchange ms given up (0 if none): the request is a ceiling, so time the process could
        not simulate is not made up later at more than the requested speed.
        """
        if self._paced is None:
            return 0
        excess = self.requested() - self._paced - int(self.max_lag_ms * self.speed)
        if excess <= 0:
            return 0
        self._offset -= excess
        self.slipped_ms += excess
        return excess

    def sample(self) -> None:
        """Record simulated progress against the wall (the driver calls this; cheap, self-limiting)."""
        wall = self._wall()
        samples = self._samples
        if samples and wall - samples[-1][0] < SAMPLE_EVERY_S:
            return
        samples.append((wall, self._progress))
        while len(samples) > 2 and wall - samples[1][0] >= SPEED_WINDOW_S:
            samples.popleft()

    def achieved_speed(self) -> float | None:
        """Exchange ms simulated per wall ms over the last few seconds; ``None`` until measured.

        Without a driver the clock follows the wall, so the achieved speed is the requested one.
        """
        if self._paced is None:
            return self.speed
        samples = self._samples
        if len(samples) < 2:
            return None
        (w0, p0), (w1, p1) = samples[0], samples[-1]
        if w1 - w0 < MIN_SPEED_SPAN_S:
            return None
        return (p1 - p0) / ((w1 - w0) * 1000)

    def lag_ms(self) -> int:
        """How far exchange time trails the requested time (exchange ms; 0 without a driver)."""
        return max(self.requested() - self._paced, 0) if self._paced is not None else 0
