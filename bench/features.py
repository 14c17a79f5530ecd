"""The feature pipeline, live and batch, against a pandas-per-row baseline measured in the same run.

* live: `LiveFeatureEngine.on_row` per row (µs), after a warm-up, with 200+ closed candles held and candles
  fed as they close (the candle channels are recomputed once per new pin, amortised in the mean);
* batch: `compute_features` on a day of ~3,600 rows with 61 prepended rows (rows/s);
* baseline: `testkit.feature_reference.reference_features`, everything recomputed for one row from pandas
  DataFrames of the rows and candles (rows/s on a subset of the same rows, it is slow).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

from bench.report import Figure, Section
from ml.features.pipeline import LiveFeatureEngine, compute_features
from schemas.arrow import candles_to_table, raw_rows_to_table
from testkit.feature_reference import reference_features, rows_frame
from testkit.rows import T0_MS, candles, snapshot_rows

N_ROWS = 3_600
LOOKBACK = 61
N_BASELINE = 150
REPEATS = 3


def _inputs(n_rows: int) -> tuple[list[Any], list[Any]]:
    rows = list(snapshot_rows(LOOKBACK + n_rows, seed=23))
    history = candles(250 + (LOOKBACK + n_rows) // 60 + 2, start_ms=T0_MS - 250 * 60_000, seed=29)
    return rows, history


def _live_us(rows: list[Any], history: list[Any]) -> list[float]:
    engine = LiveFeatureEngine("BTCUSDT")
    fed = 0

    def feed(ts: int) -> None:
        nonlocal fed
        while fed < len(history) and history[fed].start_ms + 60_000 <= ts:
            engine.on_candle(history[fed])
            fed += 1

    for row in rows[:LOOKBACK]:  # warm-up: the window fills, the first pin's channels are computed
        feed(row.ts)
        engine.on_row(row)
    times = []
    for row in rows[LOOKBACK:]:
        feed(row.ts)
        start = time.perf_counter_ns()
        engine.on_row(row)
        times.append((time.perf_counter_ns() - start) / 1e3)
    return times


def run(quick: bool = False) -> dict[str, Any]:
    n_rows, n_baseline, repeats = (300, 20, 1) if quick else (N_ROWS, N_BASELINE, REPEATS)
    rows, history = _inputs(n_rows)
    rows_table, candles_table = raw_rows_to_table(rows), candles_to_table(history)

    live = _live_us(rows, history)
    live_mean = statistics.fmean(live)
    live_median = statistics.median(live)
    live_p99 = sorted(live)[int(0.99 * len(live))]

    batch_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        table = compute_features(rows_table, candles_table, n_lookback=LOOKBACK)
        batch_s.append(time.perf_counter() - start)
    assert table.num_rows == n_rows
    batch_rows_s = n_rows / statistics.median(batch_s)

    df, candles_df = rows_frame(rows), candles_table.to_pandas()
    start = time.perf_counter()
    for i in range(LOOKBACK, LOOKBACK + n_baseline):
        reference_features(df, candles_df, i)
    baseline_s = time.perf_counter() - start
    baseline_rows_s = n_baseline / baseline_s
    baseline_us = baseline_s / n_baseline * 1e6

    print(f"features, {n_rows} rows of one symbol (+{LOOKBACK} prepended), 200+ candles held:")
    print(f"  pandas per row (baseline)  {baseline_us:10.1f} us/row  {baseline_rows_s:9.0f} rows/s")
    print(
        f"  live on_row                {live_mean:10.1f} us/row  (median {live_median:.1f}, p99 {live_p99:.1f})"
    )
    print(f"  batch compute_features     {1e6 / batch_rows_s:10.1f} us/row  {batch_rows_s:9.0f} rows/s")
    print(
        f"  live {baseline_us / live_mean:.0f}x and batch {batch_rows_s / baseline_rows_s:.0f}x "
        "faster than the baseline"
    )
    return {
        "rows": n_rows,
        "lookback_rows": LOOKBACK,
        "baseline_rows": n_baseline,
        "live_us_per_row": {
            "mean": round(live_mean, 1),
            "median": round(live_median, 1),
            "p99": round(live_p99, 1),
        },
        "batch_rows_per_s": round(batch_rows_s, 1),
        "baseline_pandas_per_row": {
            "us_per_row": round(baseline_us, 1),
            "rows_per_s": round(baseline_rows_s, 2),
        },
        "live_speedup_vs_baseline": round(baseline_us / live_mean, 1),
        "batch_speedup_vs_baseline": round(batch_rows_s / baseline_rows_s, 1),
    }


def section(result: Mapping[str, Any]) -> Section:
    live, base = result["live_us_per_row"], result["baseline_pandas_per_row"]
    return Section(
        title="Feature pipeline",
        summary=(
            f"The 110 features of a row, live (one row at a time, as the daemon) and in batch over "
            f"{result['rows']:,} rows (as Dagster), against the pandas reference recomputing one row from "
            "DataFrames"
        ),
        figures=[
            Figure("live on_row, mean", live["mean"], "µs/row", "pandas reference, per row", base["us_per_row"]),
            Figure("live on_row, p99", live["p99"], "µs/row", "pandas reference, per row (mean)",
                   base["us_per_row"]),
            Figure("batch compute_features", result["batch_rows_per_s"], "rows/s", "pandas reference",
                   base["rows_per_s"]),
        ],
        details=result,
    )  # fmt: skip


if __name__ == "__main__":
    run()
