"""K(t) and the candle store: docs/features.md §1.3 (the pin, the hole rule, no look-ahead) and §6.3."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from msgspec.structs import replace

from ml.features.candle_window import (
    EMPTY_WINDOW,
    CandleHistory,
    CandleWindow,
    ConflictingCandleError,
    MissingCandleError,
)
from ml.features.candles import candle_features
from ml.features.indicators import indicator_features
from schemas.arrow import CANDLES, candles_to_table
from schemas.features import CANDLE_WINDOW
from schemas.market import Candle
from testkit.rows import T0_MS, candles

MINUTE = 60_000
SYMBOL = "BTCUSDT"


def start(i: int) -> int:
    return T0_MS + i * MINUTE


def assert_window_is(window: CandleWindow, held: list[Candle]) -> None:
    """The window holds exactly these candles, oldest first."""
    assert len(window) == len(held)
    assert window.start_ms.tolist() == [c.start_ms for c in held]
    for name in ("open", "high", "low", "close", "volume", "turnover"):
        assert getattr(window, name).tolist() == [getattr(c, name) for c in held], name


def features(window: CandleWindow, m_star: float = 64_000.0) -> np.ndarray:
    return np.concatenate([candle_features(window, m_star), indicator_features(window, m_star)])


# --- the pin and the hole rule -------------------------------------------------------------------------------


def test_window_is_the_newest_200_ending_at_the_pin() -> None:
    data = candles(250)
    history = CandleHistory.from_candles(SYMBOL, data)
    window = history.window(start(249))
    assert_window_is(window, data[50:250])
    assert window.k0_start == start(249) and len(window) == CANDLE_WINDOW
    assert not window.close.flags.writeable and not window.start_ms.flags.writeable
    fields = ("start_ms", "open", "high", "low", "close", "volume", "turnover")
    assert_window_is(CandleWindow(*(getattr(window, name) for name in fields)), data[50:250])  # checks pass
    assert_window_is(history.window(start(120)), data[:121])  # an older pin: its own run, nothing later
    assert_window_is(history.window(start(0)), data[:1])


def test_no_pin_gives_the_empty_window() -> None:
    history = CandleHistory.from_candles(SYMBOL, candles(5))
    window = history.window(-1)
    assert window is EMPTY_WINDOW is CandleWindow.EMPTY
    assert len(window) == 0 and window.k0_start == -1
    assert len(CandleHistory(SYMBOL).window(-1)) == 0


def test_a_missing_minute_ends_the_window() -> None:
    data = candles(250)
    history = CandleHistory.from_candles(SYMBOL, data[:230] + data[231:])
    assert_window_is(history.window(start(249)), data[231:250])  # 19 candles: the hole at 230 ends K(t)
    assert_window_is(history.window(start(231)), data[231:232])
    assert_window_is(history.window(start(229)), data[30:230])  # before the hole: a full window


def test_backfill_of_a_hole_extends_the_window() -> None:
    data = candles(40)
    history = CandleHistory.from_candles(SYMBOL, data[:20] + data[21:])
    assert len(history.window(start(39))) == 19
    history.add(data[20])
    assert_window_is(history.window(start(39)), data)


@pytest.mark.parametrize("missing", [start(30), start(10), start(-1), start(500)])
def test_a_pin_not_held_raises_never_another_candle(missing: int) -> None:
    data = candles(40)
    history = CandleHistory.from_candles(SYMBOL, data[:10] + data[11:30] + data[31:])
    with pytest.raises(MissingCandleError, match=rf"{SYMBOL}.*start_ms={missing}") as info:
        history.window(missing)
    assert isinstance(info.value, ValueError)
    assert info.value.symbol == SYMBOL and info.value.pin_ms == missing


def test_an_empty_store_raises_for_any_pin() -> None:
    with pytest.raises(MissingCandleError):
        CandleHistory(SYMBOL).window(start(0))


@pytest.mark.parametrize("pin", [-2, start(1) + 1, 123])
def test_a_malformed_pin_is_refused(pin: int) -> None:
    history = CandleHistory.from_candles(SYMBOL, candles(3))
    with pytest.raises(ValueError, match="neither −1 nor a minute start"):
        history.window(pin)


def test_candles_after_the_pin_never_change_the_window_or_the_features() -> None:
    data = candles(260, seed=11)
    history = CandleHistory.from_candles(SYMBOL, data[:150] + data[151:200])
    pins = [start(120), start(149), start(199)]
    before = {pin: features(history.window(pin)) for pin in pins}
    for candle in data[200:]:
        history.add(candle)
    for pin in pins:
        np.testing.assert_array_equal(features(history.window(pin)), before[pin])
    # Filling the hole at 150 changes only the pins after it (their run now reaches further back).
    history.add(data[150])
    for pin in pins[:2]:
        np.testing.assert_array_equal(features(history.window(pin)), before[pin])
    assert not np.array_equal(features(history.window(start(199))), before[start(199)])


def test_windows_are_cached_per_pin_and_rebuilt_after_an_add() -> None:
    data = candles(30)
    history = CandleHistory.from_candles(SYMBOL, data[:29])
    first = history.window(start(28))
    assert history.window(start(28)) is first
    history.add(data[29])
    again = history.window(start(28))
    assert again is not first
    assert_window_is(again, data[:29])


# --- adding candles ------------------------------------------------------------------------------------------


def test_add_rejects_other_symbols_unconfirmed_and_other_intervals() -> None:
    history = CandleHistory(SYMBOL)
    candle = candles(1)[0]
    with pytest.raises(ValueError, match="ETHUSDT"):
        history.add(candles(1, symbol="ETHUSDT")[0])
    with pytest.raises(ValueError, match="not confirmed"):
        history.add(replace(candle, confirmed=False))
    with pytest.raises(ValueError, match="interval_ms=300000"):
        history.add(replace(candle, start_ms=300_000 * 5, interval_ms=300_000))
    assert len(history) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"open": 0.0, "low": 0.0}, "prices must be finite and > 0"),
        ({"high": float("inf")}, "invalid candle"),
        ({"volume": float("nan")}, "invalid candle"),
    ],
)
def test_add_rejects_invalid_values(change: dict[str, float], message: str) -> None:
    candle = candles(1)[0]
    with pytest.raises(ValueError, match=message):
        CandleHistory(SYMBOL).add(replace(candle, **change))


def test_repeating_a_candle_is_idempotent_and_a_different_one_is_refused() -> None:
    data = candles(5)
    history = CandleHistory.from_candles(SYMBOL, data)
    window = history.window(start(4))
    history.add(data[2])
    assert len(history) == 5 and history.window(start(4)) is window  # nothing changed, cache kept
    changed = replace(data[2], volume=data[2].volume + 1.0)
    with pytest.raises(ConflictingCandleError, match=rf"{SYMBOL}: candle {start(2)} already held"):
        history.add(changed)
    assert_window_is(history.window(start(4)), data)  # the held candle is kept


def test_candles_may_arrive_in_any_order() -> None:
    data = candles(30)
    history = CandleHistory.from_candles(SYMBOL, data[::-1])
    assert_window_is(history.window(start(29)), data)
    assert history.newest_start == start(29) and start(3) in history


def test_capacity_bounds_memory_and_never_shortens_a_window_silently() -> None:
    data = candles(300)
    with pytest.raises(ValueError, match="capacity"):
        CandleHistory(SYMBOL, capacity=CANDLE_WINDOW - 1)
    history = CandleHistory.from_candles(SYMBOL, data, capacity=250)
    assert len(history) == 250
    assert_window_is(history.window(start(299)), data[100:300])
    with pytest.raises(MissingCandleError):
        history.window(start(10))  # dropped
    with pytest.raises(MissingCandleError, match="dropped"):
        history.window(start(200))  # held, but its 200 candles reach into dropped ones
    assert_window_is(history.window(start(249)), data[50:250])  # the oldest full window still held
    history.add(data[0])  # older than what was dropped: it could never be in a window
    assert len(history) == 250 and start(0) not in history


# --- from_table (batch) ---------------------------------------------------------------------------------------


def test_from_table_matches_from_candles_and_ignores_other_symbols() -> None:
    mine = candles(230, seed=3)
    others = candles(230, symbol="ETHUSDT", seed=4)
    table = candles_to_table(others[:100] + mine[::-1] + others[100:] + mine[5:7])  # shuffled, repeats
    assert table.schema.equals(CANDLES)
    from_table = CandleHistory.from_table(SYMBOL, table)
    assert len(from_table) == 230 and from_table.capacity is None
    reference = CandleHistory.from_candles(SYMBOL, mine)
    for i in (0, 150, 229):
        assert_window_is(from_table.window(start(i)), mine[max(0, i + 1 - CANDLE_WINDOW) : i + 1])
        np.testing.assert_array_equal(
            features(from_table.window(start(i))), features(reference.window(start(i)))
        )


def test_from_table_refuses_missing_columns_nulls_conflicts_and_bad_candles() -> None:
    table = candles_to_table(candles(10))
    with pytest.raises(ValueError, match=r"lacks columns \['turnover'\]"):
        CandleHistory.from_table(SYMBOL, table.drop_columns(["turnover"]))
    nulls = table.set_column(7, "turnover", pa.array([None] + [1.0] * 9, pa.float64()))
    with pytest.raises(ValueError, match="turnover has nulls"):
        CandleHistory.from_table(SYMBOL, nulls)
    conflict = pa.concat_tables([table, candles_to_table(candles(1, seed=99))])
    with pytest.raises(ConflictingCandleError, match=str(T0_MS)):
        CandleHistory.from_table(SYMBOL, conflict)
    bad = table.set_column(3, "high", pa.array([1.0] * 10, pa.float64()))  # high below open
    with pytest.raises(ValueError, match=rf"candle table for {SYMBOL}: invalid candle at start_ms={T0_MS}"):
        CandleHistory.from_table(SYMBOL, bad)
    off_grid = table.set_column(
        1, "start_ms", pa.array([T0_MS + 1 + i * MINUTE for i in range(10)], pa.int64())
    )
    with pytest.raises(ValueError, match="not a minute start"):
        CandleHistory.from_table(SYMBOL, off_grid)
    assert len(CandleHistory.from_table("SOLUSDT", table)) == 0


# --- CandleWindow itself --------------------------------------------------------------------------------------


def test_window_arrays_are_read_only_and_the_callers_are_left_alone() -> None:
    closes = np.array([100.0, 101.0])
    window = CandleWindow(
        start_ms=np.array([0, MINUTE]),
        open=closes.copy(),
        high=closes + 1,
        low=closes - 1,
        close=closes,
        volume=np.ones(2),
        turnover=closes.copy(),
    )
    assert window.close.dtype == np.float64 and window.start_ms.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        window.close[0] = 1.0
    closes[0] = 5.0  # still the caller's array (a view was taken, not a copy)
    assert closes.flags.writeable


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start_ms": np.arange(201) * MINUTE}, "at most CANDLE_WINDOW=200"),
        ({"start_ms": np.array([0, 2 * MINUTE, 3 * MINUTE])}, "consecutive minute starts"),
        ({"start_ms": np.array([1, MINUTE + 1, 2 * MINUTE + 1])}, "consecutive minute starts"),
        ({"start_ms": np.array([0.0, 60_000.0, 120_000.0])}, "integer array"),
        ({"volume": np.ones(2)}, r"volume has shape \(2,\)"),
        ({"low": np.array([99.0, -1.0, 99.0])}, "invalid candle at start_ms=60000"),
        ({"volume": np.array([1.0, -1.0, 1.0])}, "invalid candle"),
    ],
)
def test_window_validation(change: dict[str, np.ndarray], message: str) -> None:
    n = len(change.get("start_ms", np.zeros(3)))
    columns: dict[str, np.ndarray] = {
        "start_ms": np.arange(n) * MINUTE,
        "open": np.full(n, 100.0),
        "high": np.full(n, 101.0),
        "low": np.full(n, 99.0),
        "close": np.full(n, 100.0),
        "volume": np.ones(n),
        "turnover": np.full(n, 100.0),
    }
    with pytest.raises(ValueError, match=message):
        CandleWindow(**{**columns, **change})


def test_window_from_candles() -> None:
    data = candles(3)
    assert_window_is(CandleWindow.from_candles(data), data)
    assert len(CandleWindow.from_candles([])) == 0
