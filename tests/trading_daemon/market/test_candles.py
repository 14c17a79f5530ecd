from __future__ import annotations

import pytest

from schemas.features import CANDLE_WINDOW
from schemas.market import Candle
from trading_daemon.market.candles import CandleStore

T = 1_767_225_600_000
M = 60_000


def _c(i: int, close: float = 100.0) -> Candle:
    return Candle(symbol="BTCUSDT", start_ms=T + i * M, open=100.0, high=101.0, low=99.0, close=close,
                  volume=1.0, turnover=100.0)  # fmt: skip


def test_history_drops_the_open_candle_and_pins_the_newest_closed() -> None:
    store = CandleStore("BTCUSDT")
    added = store.load_history([_c(i) for i in range(201)], request_exchange_ms=T + 200 * M + 5_000)
    assert added == 200 and store.pin == T + 199 * M
    window = store.window()
    assert len(window) == CANDLE_WINDOW and window[0].start_ms == T and window[-1].start_ms == T + 199 * M


def test_pin_advances_only_on_confirm_and_holds_at_a_hole() -> None:
    store = CandleStore("BTCUSDT")
    store.load_history([_c(i) for i in range(5)], request_exchange_ms=T + 5 * M)
    assert store.pin == T + 4 * M
    assert store.on_kline(_c(5), confirm=False) is False and store.pin == T + 4 * M
    assert store.open_candle is not None and store.open_candle.start_ms == T + 5 * M
    # minute 5's confirm was lost (disconnect); minute 6 closes: the pin waits for the back-fill
    assert store.on_kline(_c(6), confirm=True) is False and store.pin == T + 4 * M
    assert store.missing() == [T + 5 * M]
    assert [c.start_ms for c in store.window()][-1] == T + 4 * M
    store.load_history([_c(5)], request_exchange_ms=T + 7 * M)
    assert store.pin == T + 6 * M and store.missing() == []
    assert len(store.window()) == 7


def test_memory_is_bounded_and_every_closed_candle_is_recorded_once() -> None:
    store = CandleStore("BTCUSDT", max_closed=CANDLE_WINDOW)
    for i in range(300):
        store.on_kline(_c(i), confirm=True)
    assert len(store) == CANDLE_WINDOW and store.pin == T + 299 * M and len(store.window()) == CANDLE_WINDOW
    recorded = store.drain_unrecorded()
    assert [c.start_ms for c in recorded] == [T + i * M for i in range(300)]
    store.on_kline(_c(299), confirm=True)  # the same confirm re-sent: nothing new
    assert store.drain_unrecorded() == []
    store.on_kline(_c(299, close=100.5), confirm=True)  # a corrected candle is recorded again
    assert [c.close for c in store.drain_unrecorded()] == [100.5]


def test_bad_inputs_are_named() -> None:
    store = CandleStore("BTCUSDT")
    with pytest.raises(ValueError, match="candle of ETHUSDT given to the BTCUSDT store"):
        store.on_kline(Candle(symbol="ETHUSDT", start_ms=T, open=1, high=1, low=1, close=1, volume=0, turnover=0),
                       confirm=True)  # fmt: skip
    with pytest.raises(ValueError, match="at least CANDLE_WINDOW"):
        CandleStore("BTCUSDT", max_closed=10)
