"""Majority, weighted and unanimous consensus with MIN_STRATEGIES and MIN_CONSENSUS_CONFIDENCE."""

from __future__ import annotations

import pytest

from schemas.enums import SignalAction
from trading_daemon.strategies import Vote, combine

BUY, SELL = SignalAction.BUY, SignalAction.SELL


def vote(
    name: str, action: SignalAction, confidence: float, weight: float = 1.0, strength: float = 0.5
) -> Vote:
    return Vote(name, action, confidence, strength, weight)


A, B, C = vote("a", BUY, 0.75), vote("b", BUY, 0.70), vote("c", SELL, 0.60)


def test_weighted() -> None:
    two = combine([A, B], mode="weighted", min_strategies=2, min_confidence=0.6)
    assert (two.action, two.agreeing, two.confidence) == (BUY, ("a", "b"), pytest.approx(0.725))
    # a dissenting vote counts in the denominator: (0.75 + 0.70) / 3
    three = combine([A, B, C], mode="weighted", min_strategies=2, min_confidence=0.6)
    assert three.action is None and three.confidence == pytest.approx(1.45 / 3)
    assert "MIN_CONSENSUS_CONFIDENCE" in three.reason
    assert combine([A, B, C], mode="weighted", min_strategies=2, min_confidence=0.4).action is BUY
    # weight 0 takes a strategy out; a heavy one carries the vote: 3·0.6 against 0.75 + 0.70
    muted = combine(
        [A, B, vote("c", SELL, 0.6, weight=0.0)], mode="weighted", min_strategies=2, min_confidence=0.6
    )
    assert muted.action is BUY and muted.opposing == ()
    heavy = combine(
        [A, B, vote("c", SELL, 0.6, weight=3.0)], mode="weighted", min_strategies=1, min_confidence=0.3
    )
    assert heavy.action is SELL and heavy.confidence == pytest.approx(1.8 / 5)


def test_majority() -> None:
    result = combine([A, B, C], mode="majority", min_strategies=2, min_confidence=0.6)
    assert (result.action, result.confidence, result.opposing) == (BUY, pytest.approx(0.725), ("c",))
    tie = combine([A, C], mode="majority", min_strategies=1, min_confidence=0.0)
    assert tie.action is None and "no majority" in tie.reason


def test_unanimous() -> None:
    assert combine([A, B, C], mode="unanimous", min_strategies=2, min_confidence=0.0).action is None
    result = combine([A, B], mode="unanimous", min_strategies=2, min_confidence=0.6)
    assert result.action is BUY and result.confidence == pytest.approx(0.725)


@pytest.mark.parametrize("mode", ["majority", "weighted", "unanimous"])
def test_min_strategies_and_no_votes(mode: str) -> None:
    one = combine([A], mode=mode, min_strategies=2, min_confidence=0.0)  # type: ignore[arg-type]
    assert one.action is None and "MIN_STRATEGIES" in one.reason and one.agreeing == ("a",)
    assert combine([A], mode=mode, min_strategies=1, min_confidence=0.0).action is BUY  # type: ignore[arg-type]
    assert combine([], mode=mode, min_strategies=1, min_confidence=0.0).reason == "no votes"  # type: ignore[arg-type]
