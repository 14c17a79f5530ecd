"""`depthcharge demo` end to end on the embedded defaults, shortened (40 + 10 minutes of market, drift judged
on 300 rows a side, a 5 s sensor), then run again to show that it reuses what the first run left.

The three default symbols stay: with less data the gate's intervals are too wide for any model to be promoted
(the demo then says so and skips the drift stages, which this test must see run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["--history-minutes", "40", "--drift-minutes", "10", "--sensor-interval", "5"]


def _demo(var: Path, trade_seconds: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "API_ENABLED", "TRADING_PAIRS")}
    # Steps in the run's own process (no process per step): the same assets, a minute less of start-ups.
    env.update(
        VAR_DIR=str(var),
        API_PORT="0",
        DAGSTER_UI_PORT="0",
        DRIFT_MAX_ROWS="300",
        DAGSTER_EXECUTOR="in_process",
    )
    return subprocess.run(
        [sys.executable, "-m", "depthcharge", "demo", *ARGS, "--trade-seconds", str(trade_seconds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )


def _left_behind(var: Path) -> list[int]:
    """Processes still running with this demo's VAR_DIR (its children and theirs: code servers too)."""
    deadline = time.monotonic() + 15  # the process groups got SIGTERM; give them a moment to go
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"VAR_DIR={var}".encode() in environ:
                found.append(int(proc.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _stage_seconds(out: str) -> dict[str, float]:
    table = out.split("stage timings", 1)[1]
    return {m[0].strip(): float(m[1]) for m in re.findall(r"^  (.+?)\s+([\d.]+) s", table, re.MULTILINE)}


@pytest.mark.slow(
    seconds=400
)  # records, trains through Dagster, judges drift, retrains from the sensor: about 5 min
@pytest.mark.timeout(1500)
def test_the_whole_loop_then_a_second_run_reuses_it() -> None:
    var = Path("/tmp") / f"dc-demo-{os.getpid()}"  # short: the embedded server's socket lives here
    try:
        first = _demo(var, 10)
        out = first.stdout
        assert first.returncode == 0, out + first.stderr
        # the processes came up and said where they are
        for name in ("dashboard:", "API docs:", "Dagster UI:", "login:"):
            assert re.search(rf"^    {name}\s+\S+", out, re.MULTILINE), out
        # 40 minutes of market recorded, the first model trained and promoted through Dagster
        assert re.search(r"stored BTCUSDT: 3,000 rows, [\d,]+ trades; ETHUSDT: 3,000 rows", out), out
        promoted = re.search(r"in production: (\S+) \(", out)
        assert promoted is not None, out
        # the daemon hot-swapped to it (its model_load audit row) and traded
        assert f"the trading daemon serves {promoted.group(1)}" in out, out
        # the regime shift was caught, and the sensor's retraining was judged by the gate
        assert re.search(r"severity BTCUSDT \w+, ETHUSDT \w+, SOLUSDT \w+", out), out
        assert re.search(r"severity .*\b(medium|high)\b", out), out  # the shift is seen
        decided = re.search(r"^    (\S+): (promoted|kept) \(macro_f1_10s", out, re.MULTILINE)
        assert decided is not None, out
        if decided.group(2) == "promoted":
            assert f"the trading daemon serves {decided.group(1)}" in out, out
        summary = out.split("\nsummary\n", 1)[1]
        assert re.search(r"rows recorded: BTCUSDT \d", summary), summary
        # what became of the votes and the consensus signals, so that a run with no order says why
        became = r"votes \d+ sent, \d+ below cost; decisions: (none|[a-z_]+ \d+)"
        assert re.search(rf"^  what became of them: {became}", summary, re.MULTILINE), summary
        assert re.search(rf"\d+ signals, \d+ orders, \d+ fills; {became}", out), out
        counts = re.search(
            r"partitions materialised: raw_snapshots (\d+), labelled_features (\d+), drift_report (\d+)",
            summary,
        )
        assert counts is not None and all(int(n) >= 2 for n in counts.groups()), (
            summary
        )  # both hours at least
        assert re.search(r"retraining \(drift\): (promoted|kept)", summary), summary
        assert re.search(r"^  reconciliation: [1-9]\d* passes, 0 failed", summary, re.MULTILINE), summary
        # everything stopped cleanly: no child left, the embedded server shut down
        assert re.search(r"trading-daemon stopped \(status 0\)", out), out
        assert not (var / "pg" / "postmaster.pid").exists()
        assert not _left_behind(var), "processes outlived the demo"
        first_seconds = _stage_seconds(out)
        # the second run reuses the recording, the model and the drift verdict
        second = _demo(var, 0)
        again = second.stdout
        assert second.returncode == 0, again + second.stderr
        assert "reused the first run's recording" in again, again
        assert re.search(r"reused: \S+ is in production", again), again
        assert "reused: BTCUSDT" in again and "trading with the model" in again, again
        second_seconds = _stage_seconds(again)
        assert second_seconds["total"] < first_seconds["total"] / 2, (first_seconds, second_seconds)
    finally:
        shutil.rmtree(var, ignore_errors=True)
