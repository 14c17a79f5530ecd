"""The exchange clock (speed, jumps) and kline aggregation from trades (buckets, empty candles, confirm)."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from exchange_sim.clock import ExchangeClock
from exchange_sim.events import PublicTrade
from exchange_sim.klines import KlineBook

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC, a multiple of every interval


def _trade(ts: int, price: str, qty: str) -> PublicTrade:
    return PublicTrade("id", "BTCUSDT", D(price), D(qty), "Buy", ts, "PlusTick", 1)


def test_clock_speed_and_jump() -> None:
    clock = ExchangeClock(speed=100, start_ms=T0)
    wall_start = time.monotonic()
    first = clock.now()
    time.sleep(0.05)
    elapsed = clock.now() - first
    wall_ms = (time.monotonic() - wall_start) * 1000
    assert 100 * 50 - 1 <= elapsed <= 100 * wall_ms + 1  # 100 ms of exchange time per wall ms
    before = clock.now()
    assert clock.jump(3_600_000) >= before + 3_600_000
    with pytest.raises(ValueError, match="forward"):
        clock.jump(-1)
    with pytest.raises(ValueError, match="positive"):
        ExchangeClock(speed=0)
    wall = ExchangeClock()
    assert abs(wall.now() - time.time() * 1000) < 1000


def test_candles_from_trades_with_empty_buckets_and_single_confirm() -> None:
    book = KlineBook("BTCUSDT")
    assert book.roll(T0) == [] and book.current("1") is None
    assert book.add_trades([_trade(T0 + 1_000, "100.0", "1"), _trade(T0 + 2_000, "102.0", "2")]) == []
    closed = book.add_trades([_trade(T0 + 130_000, "101.0", "1")])
    one_minute = [c for c in closed if c.interval == "1"]
    assert [c.start for c in one_minute] == [T0, T0 + 60_000] and all(c.confirm for c in one_minute)
    first, empty = one_minute
    assert (first.open, first.high, first.low, first.close) == (
        D("100.0"),
        D("102.0"),
        D("100.0"),
        D("102.0"),
    )
    assert first.volume == D(3) and first.turnover == D("304.0") and first.timestamp == T0 + 2_000
    assert (empty.open, empty.close, empty.volume) == (D("102.0"), D("102.0"), D(0))
    assert book.roll(T0 + 179_999) == []  # nothing new closed: each candle is confirmed once
    five = book.current("5")
    assert five is not None and five.start == T0 and five.volume == D(4) and five.high == D("102.0")
    rows = book.history("1", limit=10)
    assert [r.start for r in rows] == [T0 + 120_000, T0 + 60_000, T0]  # newest first, running one included
    assert [r.start for r in book.history("1", start=T0 + 60_000, end=T0 + 60_000)] == [T0 + 60_000]
    closed = book.roll(T0 + 3_600_000)
    assert [c.start for c in closed if c.interval == "60"] == [T0]
    hour = next(c for c in closed if c.interval == "60")
    assert hour.volume == D(4) and hour.close == D("101.0") and hour.end == T0 + 3_599_999
