"""The one rule of a valid model window (ml.windows): the batch form the datasets use and the live ring buffer
agree on every row of any stream of rows, gaps and a broken run included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.windows import FeatureWindow, WindowBuffer, run_positions, window_ends
from schemas.model import WINDOW

INTERVAL = 1000


def _ts_with_gaps(steps: list[int], start: int = 1_767_225_600_000) -> np.ndarray:
    """Row times from the steps between rows (1 = consecutive, more = that many intervals apart)."""
    return start + INTERVAL * np.cumsum([0, *steps]).astype(np.int64)


def test_runs_restart_at_a_gap_and_at_a_new_symbol() -> None:
    ts = _ts_with_gaps([1, 1, 2, 1, 1])
    symbols = np.array(["A"] * 6)
    assert run_positions(symbols, ts, INTERVAL).tolist() == [0, 1, 2, 0, 1, 2]
    symbols = np.array(["A", "A", "A", "B", "B", "B"])
    ts = np.concatenate([_ts_with_gaps([1, 1]), _ts_with_gaps([1, 1])])
    assert run_positions(symbols, ts, INTERVAL).tolist() == [0, 1, 2, 0, 1, 2]
    assert window_ends(symbols, ts, INTERVAL, window=3).tolist() == [2, 5]
    assert window_ends(symbols, ts, INTERVAL, window=2, stride=2).tolist() == [1, 4]
    with pytest.raises(ValueError, match="stride must be >= 1"):
        window_ends(symbols, ts, INTERVAL, stride=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 3, 40]), min_size=0, max_size=400), st.integers(0, 399))
def test_live_buffer_offers_exactly_the_batch_windows(steps: list[int], broken_at: int) -> None:
    """Row by row, the buffer has a window exactly at the rows window_ends names, and it is the batch slice.

    One row (``broken_at``) produces no vector, as when the live feature engine refuses it: batch then does
    not have that row either."""
    rng = np.random.default_rng(len(steps))
    ts = _ts_with_gaps(steps)
    features = rng.standard_normal((len(ts), 7))
    kept = np.array([i != broken_at for i in range(len(ts))])
    buffer = WindowBuffer("A", INTERVAL, n_features=7, window=5)
    live_ends = []
    for i, t in enumerate(ts):
        if not kept[i]:
            buffer.break_run()
            assert buffer.window() is None
            continue
        complete = buffer.push(int(t), features[i])
        window = buffer.window()
        assert (window is not None) == complete
        if window is not None:
            live_ends.append(i)
            assert window.ts_ms == t and window.symbol == "A"
            k = int(np.flatnonzero(np.flatnonzero(kept) == i)[0])  # position among the kept rows
            batch = features[kept][k - 4 : k + 1]
            assert np.array_equal(window.values, batch)
    batch_ends = np.flatnonzero(kept)[window_ends(np.array(["A"] * kept.sum()), ts[kept], INTERVAL, window=5)]
    assert live_ends == batch_ends.tolist()


def test_window_is_a_read_only_copy_and_bad_pushes_are_named() -> None:
    buffer = WindowBuffer("BTCUSDT", INTERVAL)
    ts = _ts_with_gaps([1] * (WINDOW - 1))
    for i, t in enumerate(ts):
        assert buffer.push(int(t), np.full(110, float(i))) == (i == WINDOW - 1)
    window = buffer.window()
    assert isinstance(window, FeatureWindow) and window.values.shape == (WINDOW, 110)
    assert window.values[:, 0].tolist() == [float(i) for i in range(WINDOW)]
    with pytest.raises(ValueError, match="read-only"):
        window.values[0, 0] = 1.0
    buffer.push(int(ts[-1]) + INTERVAL, np.full(110, -1.0))
    assert window.values[0, 0] == 0.0  # the next push does not reach a window already handed out
    assert buffer.run_length == WINDOW + 1
    with pytest.raises(ValueError, match="not after the previous row"):
        buffer.push(int(ts[-1]), np.zeros(110))
    with pytest.raises(ValueError, match=r"shape \(110,\)"):
        buffer.push(int(ts[-1]) + 10 * INTERVAL, np.zeros(109))
    with pytest.raises(ValueError, match="SNAPSHOT_INTERVAL_MS must be positive"):
        WindowBuffer("BTCUSDT", 0)
