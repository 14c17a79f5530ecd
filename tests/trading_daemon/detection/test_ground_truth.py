"""The detectors scored against the paper exchange's ground truth: the matching rule on crafted episodes,
and the measured figures of a short held-out recording of the synthetic market (the detectors attached to the
daemon's own feed, as in the daemon). The full measurement is `python -m bench.detection`."""

from __future__ import annotations

import json

import pytest

from schemas.detection import Detection, DetectionKind
from schemas.enums import Side
from testkit.detection import TUNING_SEEDS, measure_detection
from trading_daemon.detection.evaluation import Episode, MatchRule, evaluate, matches, merge

T0 = 1_767_225_600_000


def episode(kind: str, *, start: int = T0, end: int = T0 + 5_000, prices: tuple[str, ...] = ("100.00",),
            side: str = "Buy", symbol: str = "BTCUSDT", eid: str = "e1") -> dict[str, object]:  # fmt: skip
    return {
        "episode_id": eid, "symbol": symbol, "kind": kind, "side": side, "start_ms": start, "end_ms": end,
        "orders": [{"price": p, "qty": "1", "placed_ms": start, "cancelled_ms": end} for p in prices],
    }  # fmt: skip


def detection(kind: DetectionKind, *, start: int = T0 + 20, end: int = T0 + 4_000, low: float = 100.0,
              high: float = 100.0, side: Side = Side.BUY, symbol: str = "BTCUSDT", did: str = "d1") -> Detection:  # fmt: skip
    return Detection(
        detection_id=did, symbol=symbol, kind=kind, side=side, price_low=low, price_high=high, start_ms=start,
        end_ms=end, detected_ms=end + 1_500, updated_ms=end + 1_500, confidence=0.8,
    )  # fmt: skip


def test_the_matching_rule() -> None:
    rule = MatchRule(time_slack_ms=2_000, price_slack_bps=1.0)
    spoof = Episode.from_record(episode("spoofing", prices=("100.00", "100.03")))
    assert matches(detection(DetectionKind.SPOOFING), spoof, rule)
    assert matches(detection(DetectionKind.SPOOFING, low=100.03, high=100.04), spoof, rule)  # price overlap
    assert matches(detection(DetectionKind.SPOOFING, low=100.039, high=100.05), spoof, rule)  # within 1 bp
    assert not matches(detection(DetectionKind.SPOOFING, low=100.05, high=100.06), spoof, rule)
    assert matches(
        detection(DetectionKind.SPOOFING, start=T0 + 6_900, end=T0 + 8_000), spoof, rule
    )  # 2 s slack
    assert not matches(detection(DetectionKind.SPOOFING, start=T0 + 7_100, end=T0 + 8_000), spoof, rule)
    assert not matches(detection(DetectionKind.LAYERING), spoof, rule)  # another kind
    assert matches(detection(DetectionKind.LAYERING), spoof, rule, any_kind=True)
    assert not matches(detection(DetectionKind.SPOOFING, side=Side.SELL), spoof, rule)
    assert matches(detection(DetectionKind.SPOOFING, side=Side.SELL), spoof, MatchRule(same_side=False))
    assert not matches(detection(DetectionKind.SPOOFING, symbol="ETHUSDT"), spoof, rule)


def test_precision_recall_and_what_false_positives_overlap() -> None:
    truth = [
        episode("spoofing", eid="s1"),
        episode("spoofing", eid="s2", start=T0 + 60_000, end=T0 + 65_000),  # missed
        episode("layering", eid="l1", start=T0 + 120_000, end=T0 + 130_000, prices=("100.00", "100.01", "100.02")),
        episode("layering", eid="l2", start=T0 + 200_000, end=T0 + 201_000),  # one order: incomplete, missed
        episode("benign_wall", eid="w1", start=T0 + 300_000, end=T0 + 400_000),
    ]  # fmt: skip
    found = [
        detection(DetectionKind.SPOOFING, did="a"),
        detection(DetectionKind.SPOOFING, did="b", start=T0 + 121_000, end=T0 + 122_000),  # on the layer
        detection(DetectionKind.SPOOFING, did="c", start=T0 + 350_000, end=T0 + 351_000),  # on the wall
        detection(DetectionKind.SPOOFING, did="d", start=T0 + 900_000, end=T0 + 901_000),  # nothing there
        detection(DetectionKind.LAYERING, did="e", start=T0 + 121_000, end=T0 + 129_000, high=100.02),
        detection(DetectionKind.BREAKOUT, did="f"),  # not scored
    ]
    result = evaluate(found, truth)
    spoofing, layering = result.score("spoofing"), result.score("layering")
    assert (spoofing.detections, spoofing.true_positives, spoofing.precision) == (4, 1, 0.25)
    assert (spoofing.episodes, spoofing.episodes_found, spoofing.recall) == (2, 1, 0.5)
    assert spoofing.false_positives == {"benign": 1, "other_kind": 1, "background": 1}
    assert (layering.precision, layering.recall, layering.recall_complete) == (1.0, 0.5, 1.0)
    assert result.score("spoofing", "BTCUSDT").detections == 4  # every one is BTCUSDT's
    [wall] = [b for b in result.look_alikes if b.kind == "benign_wall" and b.symbol == "*"]
    assert (wall.episodes, wall.flagged) == (1, 1)
    assert {e.episode_id for e in result.missed} == {"s2", "l2"}
    assert "| spoofing | * | 4 | 0.25 |" in result.table()
    pooled = merge([result, result])
    assert pooled.score("spoofing").detections == 8 and pooled.score("spoofing").precision == 0.25
    with pytest.raises(ValueError, match="malformed"):
        evaluate([], [{"episode_id": "x", "symbol": "BTCUSDT"}])


@pytest.mark.slow
def test_the_detectors_hold_their_measured_figures_on_a_held_out_recording() -> None:
    # Ten minutes of three symbols, seed 8 (the thresholds were tuned on other seeds), episodes four times
    # as frequent as by default and layering twelve times, so that each detector meets enough episodes.
    # The recording is deterministic; the floors are the figures it measured (docs/detection.md §6), so a
    # detector that loses a single true detection or gains a single false one here fails.
    assert 8 not in TUNING_SEEDS
    measured = measure_detection((8,), seconds=600, episode_rate=4.0, layering_rate=12.0)
    result = measured.evaluation
    spoofing, layering = result.score("spoofing"), result.score("layering")
    assert spoofing.episodes == 7 and (layering.episodes, layering.complete_episodes) == (8, 5), (
        "the recording's episodes changed: re-measure docs/detection.md §6"
    )
    assert spoofing.true_positives >= 7 and spoofing.detections - spoofing.true_positives <= 1  # 0.88
    assert spoofing.episodes_found == 7  # recall 1.00
    assert layering.true_positives >= 5 and layering.detections == layering.true_positives  # 1.00
    assert layering.complete_found == 5 and layering.episodes_found >= 6  # 1.00 complete, 0.75 all
    assert sum(b.flagged for b in result.look_alikes if b.symbol == "*") == 0
    # The paper exchange's admin API serves the same records as JSON (GET /sim/ground-truth, Decimal as
    # strings): scored from that encoding the figures are the same.
    served = json.loads(json.dumps(measured.episodes, default=str))
    again = evaluate(measured.detections, served, symbols=measured.symbols)
    assert again.scores == result.scores
