"""The feature pipeline: live (row by row) and batch (a day with prepended rows) agree, without look-ahead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.features import pipeline
from ml.features.candle_window import MissingCandleError
from ml.features.finite import NON_FINITE_REPLACED
from ml.features.pipeline import FeatureVector, LiveFeatureEngine, compute_feature_matrix, compute_features
from schemas.arrow import SPEC_HASH_METADATA_KEY, candles_to_table, raw_rows_to_table
from schemas.features import FEATURE_NAMES, FEATURE_PARAMETERS, FeatureSpec, feature_spec
from schemas.market import Candle
from schemas.snapshot import RawSnapshotRow, pad_levels
from testkit.rows import T0_MS, candles, snapshot_rows

IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}
LOOKBACK = 61
DAY_START = 161  # index of the day's first row in the stream; the prepended rows are 100…160


def _empty_book(row: RawSnapshotRow) -> RawSnapshotRow:
    zeros = [0.0] * 50
    return msgspec.structs.replace(
        row,
        book_reset=True,
        n_bid_levels=0,
        n_ask_levels=0,
        bid_prices=zeros,
        bid_sizes=zeros,
        ask_prices=zeros,
        ask_sizes=zeros,
    )


def stream() -> tuple[list[RawSnapshotRow], list[Candle]]:
    """~880 rows of BTCUSDT: no pin until row 200, a resync (an invalid book, then a fresh snapshot) at
    row 400, a restart (20 rows lost, a short first interval, no last trade yet) at row 620."""
    rows = list(snapshot_rows(900, seed=17))
    rows[:200] = [msgspec.structs.replace(r, last_candle_start_ms=-1) for r in rows[:200]]
    rows[400] = _empty_book(rows[400])
    rows[401] = _empty_book(rows[401])
    rows[402] = msgspec.structs.replace(rows[402], book_reset=True)
    rows[620] = msgspec.structs.replace(rows[620], book_reset=True, interval_ms=370, last_trade_price=0.0)
    rows[621] = msgspec.structs.replace(rows[621], last_trade_price=0.0)
    del rows[600:620]
    history = candles(260, start_ms=T0_MS - 240 * 60_000, seed=9)
    return rows, history


def closed_before(history: list[Candle], ts: int) -> Iterator[Candle]:
    return (c for c in history if c.start_ms + 60_000 <= ts)


def run_live(engine: LiveFeatureEngine, rows: list[RawSnapshotRow], history: list[Candle]) -> np.ndarray:
    """Rows one at a time, each candle fed as soon as it has closed (as the daemon sees them)."""
    fed = 0
    out = []
    for row in rows:
        while fed < len(history) and history[fed].start_ms + 60_000 <= row.ts:
            engine.on_candle(history[fed])
            fed += 1
        vector = engine.on_row(row)
        assert vector.ts_ms == row.ts and vector.symbol == row.symbol
        out.append(vector.to_array())
    return np.array(out)


def assert_parity(a: np.ndarray, b: np.ndarray) -> None:
    """docs/features.md §1.6: abs(a − b) ≤ 1e-9·max(1, |a|, |b|) for every feature of every row."""
    assert a.shape == b.shape
    bound = 1e-9 * np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
    bad = np.argwhere(np.abs(a - b) > bound)
    assert bad.size == 0, [(int(i), FEATURE_NAMES[j], a[i, j], b[i, j]) for i, j in bad[:10]]


@pytest.fixture(scope="module")
def day() -> tuple[list[RawSnapshotRow], list[Candle], np.ndarray, np.ndarray]:
    rows, history = stream()
    live = run_live(LiveFeatureEngine("BTCUSDT"), rows, history)
    table = compute_features(
        raw_rows_to_table(rows[DAY_START - LOOKBACK :]), candles_to_table(history), n_lookback=LOOKBACK
    )
    assert table.column("ts").to_pylist() == [r.ts for r in rows[DAY_START:]]
    batch = np.column_stack([table.column(name).to_numpy() for name in FEATURE_NAMES])
    return rows, history, live, batch


def test_live_and_batch_agree_across_a_resync_and_a_restart(day: Any) -> None:
    rows, _, live, batch = day
    assert_parity(live[DAY_START:], batch)
    # the stream holds what the test claims: unpinned rows, a resync, a restart, in the compared range
    day_rows = rows[DAY_START:]
    assert sum(r.last_candle_start_ms == -1 for r in day_rows) == 200 - DAY_START
    assert sum(r.book_reset for r in day_rows) >= 4
    assert any(r.interval_ms == 370 for r in day_rows)


def test_live_warm_start_from_the_recorded_rows_agrees_with_batch(day: Any) -> None:
    rows, history, _, batch = day
    engine = LiveFeatureEngine("BTCUSDT")
    engine.warm_up(rows[DAY_START - LOOKBACK : DAY_START], closed_before(history, rows[DAY_START - 1].ts + 1))
    remaining = [c for c in history if c.start_ms + 60_000 > rows[DAY_START - 1].ts]
    assert_parity(run_live(engine, rows[DAY_START:], remaining), batch)


def test_unpinned_rows_follow_m_star_row_by_row(day: Any) -> None:
    _rows, _, live, _ = day
    unpinned = live[:200]
    mid = unpinned[:, IDX["mid_price"]]
    assert len(set(mid.tolist())) > 10
    for name in ("open", "high", "low", "close", "typical_price", "volume_weighted_price", "sma_10", "vwap"):
        assert np.array_equal(unpinned[:, IDX[name]], mid), name
    pinned = live[200:260]
    assert not np.array_equal(pinned[:, IDX["close"]], pinned[:, IDX["mid_price"]])


def test_realistic_stream_needs_no_non_finite_replacement() -> None:
    NON_FINITE_REPLACED.clear()
    rows, history = stream()
    values = run_live(LiveFeatureEngine("BTCUSDT"), rows, history)
    assert np.isfinite(values).all()
    assert sum(NON_FINITE_REPLACED.values()) == 0, dict(NON_FINITE_REPLACED)


def test_batch_computes_the_candle_channels_once_per_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    rows, history = stream()
    day_rows = rows[DAY_START - LOOKBACK :]
    calls: list[int] = []
    real = pipeline.candle_features

    def counting(k: Any, m_star: float) -> np.ndarray:
        calls.append(k.k0_start)
        return real(k, m_star)

    monkeypatch.setattr(pipeline, "candle_features", counting)
    compute_feature_matrix(raw_rows_to_table(day_rows), candles_to_table(history), n_lookback=LOOKBACK)
    pins = [r.last_candle_start_ms for r in rows[DAY_START:]]
    assert sorted(c for c in calls if c != -1) == sorted({p for p in pins if p != -1})
    assert calls.count(-1) == pins.count(-1)


def test_no_look_ahead_rows_and_candles_after_t(day: Any) -> None:
    rows, history, _, batch = day
    cut = 500  # features at rows ≤ cut
    max_pin = max(r.last_candle_start_ms for r in rows[: cut + 1])
    later_candles = [
        msgspec.structs.replace(c, close=c.open, high=max(c.high, c.open), low=min(c.low, c.open) * 0.99)
        if c.start_ms > max_pin
        else c
        for c in history
    ]
    later_rows = rows[: cut + 1] + [_empty_book(r) for r in rows[cut + 1 :]]
    table = compute_features(
        raw_rows_to_table(later_rows[DAY_START - LOOKBACK :]),
        candles_to_table(later_candles),
        n_lookback=LOOKBACK,
    )
    changed = np.column_stack([table.column(name).to_numpy() for name in FEATURE_NAMES])
    n = cut + 1 - DAY_START
    assert np.array_equal(changed[:n], batch[:n])
    assert not np.array_equal(changed[n:], batch[n:])
    # live: every candle fed before the first row (future ones included) changes nothing either
    engine = LiveFeatureEngine("BTCUSDT", candle_capacity=None)
    for candle in later_candles:
        engine.on_candle(candle)
    early = np.array([engine.on_row(r).to_array() for r in rows[: cut + 1]])
    assert np.array_equal(early[DAY_START:], batch[:n])


def test_a_pinned_candle_missing_from_the_store_raises() -> None:
    rows, history = stream()
    pin = rows[300].last_candle_start_ms
    holed = candles_to_table([c for c in history if c.start_ms != pin])
    with pytest.raises(MissingCandleError, match=str(pin)):
        compute_features(raw_rows_to_table(rows[200:320]), holed)
    engine = LiveFeatureEngine("BTCUSDT")
    with pytest.raises(MissingCandleError):
        engine.on_row(rows[300])
    for candle in closed_before(history, rows[300].ts):  # the row was not taken: it can come again
        engine.on_candle(candle)
    assert engine.on_row(rows[300]).ts_ms == rows[300].ts


def test_feature_vector_views() -> None:
    values = np.arange(110, dtype=np.float64)
    vector = FeatureVector("BTCUSDT", 1000, values)
    assert vector.to_array().shape == (110,) and vector.names == FEATURE_NAMES
    channels = vector.to_channels()
    assert {k: v.shape for k, v in channels.items()} == {
        "orderbook": (50,),
        "candle": (25,),
        "indicator": (35,),
    }
    assert channels["candle"][0] == 50 and channels["indicator"][-1] == 109
    assert vector.as_dict()["nvi"] == 109 and list(vector.as_dict()) == list(FEATURE_NAMES)
    with pytest.raises(ValueError, match="read-only"):
        vector.to_array()[0] = 1.0
    with pytest.raises(ValueError, match=r"\(110,\)"):
        FeatureVector("BTCUSDT", 1000, np.zeros(109))


def test_features_table_layout() -> None:
    rows, history = stream()
    table = compute_features(raw_rows_to_table(rows[250:300]), candles_to_table(history), n_lookback=10)
    assert table.num_rows == 40
    assert table.column_names == ["symbol", "ts", *FEATURE_NAMES]
    assert table.schema.field("nvi").type == pa.float64()
    assert table.schema.metadata[SPEC_HASH_METADATA_KEY] == feature_spec().spec_hash.encode()
    assert set(table.column("symbol").to_pylist()) == {"BTCUSDT"}
    # the rows' order in the table does not matter, and an empty day gives an empty table
    shuffled = raw_rows_to_table(rows[250:300][::-1])
    assert compute_features(shuffled, candles_to_table(history), n_lookback=10).equals(table)
    empty = compute_features(raw_rows_to_table(rows[250:260]), candles_to_table(history), n_lookback=10)
    assert empty.num_rows == 0 and empty.column_names == table.column_names


def test_order_book_parameters_come_from_the_spec() -> None:
    params = {**FEATURE_PARAMETERS, "MIN_PAIRS": 3}
    spec = FeatureSpec(parameters=params)
    rows, history = stream()
    default = run_live(LiveFeatureEngine("BTCUSDT"), rows[:5], history)
    custom = run_live(LiveFeatureEngine("BTCUSDT", spec), rows[:5], history)
    assert default[4, IDX["kyle_lambda"]] == 0.0 and custom[4, IDX["kyle_lambda"]] != 0.0
    batch = compute_feature_matrix(raw_rows_to_table(rows[:5]), candles_to_table(history), spec=spec)[2]
    assert_parity(custom, batch)


def test_bad_inputs_are_refused() -> None:
    rows, history = stream()
    with pytest.raises(ValueError, match="CANDLE_WINDOW"):
        LiveFeatureEngine("BTCUSDT", FeatureSpec(parameters={**FEATURE_PARAMETERS, "CANDLE_WINDOW": 100}))
    engine = LiveFeatureEngine("BTCUSDT")
    engine.on_row(rows[0])
    with pytest.raises(ValueError, match="strictly increasing ts"):
        engine.on_row(rows[0])
    with pytest.raises(ValueError, match="ETHUSDT"):
        engine.on_row(msgspec.structs.replace(rows[1], symbol="ETHUSDT"))
    with pytest.raises(ValueError, match="ETHUSDT"):
        engine.on_candle(msgspec.structs.replace(history[0], symbol="ETHUSDT"))
    with pytest.raises(ValueError, match="confirmed"):
        engine.on_candle(msgspec.structs.replace(history[0], confirmed=False))
    two = pa.concat_tables(
        [
            raw_rows_to_table(rows[:3]),
            raw_rows_to_table(msgspec.structs.replace(r, symbol="ETHUSDT") for r in rows[3:5]),
        ]
    )
    with pytest.raises(ValueError, match="one symbol"):
        compute_features(two, candles_to_table(history))
    with pytest.raises(ValueError, match="n_lookback"):
        compute_features(raw_rows_to_table(rows[:3]), candles_to_table(history), n_lookback=4)
    with pytest.raises(ValueError, match="strictly increasing ts"):
        compute_features(raw_rows_to_table([rows[0], rows[0]]), candles_to_table(history))


@st.composite
def unpinned_rows(draw: st.DrawFn) -> list[RawSnapshotRow]:
    """Adversarial rows without candles: empty or one-level sides, prices 1e-8…1e7, resets, no trades."""
    price = st.floats(min_value=1e-8, max_value=1e7)
    out = []
    for i in range(draw(st.integers(1, 12))):
        nb, na = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        bids = sorted((draw(price) for _ in range(nb)), reverse=True)
        asks = sorted(draw(price) for _ in range(na))
        out.append(
            RawSnapshotRow(
                symbol="BTCUSDT",
                ts=T0_MS + 1000 * i,
                interval_ms=draw(st.sampled_from((0, 1000))),
                book_reset=i == 0 or draw(st.booleans()),
                n_bid_levels=nb,
                n_ask_levels=na,
                bid_prices=pad_levels(bids),
                bid_sizes=pad_levels([draw(price) for _ in range(nb)]),
                ask_prices=pad_levels(asks),
                ask_sizes=pad_levels([draw(price) for _ in range(na)]),
                last_candle_start_ms=-1,
                last_trade_price=draw(st.one_of(st.just(0.0), price)),
                **dict.fromkeys(ZERO_COUNTS, 0),
                **dict.fromkeys(ZERO_AMOUNTS, 0.0),
            )
        )
    return out


ZERO_COUNTS = [
    "n_book_msgs",
    "n_bbo_changes",
    "bid_inserts",
    "bid_updates",
    "bid_deletes",
    "ask_inserts",
    "ask_updates",
    "ask_deletes",
    "ttl_count",
    "n_buy_trades",
    "n_sell_trades",
    "late_messages",
]
ZERO_AMOUNTS = [
    "ttl_sum_s",
    "ttl_sumsq_s2",
    "buy_volume",
    "sell_volume",
    "buy_notional",
    "sell_notional",
    "eff_spread_wsum",
    "eff_spread_volume",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unpinned_rows())
def test_adversarial_rows_without_candles_give_110_finite_values(rows: list[RawSnapshotRow]) -> None:
    engine = LiveFeatureEngine("BTCUSDT")
    batch = compute_feature_matrix(raw_rows_to_table(rows), candles_to_table([]))[2]
    live = np.array([engine.on_row(r).to_array() for r in rows])
    assert np.isfinite(live).all()
    assert np.array_equal(live, batch)
    mid = live[:, IDX["mid_price"]]
    for name in (
        "open",
        "close",
        "typical_price",
        "volume_weighted_price",
        "sma_50",
        "bollinger_upper",
        "vwap",
    ):
        assert np.array_equal(live[:, IDX[name]], mid), name  # P_ref = m*(t) without a pin
    for name in ("volume", "returns", "obv", "macd", "adx"):
        assert not live[:, IDX[name]].any(), name
    assert (live[:, IDX["rsi_14"]] == 50).all() and (live[:, IDX["nvi"]] == 1000).all()
