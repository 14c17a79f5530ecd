"""Fixtures of the synthetic-market tests: a fixed exchange clock, an engine with two accounts, markets."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from exchange_sim.accounts import AccountRegistry
from exchange_sim.events import IdFactory
from exchange_sim.instruments import DEFAULT_INSTRUMENTS
from exchange_sim.market import MarketConfig, SyntheticMarket
from exchange_sim.matching import MatchingEngine

T0 = 1_767_225_600_000


class Clock:
    """A settable exchange clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def make_engine(clock: Clock) -> MatchingEngine:
    """An engine over the default instruments with accounts ``alice`` and ``bob``."""
    registry = AccountRegistry(dict(DEFAULT_INSTRUMENTS), clock)
    registry.open("alice", Decimal("10000000"))
    registry.open("bob", Decimal("10000000"))
    return MatchingEngine(registry, clock=clock, ids=IdFactory(seed=3))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> MatchingEngine:
    return make_engine(clock)


MarketFactory = Callable[..., SyntheticMarket]


@pytest.fixture
def make_market(engine: MatchingEngine, clock: Clock) -> MarketFactory:
    """Build a started market on the fixture engine: ``make_market(symbols, seed=…, **config fields)``."""

    def factory(symbols: list[str], seed: int = 42, **fields: object) -> SyntheticMarket:
        market = SyntheticMarket(engine, symbols, seed=seed, config=MarketConfig(**fields))  # type: ignore[arg-type]
        market.advance(clock.now)
        return market

    return factory


@pytest.fixture
def run(clock: Clock) -> Callable[..., list]:
    """``run(market, seconds, step_ms=100)``: advance market and clock; returns every engine result."""

    def advance(market: SyntheticMarket, seconds: float, step_ms: int = 100) -> list:
        out = []
        for _ in range(int(seconds * 1000 // step_ms)):
            clock.now += step_ms
            out.extend(market.advance(clock.now))
        return out

    return advance
