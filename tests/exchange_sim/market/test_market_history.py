"""The kline history the synthetic market hands the venue at start (docs/exchange_sim_market.md §13.1)."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import numpy as np
import pytest

from exchange_sim.klines import Candle, KlineBook
from exchange_sim.market import MarketConfig, SyntheticMarket, build_market
from exchange_sim.market.history import ar1

from .conftest import T0, Clock, make_engine  # type: ignore[import-not-found]

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
START = T0 + 30_000  # half a minute into 2026-01-01 00:00


def test_ar1_by_blocks_equals_the_recursion() -> None:
    rng = np.random.default_rng(1)
    shocks = rng.standard_normal(1_000)
    for a in (0.0, 0.5, math.exp(-1 / 120), math.exp(-1 / 43_200)):
        expected, h = [], 0.7
        for e in shocks:
            h = a * h + e
            expected.append(h)
        assert np.allclose(ar1(a, shocks, 0.7), expected, rtol=1e-10, atol=1e-10)
    assert len(ar1(0.9, np.zeros(0), 1.0)) == 0


def test_history_is_contiguous_ends_before_the_start_minute_and_at_the_start_price() -> None:
    engine = make_engine(Clock())
    market = build_market(engine, SYMBOLS, seed=42)
    history = market.kline_history(START)
    for symbol in SYMBOLS:
        candles = history[symbol]
        spec = engine.instruments[symbol]
        assert len(candles) == 1000
        assert candles[-1].start == T0 - 60_000  # the minute before the minute of the start
        assert all(b.start - a.start == 60_000 for a, b in itertools.pairwise(candles))
        assert all(b.open == a.close for a, b in itertools.pairwise(candles))  # a continuous path
        start_price = spec.ticks_to_price(
            round(market.config.symbol(symbol).start_price / float(spec.tick_size))
        )
        assert candles[-1].close == start_price
        for c in candles:
            assert (
                c.interval == "1"
                and c.confirm
                and c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
            )
            for price in (c.open, c.high, c.low, c.close):
                assert price % spec.tick_size == 0
            assert c.volume > 0 and c.volume % spec.qty_step == 0
            assert c.low * c.volume <= c.turnover <= c.high * c.volume + Decimal("0.0001")
        # Volatility and volume of the order of the live market's (docs/exchange_sim_market.md §6, calm BTC ~0.05%/min).
        closes = np.array([float(c.close) for c in candles])
        returns = np.diff(np.log(closes))
        assert 1e-4 < returns.std() < 3e-3
        base = market.config.symbol(symbol).minute_volume
        assert base is not None and 0.1 * base < float(np.mean([float(c.volume) for c in candles])) < 5 * base


def test_history_is_deterministic_and_has_its_own_stream() -> None:
    """Asking for the history (or not) leaves the live simulation bit-for-bit the same."""

    def live_trades(
        with_history: bool, seed: int = 42
    ) -> tuple[list[tuple[int, Decimal, Decimal]], dict[str, list[Candle]]]:
        clock = Clock()
        clock.now = START
        market = build_market(make_engine(clock), ["BTCUSDT"], seed=seed)
        history = market.kline_history(START) if with_history else {}
        market.advance(clock.now)
        trades = []
        for _ in range(200):
            clock.now += 100
            trades += [(t.time, t.price, t.qty) for r in market.advance(clock.now) for t in r.trades]
        return trades, history

    with_history, history = live_trades(True)
    without, _ = live_trades(False)
    assert with_history and with_history == without
    assert live_trades(True)[1] == history  # same seed, same history
    assert live_trades(True, seed=43)[1]["BTCUSDT"] != history["BTCUSDT"]


def test_history_minutes_is_configurable_and_validated(engine) -> None:  # type: ignore[no-untyped-def]
    market = SyntheticMarket(engine, ["SOLUSDT"], seed=1, config=MarketConfig(history_minutes=0))
    assert market.kline_history(START) == {"SOLUSDT": []}
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="history_minutes"):
            MarketConfig(history_minutes=bad)  # type: ignore[arg-type]


def _minute(start: int, o: str, h: str, low: str, c: str, v: str) -> Candle:
    return Candle("1", start, Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(v), Decimal(v) * Decimal(c),
                  timestamp=start + 59_999, confirm=True)  # fmt: skip


def test_kline_book_aggregates_a_history_and_continues_it() -> None:
    base = 1_767_225_600_000  # a whole hour
    minutes = [_minute(base + i * 60_000, "10", "12", "9", "11", "1") for i in range(7)]
    book = KlineBook("BTCUSDT")
    book.load_history(minutes)
    ones = book.history("1", limit=100)
    assert [c.start for c in ones] == [base + i * 60_000 for i in range(7, -1, -1)]
    running = ones[0]  # the next minute runs, opened at the last close, with nothing traded yet
    assert (running.confirm, running.open, running.high, running.low, running.volume) == (
        False, Decimal("11"), Decimal("11"), Decimal("11"), Decimal("0"),
    )  # fmt: skip
    fives = book.history("5", limit=10)
    assert [(c.start, c.confirm) for c in fives] == [(base + 300_000, False), (base, True)]
    assert (
        fives[0].volume == Decimal("2") and fives[1].volume == Decimal("5") and fives[1].open == Decimal("10")
    )
    assert book.current("60") is not None and book.current("60").volume == Decimal("7")  # type: ignore[union-attr]
    # The partial five-minute candle closes when its bucket ends, as a live one would.
    closed = book.roll(base + 600_000)
    assert [(c.interval, c.start) for c in closed if c.interval == "5"] == [("5", base + 300_000)]


def test_kline_book_refuses_a_bad_history() -> None:
    base = 1_767_225_600_000
    book = KlineBook("BTCUSDT")
    with pytest.raises(ValueError, match="contiguous"):
        book.load_history(
            [_minute(base, "1", "1", "1", "1", "1"), _minute(base + 120_000, "1", "1", "1", "1", "1")]
        )
    five = Candle("5", base, Decimal(1), Decimal(1), Decimal(1), Decimal(1))
    with pytest.raises(ValueError, match="one-minute"):
        book.load_history([five])
    book.load_history([_minute(base, "1", "1", "1", "1", "1")])
    with pytest.raises(ValueError, match="before the first trade"):
        book.load_history([_minute(base + 60_000, "1", "1", "1", "1", "1")])
