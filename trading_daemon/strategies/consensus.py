"""How the strategies' votes become one decision (docs/strategies.md §3): majority, weighted or unanimous.

Only votes that were sent count (their expected edge covered the cost). For a direction to win:

* **majority**: more strategies vote for it than against it;
* **weighted**: its Σ weight·confidence exceeds the other direction's; the consensus confidence is that sum
  over the Σ weight of every vote, so dissent lowers it (two agreeing votes at 0.75 and 0.70 with weight 1
  give 0.725; a third, opposing, vote brings it to 0.48); a strategy of weight 0 does not vote;
* **unanimous**: no strategy votes against it.

In every mode at least MIN_STRATEGIES strategies must agree and the consensus confidence must reach
MIN_CONSENSUS_CONFIDENCE; in majority and unanimous modes the confidence is the agreeing votes' mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infra.settings import ConsensusMode
from schemas.enums import SignalAction


@dataclass(frozen=True, slots=True)
class Vote:
    strategy: str
    action: SignalAction  # BUY or SELL
    confidence: float
    strength: float
    weight: float


@dataclass(frozen=True, slots=True)
class Agreement:
    """The outcome of one combination: the winning direction or None, and why."""

    action: SignalAction | None
    confidence: float
    strength: float
    agreeing: tuple[str, ...]
    opposing: tuple[str, ...]
    reason: str


def combine(
    votes: Sequence[Vote], *, mode: ConsensusMode, min_strategies: int, min_confidence: float
) -> Agreement:
    """Combine `votes` by `mode` (see the module docstring)."""
    if mode == "weighted":
        votes = [v for v in votes if v.weight > 0]
    if not votes:
        return Agreement(None, 0.0, 0.0, (), (), "no votes")
    buys = [v for v in votes if v.action is SignalAction.BUY]
    sells = [v for v in votes if v.action is SignalAction.SELL]
    if mode == "weighted":
        score_buy = sum(v.weight * v.confidence for v in buys)
        score_sell = sum(v.weight * v.confidence for v in sells)
        if score_buy == score_sell:
            return Agreement(None, 0.0, 0.0, (), (), f"weighted tie {score_buy:.3f} : {score_sell:.3f}")
        win, lose, score = (buys, sells, score_buy) if score_buy > score_sell else (sells, buys, score_sell)
        confidence = score / sum(v.weight for v in votes)
    else:
        if len(buys) == len(sells):
            return Agreement(
                None, 0.0, 0.0, (), (), f"{len(buys)} buy and {len(sells)} sell votes: no majority"
            )
        win, lose = (buys, sells) if len(buys) > len(sells) else (sells, buys)
        if mode == "unanimous" and lose:
            return Agreement(
                None,
                0.0,
                0.0,
                _names(win),
                _names(lose),
                f"not unanimous: {', '.join(_names(lose))} disagree",
            )
        confidence = sum(v.confidence for v in win) / len(win)
    action = win[0].action
    strength = sum(v.strength for v in win) / len(win)
    agreeing, opposing = _names(win), _names(lose)
    if len(win) < min_strategies:
        return Agreement(
            None,
            confidence,
            strength,
            agreeing,
            opposing,
            f"{len(win)} {action} vote(s), MIN_STRATEGIES is {min_strategies}",
        )
    if confidence < min_confidence:
        return Agreement(
            None,
            confidence,
            strength,
            agreeing,
            opposing,
            f"confidence {confidence:.3f} below MIN_CONSENSUS_CONFIDENCE {min_confidence}",
        )
    return Agreement(
        action,
        confidence,
        strength,
        agreeing,
        opposing,
        f"{mode}: {', '.join(agreeing)} {action}" + (f" against {', '.join(opposing)}" if opposing else ""),
    )


def _names(votes: Sequence[Vote]) -> tuple[str, ...]:
    return tuple(v.strategy for v in votes)
