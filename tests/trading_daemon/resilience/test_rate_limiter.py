from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from trading_daemon.resilience.rate_limiter import (
    BYBIT_BUCKETS,
    RATE_LIMIT_FALLBACK_SECONDS,
    RESET_GUARD_SECONDS,
    BucketSpec,
    RateLimiter,
    RateLimitExceeded,
    rate_limited,
)

WALL0 = 1_767_225_600.0  # the wall clock at monotonic 0


class FakeClock:
    """Monotonic time that only moves when a waiter sleeps or the test advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def limiter(
    clock: FakeClock,
    buckets: Mapping[str, BucketSpec] = BYBIT_BUCKETS,
    listener: Callable[[str, float, float, bool], None] | None = None,
) -> RateLimiter:
    return RateLimiter(buckets, clock=clock, wall_clock=clock.wall, sleep=clock.sleep, listener=listener)


def test_five_bybit_buckets() -> None:
    assert set(BYBIT_BUCKETS) == {"rest_public", "rest_trade", "rest_account", "rest_position", "ws_connect"}


async def test_scenario_5_first_100_pass_then_rejected_then_refilled() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    passed = 0
    for _ in range(150):
        if not await rl.acquire("rest_trade", tokens=1, max_wait=0):
            break
        passed += 1
    assert passed == 100
    assert not await rl.acquire("rest_trade", max_wait=0)
    assert rl.get_wait_time("rest_trade") == pytest.approx(0.6)
    clock.now += 60.0
    assert all([await rl.acquire("rest_trade", max_wait=0) for _ in range(100)])
    assert clock.sleeps == []


async def test_acquire_waits_asynchronously_in_arrival_order() -> None:
    clock = FakeClock()
    rl = limiter(clock, buckets={"b": BucketSpec(capacity=2, window_seconds=2.0)})
    assert await rl.acquire("b", tokens=2)
    order: list[int] = []

    async def take(i: int) -> None:
        await rl.acquire("b")
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(3)))
    # One token per second after the initial burst: the three waiters are done 3 s later, in order.
    assert order == [0, 1, 2]
    assert clock.now == pytest.approx(3.0)


async def test_max_wait_rejects_without_reserving() -> None:
    clock = FakeClock()
    rl = limiter(clock, buckets={"b": BucketSpec(capacity=1, window_seconds=10.0)})
    assert await rl.acquire("b")
    assert not await rl.acquire("b", max_wait=5.0)
    assert await rl.acquire("b", max_wait=10.0)
    assert clock.now == pytest.approx(10.0)


async def test_cancelled_waiter_returns_its_reservation() -> None:
    rl = RateLimiter({"b": BucketSpec(capacity=1, window_seconds=3600.0)})
    assert await rl.acquire("b")
    waiter = asyncio.create_task(rl.acquire("b"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert rl.get_wait_time("b") <= 3600.0


def test_status_shape() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    status = rl.get_all_status()
    assert set(status) == set(BYBIT_BUCKETS)
    trade = status["rest_trade"]
    assert trade["tokens"] == 100 and trade["max_tokens"] == 100 and trade["utilization"] == 0.0


async def test_utilization_after_use() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    for _ in range(25):
        await rl.acquire("rest_trade", max_wait=0)
    assert rl.get_all_status()["rest_trade"]["utilization"] == pytest.approx(25.0)


async def test_headers_status_zero_blocks_until_reset() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    reset_ms = int((WALL0 + 0.4) * 1000)
    rl.update_from_headers(
        "rest_trade",
        {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)},
    )
    assert not await rl.acquire("rest_trade", max_wait=0)
    assert rl.get_wait_time("rest_trade") == pytest.approx(0.4 + RESET_GUARD_SECONDS)
    assert rl.get_status("rest_trade")["exchange_limit"] == 10
    assert await rl.acquire("rest_trade")
    assert clock.now == pytest.approx(0.4 + RESET_GUARD_SECONDS)


async def test_headers_remaining_caps_requests_until_reset() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    reset_ms = str(int((WALL0 + 0.5) * 1000))
    rl.update_from_headers(
        "rest_account", {"x-bapi-limit-status": "2", "x-bapi-limit-reset-timestamp": reset_ms}
    )
    assert await rl.acquire("rest_account", max_wait=0)
    assert await rl.acquire("rest_account", max_wait=0)
    assert not await rl.acquire("rest_account", max_wait=0)
    clock.now = 0.5  # the reset, not yet past its guard
    assert not await rl.acquire("rest_account", max_wait=0)
    clock.now = 0.5 + RESET_GUARD_SECONDS
    assert await rl.acquire("rest_account", max_wait=0)


async def test_status_zero_with_stale_reset_blocks_one_window() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    rl.update_from_headers(
        "rest_trade", {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(int(WALL0 * 1000))}
    )
    assert rl.get_wait_time("rest_trade") == pytest.approx(1.0)


def test_10006_without_reset_header_backs_off_fixed() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    assert rl.on_rate_limit_error("rest_position") == pytest.approx(RATE_LIMIT_FALLBACK_SECONDS)
    assert rl.get_status("rest_position")["blocked_for"] == pytest.approx(RATE_LIMIT_FALLBACK_SECONDS)


def test_ip_ban_blocks_rest_buckets_only() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    rl.on_ip_ban()
    waits = {name: rl.get_wait_time(name) for name in BYBIT_BUCKETS}
    assert waits.pop("ws_connect") == 0.0
    assert set(waits.values()) == {600.0}


async def test_unknown_bucket_bad_spec_and_oversized_request() -> None:
    rl = RateLimiter()
    with pytest.raises(KeyError, match="nope"):
        rl.get_wait_time("nope")
    with pytest.raises(ValueError, match="capacity"):
        await rl.acquire("rest_trade", tokens=101)
    with pytest.raises(ValueError, match="positive"):
        BucketSpec(capacity=0, window_seconds=1.0)


async def test_listener_sees_acquisitions_and_rejections() -> None:
    clock = FakeClock()
    seen: list[tuple[str, float, float, bool]] = []
    rl = limiter(
        clock, buckets={"b": BucketSpec(capacity=1, window_seconds=1.0)}, listener=lambda *a: seen.append(a)
    )
    await rl.acquire("b")
    await rl.acquire("b", max_wait=0)
    await rl.acquire("b")
    assert [(a[0], a[3]) for a in seen] == [("b", True), ("b", False), ("b", True)]
    assert seen[2][2] == pytest.approx(1.0)


async def test_rate_limited_decorator_uses_instance_limiter() -> None:
    clock = FakeClock()

    class Client:
        def __init__(self) -> None:
            self.rate_limiter = limiter(
                clock, buckets={"rest_trade": BucketSpec(capacity=1, window_seconds=60.0)}
            )

        @rate_limited("rest_trade", max_wait=0)
        async def place(self, qty: int) -> int:
            return qty

    client = Client()
    assert await client.place(3) == 3
    with pytest.raises(RateLimitExceeded) as info:
        await client.place(4)
    assert info.value.bucket == "rest_trade" and info.value.wait_seconds == pytest.approx(60.0)


async def test_rate_limited_with_explicit_limiter_and_missing_one() -> None:
    clock = FakeClock()
    rl = limiter(clock)

    @rate_limited("rest_public", limiter=rl)
    async def tickers() -> str:
        return "ok"

    @rate_limited("rest_public")
    async def orphan() -> str:
        return "never"

    assert await tickers() == "ok"
    with pytest.raises(TypeError, match="rate_limiter"):
        await orphan()
