"""The spoofing and layering detectors on crafted book messages: they fire on a crafted spoof or layer and
stay quiet on the honest look-alikes (a wall that rests and trades, a stack that rests for minutes, a
queue worn down gradually, growth at the touch, a level that merely scrolls out of the 50-level window)."""

from __future__ import annotations

from schemas.detection import DetectionKind
from schemas.enums import Side
from schemas.market import PublicTrade
from tests.trading_daemon.detection.books import LEVEL, SYMBOL, CraftedMarket, ask, bid, config

SPOOF = 600.0  # $60,000 at 100: over SPOOFING_MIN_NOTIONAL_USDT and 60x the typical level


def spoof(market: CraftedMarket, price: float, *, life_ms: int, side: str = "bid") -> None:
    """Place SPOOF at `price` in one message and take it away again in one message `life_ms` later."""
    key = "bids" if side == "bid" else "asks"
    market.book(**{key: [(price, LEVEL + SPOOF)]})
    market.wait(life_ms)
    market.book(**{key: [(price, LEVEL)]})


def test_a_spoof_is_detected_after_it_is_pulled_and_its_trades_have_settled() -> None:
    market = CraftedMarket()
    spoof(market, bid(3), life_ms=2_000)
    assert market.detections() == []  # judged only once late trades and layer companions had their time
    market.wait(2_000)
    [found] = market.detections()
    assert found.kind is DetectionKind.SPOOFING and found.side is Side.BUY
    assert found.price_low == found.price_high == bid(3)
    assert found.end_ms - found.start_ms == 2_000 + 20
    evidence = found.evidence["orders"][0]
    assert evidence["multiple"] == 60.0 and evidence["cancelled_share"] == 1.0 and evidence["rank"] == 3
    assert 0.6 <= found.confidence <= 1.0


def test_repeated_spoofs_extend_one_episode_and_raise_its_confidence() -> None:
    market = CraftedMarket()
    spoof(market, ask(2), life_ms=1_500, side="ask")
    market.wait(3_000)
    [first] = market.detections()
    spoof(market, ask(4), life_ms=2_500, side="ask")
    market.wait(3_000)
    [extended] = market.detections()
    assert extended.detection_id == first.detection_id and extended.side is Side.SELL
    assert extended.evidence["order_count"] == 2 and extended.confidence > first.confidence
    assert (extended.price_low, extended.price_high) == (ask(2), ask(4))
    assert extended.end_ms > first.end_ms


def test_a_benign_wall_that_rests_for_minutes_is_not_a_spoof() -> None:
    market = CraftedMarket()
    spoof(market, bid(3), life_ms=90_000)
    market.wait(3_000)
    assert market.detections() == []


def test_a_wall_that_is_traded_away_is_not_a_spoof_even_when_brief() -> None:
    market = CraftedMarket()
    market.book(bids=[(bid(3), LEVEL + SPOOF)])
    market.wait(1_000)
    market.trade(bid(3), LEVEL + SPOOF, "Sell")  # takers sold into the whole level: it filled
    market.book(bids=[(bid(3), 0.0)])
    market.wait(3_000)
    assert market.detections() == []
    assert market.service.status().symbols[SYMBOL].large_orders_finished == 1


def test_trades_reported_after_the_push_still_count_as_fills() -> None:
    market = CraftedMarket()
    market.book(bids=[(bid(3), LEVEL + SPOOF)])
    market.wait(1_000)
    market.book(bids=[(bid(3), 0.0)])
    filled_at = market.t
    market.book(after_ms=100)
    market.service.submit_trades(
        [
            # the trade happened before the push that showed the level gone, but is reported after it
            PublicTrade(
                symbol=SYMBOL,
                ts=filled_at - 5,
                price=bid(3),
                size=LEVEL + SPOOF,
                side="Sell",
                trade_id="late",
            )
        ]
    )
    market.wait(3_000)
    assert market.detections() == []


def test_a_queue_worn_down_gradually_is_not_a_spoof() -> None:
    market = CraftedMarket()
    market.book(bids=[(bid(3), LEVEL + SPOOF)])
    size = LEVEL + SPOOF
    for _ in range(8):  # the stale volume behind a moved touch decays over several pushes
        size *= 0.6
        market.book(bids=[(bid(3), size)], after_ms=100)
    market.wait(3_000)
    assert market.detections() == []


def test_growth_at_the_touch_is_honest_liquidity() -> None:
    market = CraftedMarket()
    market.book(bids=[(bid(0), LEVEL + SPOOF)])
    market.wait(1_000)
    market.book(bids=[(bid(0), LEVEL)])
    market.wait(3_000)
    assert market.detections() == []
    assert market.service.status().symbols[SYMBOL].large_orders_finished == 0


