"""`make bench`: run every benchmark and write bench/results.json."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from bench import (
    decisions,
    execution,
    features,
    inference,
    ingest,
    market,
    orchestration,
    orderbook,
    training,
)
from schemas.times import now_ms

RESULTS = Path(__file__).parent / "results.json"


def main() -> None:
    results = {
        "measured_ms": now_ms(),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "ingest": ingest.run(),
        "orderbook": orderbook.run(),
        "market": market.run(),
        "features": features.run(),
        "inference": inference.run(),
        "execution": execution.run(),
        "training": training.run(),
        "decisions": decisions.run(),
        "orchestration": orchestration.run(),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
