"""The manipulation detectors against the paper exchange's ground truth (docs/detection.md §6).

    nice -n 15 python -m bench.detection                      # held-out seeds 4-6, 1 h of 3 symbols each
    nice -n 15 python -m bench.detection --seeds 1 2 3        # the tuning seeds
    nice -n 15 python -m bench.detection --seconds 1200 --episode-rate 4 --seeds 7

Prints the precision/recall table per detector and symbol and the look-alikes, and writes the figures as
JSON (`--json`, default bench/detection.json). About 25 s of CPU per symbol-hour; not part of `make bench`
(minutes, not seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from schemas.times import now_ms
from testkit.detection import HELD_OUT_SEEDS, SYMBOLS, measure_detection

DEFAULT_JSON = Path(__file__).parent / "detection.json"


def run(
    seeds: tuple[int, ...], seconds: int, episode_rate: float, symbols: tuple[str, ...]
) -> dict[str, object]:
    started = time.process_time()
    result = measure_detection(seeds, symbols, seconds, episode_rate=episode_rate)
    ev = result.evaluation
    return {
        "measured_ms": now_ms(),
        "seeds": list(seeds),
        "symbols": list(symbols),
        "seconds": seconds,
        "episode_rate": episode_rate,
        "cpu_s": round(time.process_time() - started, 1),
        "rule": {"time_slack_ms": ev.rule.time_slack_ms, "price_slack_bps": ev.rule.price_slack_bps,
                 "same_side": ev.rule.same_side},
        "scores": [
            {"kind": s.kind, "symbol": s.symbol, "detections": s.detections, "precision": s.precision,
             "episodes": s.episodes, "recall": s.recall, "complete_episodes": s.complete_episodes,
             "recall_complete": s.recall_complete, "false_positives": s.false_positives}
            for s in ev.scores
        ],
        "look_alikes": [
            {"kind": b.kind, "symbol": b.symbol, "episodes": b.episodes, "flagged": b.flagged} for b in ev.look_alikes
        ],
        "table": ev.table(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--episode-rate", type=float, default=1.0)
    parser.add_argument("--symbols", nargs="+", default=list(SYMBOLS))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    figures = run(tuple(args.seeds), args.seconds, args.episode_rate, tuple(args.symbols))
    print(figures["table"])
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
