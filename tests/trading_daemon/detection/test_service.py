"""The detection service: the entry block and its window, what it reports, and that a failing detector
stops neither the feed nor the other symbols."""

from __future__ import annotations

from schemas.detection import DetectionKind
from testkit.rows import snapshot_rows
from tests.trading_daemon.detection.books import LEVEL, SYMBOL, T0, CraftedMarket, bid, config
from tests.trading_daemon.detection.test_manipulation import SPOOF, spoof
from trading_daemon.detection import DetectionService
from trading_daemon.market.feed import BookSink, MarketSink


def test_a_detected_spoof_blocks_entries_for_the_configured_time() -> None:
    market = CraftedMarket(config(manipulation_block_s=60.0))
    assert market.service.blocked(SYMBOL, market.t) is None
    spoof(market, bid(2), life_ms=2_000)
    assert market.service.blocked(SYMBOL, market.t) is None  # not judged yet
    market.wait(2_000)
    [found] = market.detections()
    assert market.service.blocked(SYMBOL, market.t) == found
    assert market.service.blocked(SYMBOL, found.end_ms + 60_000) == found  # the last ms of the window
    assert market.service.blocked(SYMBOL, found.end_ms + 60_001) is None
    assert market.service.blocked("OTHERUSDT", market.t) is None
    assert market.service.active(SYMBOL) == [found]
    status = market.service.status().symbols[SYMBOL]
    assert status.blocked_by == found.detection_id and status.blocked_until_ms == found.end_ms + 60_000
    assert status.detections == {"spoofing": 1}
    market.wait(61_000)
    assert market.service.active(SYMBOL) == []


def test_a_repeat_extends_the_block() -> None:
    market = CraftedMarket(config(manipulation_block_s=10.0))
    spoof(market, bid(2), life_ms=2_000)
    market.wait(8_000)
    first_end = market.detections()[0].end_ms
    spoof(market, bid(3), life_ms=2_000)
    market.wait(2_000)
    [episode] = market.detections()
    assert episode.end_ms > first_end
    assert market.service.blocked(SYMBOL, first_end + 10_001) == episode


def test_below_the_minimum_confidence_nothing_is_blocked() -> None:
    market = CraftedMarket(config(manipulation_min_confidence=0.99))
    spoof(market, bid(2), life_ms=2_000)
    market.wait(2_000)
    [found] = market.detections()
    assert found.confidence < 0.99
    assert market.service.blocked(SYMBOL, market.t) is None
    assert market.service.active(SYMBOL) == [found]  # still reported


def test_disabled_detection_sees_nothing() -> None:
    market = CraftedMarket(config(enabled=False))
    spoof(market, bid(2), life_ms=2_000)
    market.wait(3_000)
    assert market.detections() == [] and market.service.status().enabled is False


def test_a_detector_that_fails_is_counted_and_detection_carries_on(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    market = CraftedMarket()
    calls = {"n": 0}
    tracker = market.service._symbols[SYMBOL].tracker
    original = tracker.on_book

    def flaky(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tracker, "on_book", flaky)
    market.book(bids=[(bid(5), LEVEL + 1)])  # this one fails inside the detector, not in the feed
    spoof(market, bid(2), life_ms=2_000)
    market.wait(2_000)
    assert [d.kind for d in market.detections()] == [DetectionKind.SPOOFING]
    assert market.service.status().symbols[SYMBOL].errors == 1
    assert market.service.status().errors == 1


def test_rows_move_the_clock_of_a_quiet_book() -> None:
    market = CraftedMarket()
    market.book(bids=[(bid(2), LEVEL + SPOOF)])
    market.book(bids=[(bid(2), LEVEL)], after_ms=2_000)
    assert market.detections() == []
    rows = list(snapshot_rows(5, symbol=SYMBOL, start_ms=(market.t // 1000 + 1) * 1000))
    market.service.submit_rows(rows)
    assert [d.kind for d in market.detections()] == [DetectionKind.SPOOFING]


def test_the_service_is_the_feeds_sink() -> None:
    service = DetectionService(config(), [SYMBOL])
    assert isinstance(service, DetectionService)
    sink: MarketSink = service
    book_sink: BookSink = service
    assert sink is book_sink
    assert service.levels(SYMBOL) == [] and service.nearest_levels(SYMBOL, 100.0) == (None, None)
    assert service.blocked(SYMBOL, T0) is None
