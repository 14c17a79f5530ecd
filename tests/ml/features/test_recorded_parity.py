"""Parity and finiteness on a stream recorded from the paper exchange (docs/features.md §8.2 "Parity"): the rows
the daemon's builder produced, run row by row through the live engine and as a day through the batch
function, with a restart and a resync marked inside the day."""

from __future__ import annotations

import numpy as np
import pytest

from ml.features.finite import NON_FINITE_REPLACED
from ml.features.pipeline import LiveFeatureEngine, compute_features
from schemas.arrow import candles_to_table, raw_rows_to_table
from schemas.features import FEATURE_NAMES
from tests.fixtures.recorded import recorded_market
from tests.ml.features.test_pipeline import assert_parity, run_live

LOOKBACK = 61
DAY_START = 600  # the "day" starts 10 min into the recording; the 61 rows before it are prepended


@pytest.mark.slow  # 30 min of recording on a cold cache
def test_recorded_stream_live_equals_batch_across_a_restart_and_a_resync() -> None:
    recording = recorded_market(seconds=1800, symbols=("BTCUSDT",), seed=7)
    rows = list(recording.rows["BTCUSDT"])
    candles = list(recording.candles["BTCUSDT"])
    # A resync and a restart inside the day, as the builder marks them: book_reset on the row after them
    # (a restart also shortens that row's interval; the aggregates are the recorded ones).
    for i, interval in ((900, None), (1400, 430)):
        update = {"book_reset": True} if interval is None else {"book_reset": True, "interval_ms": interval}
        rows[i] = type(rows[i])(**{**{f: getattr(rows[i], f) for f in rows[i].__struct_fields__}, **update})

    NON_FINITE_REPLACED.clear()
    live = run_live(LiveFeatureEngine("BTCUSDT"), rows, candles)
    table = compute_features(
        raw_rows_to_table(rows[DAY_START - LOOKBACK :]), candles_to_table(candles), n_lookback=LOOKBACK
    )
    assert table.column("ts").to_pylist() == [r.ts for r in rows[DAY_START:]]
    batch = np.column_stack([table.column(name).to_numpy() for name in FEATURE_NAMES])
    assert_parity(live[DAY_START:], batch)

    # realistic data: every row pinned (the exchange's kline history), nothing replaced for being non-finite
    assert all(r.last_candle_start_ms != -1 for r in rows)
    assert np.isfinite(live).all()
    assert sum(NON_FINITE_REPLACED.values()) == 0, dict(NON_FINITE_REPLACED)
    # and the features move: no channel is stuck at its defaults on a live market
    moving = np.ptp(live[DAY_START:], axis=0) > 0
    stuck = [FEATURE_NAMES[j] for j in np.flatnonzero(~moving)]
    assert len(stuck) <= 5, stuck
