"""The order-book imbalance strategy on crafted books: fires, stays quiet, exits (values derived by hand)."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from schemas.enums import EntryStyle, Side, SignalAction
from testkit.rows import T0_MS
from testkit.strategies import analysis_of, position, strategy_config
from trading_daemon.strategies import ImbalanceStrategy

CONFIG = strategy_config().imbalance  # buy >= 0.75, sell <= 0.25, 10 000 USDT clusters, depth 5, maker


def strategy(**changes: object) -> ImbalanceStrategy:
    return ImbalanceStrategy(dataclasses.replace(CONFIG, **changes))


# bids hold 200 of 240 in the first five levels (0.8333); 150 at 100.0 is a 15 000 USDT cluster
BID_HEAVY = ([(100.0, 150.0), (99.9, 50.0)], [(100.1, 20.0), (100.2, 20.0)])


def test_bid_heavy_book_with_a_bid_cluster_buys_at_the_touch() -> None:
    signal = strategy().analyze(analysis_of(*BID_HEAVY), [], None)
    assert signal is not None and signal.action is SignalAction.BUY and signal.source == "imbalance"
    assert signal.confidence == pytest.approx(0.5 + 0.5 * (200 / 240 - 0.75) / 0.25)
    assert signal.strength == pytest.approx(2 * 200 / 240 - 1)
    assert float(signal.price or 0) == 100.0  # maker: PostOnly at the best bid
    ctx = signal.context or {}
    assert ctx["entry_style"] == "maker" and ctx["kind"] == "entry" and ctx["horizon_s"] == 60.0
    assert ctx["stop_loss"] == pytest.approx(100.0 * (1 - 10e-4))  # 10 bps
    assert ctx["take_profit"] == pytest.approx(100.0 * (1 + 15e-4))  # 15 bps
    taker = strategy(entry_style=EntryStyle.TAKER).analyze(analysis_of(*BID_HEAVY), [], None)
    assert taker is not None and float(taker.price or 0) == pytest.approx(100.05)  # the mid


def test_ask_heavy_book_with_an_ask_cluster_sells() -> None:
    bids, asks = [(100.0, 20.0), (99.9, 20.0)], [(100.1, 150.0), (100.2, 50.0)]
    signal = strategy().analyze(analysis_of(bids, asks), [], None)
    assert signal is not None and signal.action is SignalAction.SELL
    assert float(signal.price or 0) == 100.1  # the best ask
    assert (signal.context or {})["stop_loss"] == pytest.approx(100.1 * (1 + 10e-4))


@pytest.mark.parametrize(
    ("bids", "asks", "why"),
    [
        ([(100.0, 150.0)], [(100.1, 100.0)], "0.6 is between the thresholds"),
        # 0.80 bid-heavy, but no bid level reaches 10 000 USDT while an ask level does (11 011 USDT)
        ([(100.0 - i / 10, 90.0) for i in range(5)], [(100.1, 110.0)], "no supporting cluster"),
        # 510/670 = 0.76 bid-heavy with a 15 000 USDT bid cluster (the 90s are ~9 000 USDT each), but a
        # 16 016 USDT cluster rests on the ask
        (
            [(100.0, 150.0), *((99.9 - i / 10, 90.0) for i in range(4))],
            [(100.1, 160.0)],
            "larger clusters against it",
        ),
        ([(100.0, 150.0)], [], "one-sided book"),
    ],
)
def test_stays_quiet(bids: list[tuple[float, float]], asks: list[tuple[float, float]], why: str) -> None:
    assert strategy().analyze(analysis_of(bids, asks), [], None) is None, why


def test_depth_setting_chooses_the_imbalance_read() -> None:
    # touch 150 vs 20 (0.88) but five levels 150+10 vs 20+200 (0.42): depth 1 buys, depth 5 does not
    bids, asks = [(100.0, 150.0), (99.9, 10.0)], [(100.1, 20.0), (100.2, 200.0)]
    assert strategy(depth=5).analyze(analysis_of(bids, asks), [], None) is None
    signal = strategy(depth=1).analyze(analysis_of(bids, asks), [], None)
    # own clusters 15 000 (bid) against 20 040 (ask): the clusters still refuse it
    assert signal is None
    signal = strategy(depth=1).analyze(analysis_of(bids, [(100.1, 20.0), (100.2, 90.0)]), [], None)
    assert signal is not None and signal.action is SignalAction.BUY


def test_exits_of_a_long() -> None:
    s = strategy()
    long = position(Side.BUY, 100.0, opened_ms=T0_MS)
    balanced = ([(100.0, 10.0)], [(100.1, 10.0)])
    assert s.exit_signal(analysis_of(*balanced, ts=T0_MS + 5_000), [], long) is None
    # the mid 100.05 is below the entry's 100.15 target and above its 99.9 stop; then it reaches each
    target = s.exit_signal(analysis_of([(100.15, 10.0)], [(100.17, 10.0)], ts=T0_MS + 5_000), [], long)
    assert target is not None and (target.context or {})["rule"] == "take_profit"
    assert target.action is SignalAction.SELL and (target.context or {})["reduce_only"] is True
    stop = s.exit_signal(analysis_of([(99.85, 10.0)], [(99.9, 10.0)], ts=T0_MS + 5_000), [], long)
    assert stop is not None and (stop.context or {})["rule"] == "stop_loss"
    # the book turned ask-heavy (0.2): reversal; the position outlived 60 s: max hold
    reversal = s.exit_signal(analysis_of([(100.0, 10.0)], [(100.1, 40.0)], ts=T0_MS + 5_000), [], long)
    assert reversal is not None and (reversal.context or {})["rule"] == "reversal"
    expired = s.exit_signal(analysis_of(*balanced, ts=T0_MS + 60_000), [], long)
    assert expired is not None and (expired.context or {})["rule"] == "max_hold"


def test_exits_use_the_levels_the_position_carries() -> None:
    s = strategy()
    short = position(Side.SELL, 100.1, stop_loss=100.3, take_profit=99.95)
    assert s.exit_signal(analysis_of([(100.0, 10.0)], [(100.1, 10.0)], ts=T0_MS + 1), [], short) is None
    hit = s.exit_signal(analysis_of([(99.9, 10.0)], [(99.95, 10.0)], ts=T0_MS + 1), [], short)
    assert hit is not None and hit.action is SignalAction.BUY
    assert (hit.context or {})["rule"] == "take_profit" and (hit.context or {})["target"] == 99.95


def test_signal_context_is_json() -> None:
    signal = strategy().analyze(analysis_of(*BID_HEAVY), [], None)
    assert signal is not None
    decoded = msgspec.json.decode(msgspec.json.encode(signal.context))
    assert decoded["indicators"]["imbalance"] == pytest.approx(200 / 240)
