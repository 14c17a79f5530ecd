"""The daemon's live windows against the training windows (ml.datasets) on a stream recorded from the paper
exchange: a live window equals the training window that ends at the same row, and windows across a gap are
refused on both sides, while a book reset inside a window is kept on both."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import pytest

from ml.datasets import LabelledRows
from ml.windows import window_ends
from ml.workflow import labelled_features
from schemas.arrow import candles_to_table, raw_rows_to_table
from schemas.features import feature_spec
from schemas.market import Candle
from schemas.model import WINDOW
from schemas.snapshot import RawSnapshotRow
from tests.fixtures.recorded import recorded_market
from tests.ml.features.test_pipeline import assert_parity
from trading_daemon.features.live import LiveFeatures
from trading_daemon.observability.metrics import DaemonMetrics

SYMBOL = "BTCUSDT"
SPEC = feature_spec()
LOOKBACK = 61
DAY_START = 600  # the training day starts 10 min into the recording; the 61 rows before it are prepended
RESENT_SNAPSHOT, RESYNC, RESTART = 900, 1100, 1400
LOST_IN_RESTART = 20


def _marked(rows: list[RawSnapshotRow]) -> list[RawSnapshotRow]:
    """The recording with what the builder marks inside a day: a snapshot the exchange re-sent (book_reset,
    levels kept), a resync (two rows of an invalid book, then the fresh snapshot's row) and a restart (rows
    lost, then a first row with a short interval and no last trade yet)."""
    out = list(rows)
    replace = msgspec.structs.replace
    out[RESENT_SNAPSHOT] = replace(out[RESENT_SNAPSHOT], book_reset=True)
    empty = [0.0] * 50
    for i in (RESYNC, RESYNC + 1):
        out[i] = replace(out[i], book_reset=True, n_bid_levels=0, n_ask_levels=0, bid_prices=empty,
                         bid_sizes=empty, ask_prices=empty, ask_sizes=empty)  # fmt: skip
    out[RESYNC + 2] = replace(out[RESYNC + 2], book_reset=True)
    first = RESTART + LOST_IN_RESTART
    out[first] = replace(out[first], book_reset=True, interval_ms=430, last_trade_price=0.0)
    del out[RESTART:first]
    return out


def _run_live(
    features: LiveFeatures, rows: Sequence[RawSnapshotRow], candles: Sequence[Candle]
) -> dict[int, np.ndarray]:
    """Rows one at a time, each candle as soon as it has closed (as the feed hands them over); the window
    the sink holds after each row, by the row's ts."""
    windows: dict[int, np.ndarray] = {}
    fed = 0
    for row in rows:
        closed = [c for c in candles[fed:] if c.start_ms + 60_000 <= row.ts]
        features.submit_candles(closed)
        fed += len(closed)
        features.submit_rows([row])
        window = features.window(SYMBOL)
        if window is not None:
            assert window.ts_ms == row.ts
            windows[row.ts] = window.values
    return windows


@pytest.mark.slow  # 30 min of recording on a cold cache
def test_live_windows_equal_the_training_windows_of_the_same_rows() -> None:
    recording = recorded_market(seconds=1800, symbols=(SYMBOL,), seed=7)
    rows = _marked(list(recording.rows[SYMBOL]))
    candles = list(recording.candles[SYMBOL])
    metrics = DaemonMetrics()
    live = _run_live(LiveFeatures([SYMBOL], spec=SPEC, metrics=metrics), rows, candles)
    assert (
        metrics.registry.get_sample_value(
            "depthcharge_live_feature_errors_total", {"symbol": SYMBOL, "kind": "row"}
        )
        is None
    )

    table = labelled_features(
        raw_rows_to_table(rows[DAY_START - LOOKBACK :]),
        candles_to_table(candles),
        n_lookback=LOOKBACK,
        spec=SPEC,
    )
    training = LabelledRows.from_tables(table, spec=SPEC)
    ends = training.window_ends()
    assert len(ends) > 800
    for end in ends:
        ts = int(training.ts_ms[end])
        assert ts in live, f"the training window ending at {ts} has no live counterpart"
        assert_parity(live[ts], training.features[end - WINDOW + 1 : end + 1])

    # The live side offers a window at exactly the rows that end WINDOW consecutive rows, and the training
    # side at a subset of them (it also drops the rows it cannot label).
    ts_all = np.array([r.ts for r in rows], dtype=np.int64)
    expected = ts_all[window_ends(np.array([SYMBOL] * len(rows)), ts_all, SPEC.snapshot_interval_ms)]
    assert sorted(live) == expected.tolist()
    assert set(training.ts_ms[ends].tolist()) <= set(live)

    # Across the restart's gap neither side has a window until WINDOW rows of the new run are in.
    resumed = rows[RESTART].ts
    first_after = resumed + (WINDOW - 1) * SPEC.snapshot_interval_ms
    for side in (set(live), set(training.ts_ms[ends].tolist())):
        assert not any(resumed <= ts < first_after for ts in side)
    assert first_after in live and first_after in set(training.ts_ms[ends].tolist())
    # A book reset inside a window is kept on both sides (the re-sent snapshot's row, with levels).
    reset_ts = rows[RESENT_SNAPSHOT].ts
    spanning = [ts for ts in training.ts_ms[ends].tolist() if reset_ts < ts < reset_ts + (WINDOW - 1) * 1000]
    assert len(spanning) >= WINDOW - 2 and all(ts in live for ts in spanning)
    # The invalid book's rows have no label, so training windows avoid them; live ones span them.
    resync_ts = rows[RESYNC].ts
    assert any(resync_ts < ts < resync_ts + (WINDOW - 1) * 1000 for ts in live)
    assert not any(resync_ts <= ts < resync_ts + (WINDOW - 1) * 1000 for ts in training.ts_ms[ends].tolist())