def test_an_order_that_scrolls_out_of_the_window_is_not_called_cancelled() -> None:
    market = CraftedMarket()
    market.book(bids=[(bid(3), LEVEL + SPOOF)])
    market.wait(500)
    # The price runs up 60 ticks: new bids above, the old ones (the big one included) leave the top 50.
    new_bids = [(round(100.60 - r * 0.01, 2), LEVEL) for r in range(60)]
    market.book(
        bids=[*new_bids, *[(bid(r), 0.0) for r in range(50)]], asks=[(ask(r), 0.0) for r in range(50)]
    )
    market.wait(3_000)
    assert market.detections() == []


def test_a_small_or_far_order_is_not_a_spoof() -> None:
    market = CraftedMarket()
    market.book(bids=[(bid(3), LEVEL + 300.0)])  # $30,000: under SPOOFING_MIN_NOTIONAL_USDT
    market.wait(1_000)
    market.book(bids=[(bid(3), LEVEL)])
    spoof(market, bid(20), life_ms=1_000)  # beyond SPOOFING_MAX_LEVEL
    market.wait(3_000)
    assert market.detections() == []
    loose = CraftedMarket(config(spoofing_min_notional_usdt=20_000.0, spoofing_max_distance_ticks=25))
    loose.book(bids=[(bid(3), LEVEL + 300.0)])
    loose.wait(1_000)
    loose.book(bids=[(bid(3), LEVEL)])
    loose.wait(3_000)
    assert [d.kind for d in loose.detections()] == [DetectionKind.SPOOFING]


def place_layer(
    market: CraftedMarket, ranks: list[int], size: float, *, hold_ms: int, side: str = "bid"
) -> None:
    """Orders of about `size` on the levels `ranks`, placed 400 ms apart, held, then pulled 100 ms apart."""
    price = bid if side == "bid" else ask
    key = "bids" if side == "bid" else "asks"
    for i, rank in enumerate(ranks):
        market.book(**{key: [(price(rank), LEVEL + size * (1 + 0.03 * (i % 3 - 1)))]}, after_ms=400)
    market.wait(hold_ms)
    for rank in ranks:
        market.book(**{key: [(price(rank), LEVEL)]}, after_ms=100)


def test_a_layer_is_detected_as_one_layering_episode() -> None:
    market = CraftedMarket()
    place_layer(market, [2, 3, 4, 5], 300.0, hold_ms=6_000, side="ask")
    market.trade(bid(0), 5.0, "Sell")  # the layerer's real business on the other side
    market.wait(3_000)
    [found] = market.detections()
    assert found.kind is DetectionKind.LAYERING and found.side is Side.SELL
    assert (found.price_low, found.price_high) == (ask(2), ask(5))
    assert found.evidence["order_count"] == 4 and found.evidence["cancel_rate"] == 1.0
    assert found.confidence >= 0.6


def test_a_layer_of_spoof_sized_orders_is_layering_not_four_spoofs() -> None:
    market = CraftedMarket()
    place_layer(market, [1, 2, 3], SPOOF, hold_ms=4_000)
    market.wait(3_000)
    assert [d.kind for d in market.detections()] == [DetectionKind.LAYERING]


def test_a_benign_stack_resting_for_minutes_is_not_layering() -> None:
    market = CraftedMarket()
    place_layer(market, [2, 3, 4, 5], 300.0, hold_ms=120_000)
    market.wait(3_000)
    assert market.detections() == []


def test_orders_of_unlike_sizes_or_too_few_do_not_make_a_layer() -> None:
    market = CraftedMarket()
    for rank, size in ((2, 100.0), (3, 300.0), (4, 900.0)):  # far from similar
        market.book(bids=[(bid(rank), LEVEL + size)], after_ms=400)
    market.wait(5_000)
    for rank in (2, 3, 4):
        market.book(bids=[(bid(rank), LEVEL)], after_ms=100)
    place_layer(market, [2, 3], 300.0, hold_ms=5_000)  # two are not LAYERING_MIN_ORDERS
    market.wait(3_000)
    assert [d for d in market.detections() if d.kind is DetectionKind.LAYERING] == []


def test_layering_min_orders_is_honoured() -> None:
    market = CraftedMarket(config(layering_min_orders=4))
    place_layer(market, [2, 3, 4], 300.0, hold_ms=5_000)
    market.wait(3_000)
    assert market.detections() == []
