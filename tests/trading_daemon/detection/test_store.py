"""Persistence of detections and support/resistance levels in real Postgres: the repository's upsert
(an episode that grows keeps one row; a replayed or older version changes nothing), level sets, and the
batched writer that the service feeds off the market path, through an outage of the database."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from psycopg_pool import AsyncConnectionPool

from infra.db.errors import DatabaseUnavailable
from infra.db.repositories import DetectionRepository
from schemas.detection import Detection, DetectionKind, LevelKind, SupportResistanceLevel
from schemas.enums import Side
from tests.trading_daemon.detection.books import SYMBOL, T0, CraftedMarket, bid, config
from tests.trading_daemon.detection.test_manipulation import spoof
from tests.trading_daemon.detection.test_support_resistance import ranging
from trading_daemon.detection import DetectionService, DetectionStore
from trading_daemon.errors import Backoff


def detection(**changes: object) -> Detection:
    base = Detection(
        detection_id=f"{SYMBOL}:spoofing:Buy:{T0}",
        symbol=SYMBOL,
        kind=DetectionKind.SPOOFING,
        side=Side.BUY,
        price_low=99.97,
        price_high=99.97,
        start_ms=T0,
        end_ms=T0 + 2_000,
        detected_ms=T0 + 3_500,
        updated_ms=T0 + 3_500,
        confidence=0.72,
        evidence={"order_count": 1, "orders": [{"price": 99.97, "size": 600.0}]},
    )
    return msgspec.structs.replace(base, **changes)


def level(price: float, computed_ms: int, **changes: object) -> SupportResistanceLevel:
    base = SupportResistanceLevel(
        symbol=SYMBOL,
        kind=LevelKind.SUPPORT,
        price=price,
        price_low=price - 0.02,
        price_high=price + 0.02,
        strength=0.6,
        touches=3,
        volume=300.0,
        first_touch_ms=T0,
        last_touch_ms=T0 + 60_000,
        computed_ms=computed_ms,
    )
    return msgspec.structs.replace(base, **changes)


async def test_an_episode_is_one_row_that_only_moves_forward(pool: AsyncConnectionPool) -> None:
    repo = DetectionRepository(pool)
    first = detection()
    grown = detection(
        end_ms=T0 + 9_000,
        updated_ms=T0 + 10_500,
        price_high=99.99,
        confidence=0.9,
        evidence={"order_count": 2},
    )
    assert await repo.upsert_detections([first]) == 1
    assert await repo.upsert_detections([grown]) == 1
    assert await repo.upsert_detections([first]) == 0  # a replay of the older version changes nothing
    assert await repo.upsert_detections([grown]) == 1  # the same version again: harmless, same row
    [stored] = await repo.recent_detections(symbol=SYMBOL)
    assert stored == grown
    other = detection(
        detection_id="ETHUSDT:layering:Sell:1",
        symbol="ETHUSDT",
        kind=DetectionKind.LAYERING,
        side=Side.SELL,
        start_ms=T0 + 20_000,
        end_ms=T0 + 25_000,
        detected_ms=T0 + 26_000,
        updated_ms=T0 + 26_000,
    )
    await repo.upsert_detections([other])
    assert [d.detection_id for d in await repo.recent_detections()] == [
        other.detection_id,
        grown.detection_id,
    ]
    assert await repo.recent_detections(kind=DetectionKind.SPOOFING) == [grown]
    assert await repo.recent_detections(since_ms=T0 + 1) == [other]


async def test_level_sets_and_the_latest_one(pool: AsyncConnectionPool) -> None:
    repo = DetectionRepository(pool)
    assert await repo.latest_levels(SYMBOL) == []
    old = [level(99.0, T0 + 120_000), level(101.0, T0 + 120_000, kind=LevelKind.RESISTANCE)]
    new = [level(99.1, T0 + 180_000, broken_ms=T0 + 150_000)]
    assert await repo.add_levels(SYMBOL, T0 + 120_000, old) == 2
    assert await repo.add_levels(SYMBOL, T0 + 180_000, new) == 1
    assert await repo.add_levels(SYMBOL, T0 + 180_000, new) == 0  # replayed
    assert await repo.latest_levels(SYMBOL) == new
    with pytest.raises(ValueError, match="does not belong"):
        await repo.add_levels("ETHUSDT", T0, old)


async def test_the_service_persists_what_it_finds_through_its_store(pool: AsyncConnectionPool) -> None:
    repo = DetectionRepository(pool)
    store = DetectionStore(repo, flush_interval_s=0.05)
    market = CraftedMarket()
    market.service = DetectionService(config(), [SYMBOL], store=store)
    market.service.submit_book(
        SYMBOL,
        market.t,
        [(bid(r), 10.0) for r in range(50)],
        [(round(100.01 + r / 100, 2), 10.0) for r in range(50)],
        snapshot=True,
    )
    market.service.start()
    try:
        spoof(market, bid(2), life_ms=2_000)
        market.wait(2_000)
        market.service.submit_candles(ranging())
        for _ in range(100):
            if store.stats().pending == 0 and store.stats().detections_written:
                break
            await asyncio.sleep(0.05)
    finally:
        await market.service.stop()
    assert await repo.recent_detections(symbol=SYMBOL) == market.detections()
    assert await repo.latest_levels(SYMBOL) == market.service.levels(SYMBOL)
    stats = market.service.status().store
    assert stats is not None and stats.detections_written == 1 and stats.level_sets_written == 1


class Outage:
    """A repository whose database is down for the first `failures` writes."""

    def __init__(self, repo: DetectionRepository, failures: int) -> None:
        self.repo = repo
        self.failures = failures

    async def upsert_detections(self, detections: list[Detection]) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise DatabaseUnavailable("database at test is unreachable")
        return await self.repo.upsert_detections(detections)

    async def add_levels(self, symbol: str, computed_ms: int, levels: list[SupportResistanceLevel]) -> int:
        return await self.repo.add_levels(symbol, computed_ms, levels)


async def test_detections_wait_out_a_database_outage(pool: AsyncConnectionPool) -> None:
    repo = DetectionRepository(pool)
    store = DetectionStore(Outage(repo, failures=3), flush_interval_s=0.02, backoff=Backoff(0.01, 0.02))  # type: ignore[arg-type]
    store.start()
    try:
        store.submit_detection(detection())
        store.submit_detection(detection(updated_ms=T0 + 5_000, confidence=0.8))
        for _ in range(200):
            if store.stats().detections_written:
                break
            await asyncio.sleep(0.02)
    finally:
        await store.stop()
    stats = store.stats()
    assert stats.write_failures == 3 and stats.detections_written == 1 and stats.pending == 0
    [stored] = await repo.recent_detections()
    assert stored.confidence == 0.8  # the newer version replaced the older one while waiting
