"""The exchange clock as a ceiling: paced by the driver, never ahead of the request, slipping instead of
catching up, and measuring the speed it achieves (exchange_sim/clock.py)."""

from __future__ import annotations

import pytest

from exchange_sim.clock import MAX_LAG_WALL_MS, ExchangeClock

T0 = 1_767_225_600_000


class Wall:
    """A wall clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.s = 100.0

    def __call__(self) -> float:
        return self.s


def test_unpaced_clock_follows_the_wall_at_its_speed() -> None:
    wall = Wall()
    clock = ExchangeClock(speed=10, start_ms=T0, wall=wall)
    assert clock.now() == T0 and not clock.paced
    wall.s += 1.5
    assert clock.now() == T0 + 15_000 == clock.requested()
    assert clock.achieved_speed() == 10  # nothing paces it: it runs as requested
    assert clock.jump(60_000) == T0 + 75_000


def test_paced_clock_starts_at_the_configured_start_and_is_what_the_driver_set() -> None:
    wall = Wall()
    clock = ExchangeClock(speed=1000, start_ms=T0, wall=wall)
    wall.s += 0.25  # set-up time before the driver starts is not exchange time
    assert clock.now() == T0 + 250_000
    assert clock.begin_pacing() == T0 and clock.now() == T0 and clock.paced
    wall.s += 0.0625
    assert clock.requested() == T0 + 62_500 and clock.now() == T0  # the request is only a ceiling
    clock.pace(T0 + 10)
    assert clock.now() == T0 + 10 and clock.lag_ms() == 62_490
    with pytest.raises(ValueError, match="forward"):
        clock.pace(T0 + 5)
    assert clock.jump(1_000) == T0 + 1_010 and clock.requested() == T0 + 63_500


def test_wall_started_clock_paces_from_the_current_time() -> None:
    wall = Wall()
    clock = ExchangeClock(speed=1, wall=wall)
    start = clock.now()
    wall.s += 0.25
    assert clock.begin_pacing() == start + 250


def test_slow_process_slips_the_clock_instead_of_catching_up_later() -> None:
    wall = Wall()
    clock = ExchangeClock(speed=100, start_ms=T0, wall=wall)
    clock.begin_pacing()
    clock.sample()
    for _ in range(20):  # each wall second the process simulates only 40 exchange seconds of 100
        wall.s += 1.0
        clock.pace(clock.now() + 40_000)
        clock.slip()
        clock.sample()
    assert clock.achieved_speed() == pytest.approx(40.0)
    max_lag = int(MAX_LAG_WALL_MS * 100)
    assert clock.lag_ms() == max_lag  # never more behind than the allowed lag ...
    assert clock.slipped_ms == 20 * 60_000 - max_lag  # ... the rest of the request was given up
    # Catching up: the clock may run ahead only by the allowed lag, then it is held to the request.
    wall.s += 1.0
    assert clock.requested() - clock.now() == max_lag + 100_000


def test_achieved_speed_is_unknown_until_measured_and_rejects_bad_settings() -> None:
    wall = Wall()
    clock = ExchangeClock(speed=5, start_ms=T0, wall=wall)
    clock.begin_pacing()
    clock.sample()
    assert clock.achieved_speed() is None
    wall.s += 0.25
    clock.pace(T0 + 1_250)
    clock.sample()
    assert clock.achieved_speed() is None  # under half a second sampled
    wall.s += 0.75
    clock.pace(T0 + 5_000)
    clock.sample()
    assert clock.achieved_speed() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="positive"):
        ExchangeClock(speed=0)
    with pytest.raises(ValueError, match="max_lag_ms"):
        ExchangeClock(max_lag_ms=-1)
