"""Detections scored against ground-truth episodes: precision and recall per detector and per symbol.

The ground truth is the paper exchange's (docs/exchange_sim_market.md §12): a list of episode records
(`GET /sim/ground-truth`, `SyntheticMarket.ground_truth()`, an offline recording's `truth.episodes`),
each with `symbol`, `kind` (spoofing | layering | benign_wall | benign_stack), `side`, `start_ms`,
`end_ms` and its `orders` (price, qty, placed_ms, cancelled_ms).

**The matching rule** (docs/detection.md §5): a detection matches an episode when

* both are of the same kind (spoofing ~ spoofing, layering ~ layering) and symbol, and the same side;
* their times overlap: [start_ms, end_ms] of the detection meets [start_ms - slack, end_ms + slack] of
  the episode (`time_slack_ms`, default 2 s: the book shows an order one push after it is placed, and
  the episode record ends at its last action);
* their prices overlap: [price_low, price_high] of the detection meets the span of the episode's order
  prices widened by `price_slack_bps` on each side.

Precision of a detector = detections matching at least one episode of their kind / its detections;
recall = episodes matched by at least one detection / the episodes of that kind that placed at least
one order (an episode that placed nothing left nothing to see). Unmatched detections are sorted by what
they overlap instead (the same rule, any kind): a benign look-alike (the hard negatives), a
manipulation of the other kind (kind confusion), or nothing (background). Benign episodes are scored
too: a look-alike is flagged when a detection that matches no manipulation episode overlaps it (a true
spoof next to a long benign wall is no false alarm about the wall); the share flagged is their
false-positive rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.detection import Detection

MANIPULATIONS = ("spoofing", "layering")
LOOK_ALIKES = {"spoofing": "benign_wall", "layering": "benign_stack"}
ALL = "*"


@dataclass(frozen=True, slots=True)
class MatchRule:
    """How close a detection must come to an episode to match it (see the module docstring)."""

    time_slack_ms: int = 2_000
    price_slack_bps: float = 1.0
    same_side: bool = True


@dataclass(frozen=True, slots=True)
class Episode:
    """What the matching needs of one ground-truth record."""

    episode_id: str
    symbol: str
    kind: str
    side: str
    start_ms: int
    end_ms: int
    price_low: float
    price_high: float
    orders: int

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Episode:
        """One record of the paper exchange's ground truth; the error names what is missing."""
        try:
            prices = [float(o["price"]) for o in record["orders"]]
            return cls(
                episode_id=str(record["episode_id"]),
                symbol=str(record["symbol"]),
                kind=str(record["kind"]),
                side=str(record["side"]),
                start_ms=int(record["start_ms"]),
                end_ms=int(record["end_ms"]),
                price_low=min(prices) if prices else math.nan,
                price_high=max(prices) if prices else math.nan,
                orders=len(prices),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"ground-truth episode {record.get('episode_id', '?')!r} is malformed: {exc!r}"
            ) from exc


@dataclass(frozen=True, slots=True)
class DetectorScore:
    """One detector's result on one symbol (or on all: `symbol` = "*")."""

    kind: str
    symbol: str
    detections: int
    true_positives: int
    episodes: int
    episodes_found: int
    # unmatched detections by what they overlap: benign, other_kind, background
    false_positives: dict[str, int]
    # episodes that placed the orders their kind needs (a layer: its min orders), and those found
    complete_episodes: int = 0
    complete_found: int = 0

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.detections if self.detections else None

    @property
    def recall(self) -> float | None:
        return self.episodes_found / self.episodes if self.episodes else None

    @property
    def recall_complete(self) -> float | None:
        """Recall over the episodes that placed enough orders to be seen as their kind at all."""
        return self.complete_found / self.complete_episodes if self.complete_episodes else None


@dataclass(frozen=True, slots=True)
class LookAlikeScore:
    """How many benign look-alikes of one kind (and symbol) any manipulation detection flagged."""

    kind: str
    symbol: str
    episodes: int
    flagged: int

    @property
    def false_positive_rate(self) -> float | None:
        return self.flagged / self.episodes if self.episodes else None


@dataclass(frozen=True, slots=True)
class DetectionEvaluation:
    """Scores per detector and symbol, the look-alikes, and the rule they were scored with."""

    rule: MatchRule
    scores: list[DetectorScore]
    look_alikes: list[LookAlikeScore]
    unmatched: list[Detection] = field(default_factory=list)
    missed: list[Episode] = field(default_factory=list)

    def score(self, kind: str, symbol: str = ALL) -> DetectorScore:
        for s in self.scores:
            if s.kind == kind and s.symbol == symbol:
                return s
        raise KeyError(f"no score for {kind} on {symbol}")

    def table(self) -> str:
        """The scores as a Markdown table (docs/detection.md prints one)."""
        lines = [
            "| detector | symbol | detections | precision | episodes | recall | complete episodes | recall "
            "(complete) | false positives (benign / other kind / background) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in self.scores:
            fp = s.false_positives
            lines.append(
                f"| {s.kind} | {s.symbol} | {s.detections} | {_fmt(s.precision)} | {s.episodes} | "
                f"{_fmt(s.recall)} | {s.complete_episodes} | {_fmt(s.recall_complete)} | "
                f"{fp['benign']} / {fp['other_kind']} / {fp['background']} |"
            )
        lines += ["", "| look-alike | symbol | episodes | flagged |", "| --- | --- | --- | --- |"]
        for b in self.look_alikes:
            lines.append(f"| {b.kind} | {b.symbol} | {b.episodes} | {b.flagged} |")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def matches(detection: Detection, episode: Episode, rule: MatchRule, *, any_kind: bool = False) -> bool:
    """Whether `detection` matches `episode` under `rule` (`any_kind`: ignore the kinds)."""
    if detection.symbol != episode.symbol or episode.orders == 0:
        return False
    if not any_kind and str(detection.kind) != episode.kind:
        return False
    if rule.same_side and str(detection.side) != episode.side:
        return False
    if (
        detection.end_ms < episode.start_ms - rule.time_slack_ms
        or detection.start_ms > episode.end_ms + rule.time_slack_ms
    ):
        return False
    slack = rule.price_slack_bps / 10_000
    low, high = episode.price_low * (1 - slack), episode.price_high * (1 + slack)
    return detection.price_high >= low and detection.price_low <= high


def evaluate(
    detections: Iterable[Detection],
    episodes: Iterable[Mapping[str, Any] | Episode],
    *,
    symbols: Sequence[str] | None = None,
    rule: MatchRule | None = None,
    min_orders: Mapping[str, int] | None = None,
) -> DetectionEvaluation:
    """Score the manipulation detections (breakouts are left out) against `episodes` (see the module docstring).

    `symbols` limits the scoring (default: every symbol of the detections and episodes); scores come
    per detector for each symbol and over all of them ("*"). `min_orders` (kind -> orders, default
    layering 3) defines the complete episodes of the second recall: a layering episode pulled after
    one or two orders never was a layer anyone could see.
    """
    rule = rule or MatchRule()
    min_orders = {"layering": 3} if min_orders is None else min_orders
    found = [d for d in detections if d.kind.manipulative]
    truth = [e if isinstance(e, Episode) else Episode.from_record(e) for e in episodes]
    chosen = (
        list(symbols)
        if symbols is not None
        else sorted({d.symbol for d in found} | {e.symbol for e in truth})
    )
    found = [d for d in found if d.symbol in chosen]
    truth = [e for e in truth if e.symbol in chosen and e.orders > 0]
    scores: list[DetectorScore] = []
    unmatched: list[Detection] = []
    missed: list[Episode] = []
    for kind in MANIPULATIONS:
        for symbol in [*chosen, ALL]:
            mine = [d for d in found if str(d.kind) == kind and symbol in (ALL, d.symbol)]
            theirs = [e for e in truth if e.kind == kind and symbol in (ALL, e.symbol)]
            others = [e for e in truth if e.kind != kind and symbol in (ALL, e.symbol)]
            tp = 0
            fps = {"benign": 0, "other_kind": 0, "background": 0}
            for d in mine:
                if any(matches(d, e, rule) for e in theirs):
                    tp += 1
                    continue
                if symbol == ALL:
                    unmatched.append(d)
                overlapped = [e.kind for e in others if matches(d, e, rule, any_kind=True)]
                if any(k.startswith("benign") for k in overlapped):
                    fps["benign"] += 1
                elif overlapped:
                    fps["other_kind"] += 1
                else:
                    fps["background"] += 1
            hit = [e for e in theirs if any(matches(d, e, rule) for d in mine)]
            if symbol == ALL:
                missed += [e for e in theirs if e not in hit]
            needed = min_orders.get(kind, 1)
            complete = [e for e in theirs if e.orders >= needed]
            scores.append(
                DetectorScore(
                    kind, symbol, len(mine), tp, len(theirs), len(hit), fps,
                    len(complete), len([e for e in complete if e in hit]),
                )
            )  # fmt: skip
    look_alikes = []
    for kind in LOOK_ALIKES.values():
        for symbol in [*chosen, ALL]:
            benign = [e for e in truth if e.kind == kind and symbol in (ALL, e.symbol)]
            flagged = [e for e in benign if any(matches(d, e, rule, any_kind=True) for d in unmatched)]
            look_alikes.append(LookAlikeScore(kind, symbol, len(benign), len(flagged)))
    return DetectionEvaluation(rule, scores, look_alikes, unmatched, missed)


def merge(evaluations: Sequence[DetectionEvaluation]) -> DetectionEvaluation:
    """Pool evaluations of separate runs (several seeds: each scored on its own, since runs share symbols
    and clock) by adding their counts."""
    if not evaluations:
        raise ValueError("merge needs at least one evaluation")
    rule = evaluations[0].rule
    if any(e.rule != rule for e in evaluations):
        raise ValueError("evaluations scored with different rules cannot be pooled")
    scores: dict[tuple[str, str], DetectorScore] = {}
    looks: dict[tuple[str, str], LookAlikeScore] = {}
    for evaluation in evaluations:
        for s in evaluation.scores:
            held = scores.get((s.kind, s.symbol))
            if held is None:
                scores[(s.kind, s.symbol)] = s
                continue
            scores[(s.kind, s.symbol)] = DetectorScore(
                s.kind,
                s.symbol,
                held.detections + s.detections,
                held.true_positives + s.true_positives,
                held.episodes + s.episodes,
                held.episodes_found + s.episodes_found,
                {k: held.false_positives[k] + s.false_positives[k] for k in held.false_positives},
                held.complete_episodes + s.complete_episodes,
                held.complete_found + s.complete_found,
            )
        for b in evaluation.look_alikes:
            prior = looks.get((b.kind, b.symbol))
            looks[(b.kind, b.symbol)] = (
                b
                if prior is None
                else LookAlikeScore(b.kind, b.symbol, prior.episodes + b.episodes, prior.flagged + b.flagged)
            )
    return DetectionEvaluation(
        rule,
        list(scores.values()),
        list(looks.values()),
        [d for e in evaluations for d in e.unmatched],
        [m for e in evaluations for m in e.missed],
    )
