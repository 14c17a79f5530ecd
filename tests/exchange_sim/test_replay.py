from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from exchange_sim.accounts import AccountRegistry
from exchange_sim.instruments import DEFAULT_INSTRUMENTS
from exchange_sim.matching import MatchingEngine, OrderRequest
from exchange_sim.replay import ReplayError, ReplayMarket
from schemas.arrow import raw_rows_to_table, trades_to_table
from schemas.enums import Side
from schemas.market import PublicTrade
from testkit.rows import T0_MS, snapshot_rows


class Clock:
    def __init__(self) -> None:
        self.now = T0_MS

    def __call__(self) -> int:
        return self.now


def _engine(clock: Clock) -> MatchingEngine:
    registry = AccountRegistry(DEFAULT_INSTRUMENTS, clock)
    registry.open("user", D("100000"))
    return MatchingEngine(registry)


def _top(engine: MatchingEngine, symbol: str = "BTCUSDT") -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:
    snap = engine.book(symbol).snapshot(50)
    return list(snap.bids), list(snap.asks)


def _expected(row) -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:  # type: ignore[no-untyped-def]
    def side(prices: list[float], sizes: list[float], n: int) -> list[tuple[D, D]]:
        return [(D(repr(p)), D(repr(s))) for p, s in zip(prices[:n], sizes[:n], strict=True)]

    return side(row.bid_prices, row.bid_sizes, row.n_bid_levels), side(
        row.ask_prices, row.ask_sizes, row.n_ask_levels
    )


def test_rows_set_the_book_exactly_at_each_row() -> None:
    clock = Clock()
    rows = list(snapshot_rows(120))
    engine = _engine(clock)
    market = ReplayMarket(engine, raw_rows_to_table(rows))
    assert market.start_ms == rows[0].ts
    for row in rows:
        clock.now = row.ts
        market.advance(row.ts)
        assert _top(engine) == _expected(row), row.ts
        engine.book("BTCUSDT").check_invariants()
    assert market.done and market.rows_played == 120


def _trade(i: int, ts: int, side: Side, price: float, size: float) -> PublicTrade:
    return PublicTrade(symbol="BTCUSDT", ts=ts, trade_id=f"r{i}", side=side, price=price, size=size)


def test_trades_print_as_recorded_between_rows() -> None:
    clock = Clock()
    rows = list(snapshot_rows(3))
    bids, asks = _expected(rows[0])
    best_bid, best_ask = float(bids[0][0]), float(asks[0][0])
    prints = [
        _trade(1, T0_MS + 200, Side.BUY, best_ask, 0.002),  # lifts the recorded ask
        _trade(2, T0_MS + 400, Side.SELL, round(best_bid - 0.2, 1), 0.005),  # two ticks through the bid
        _trade(3, T0_MS + 1000, Side.BUY, best_ask, 0.001),  # same ts as row 2: before it
    ]
    engine = _engine(clock)
    market = ReplayMarket(engine, raw_rows_to_table(rows), trades_to_table(prints))
    printed = []
    for to in (T0_MS, T0_MS + 500, T0_MS + 1000, T0_MS + 2000):
        clock.now = to
        for result in market.advance(to):
            printed += [(t.taker_side, t.price, t.qty) for t in result.trades]
    assert printed == [
        ("Buy", D(repr(best_ask)), D("0.002")),
        ("Sell", D(repr(round(best_bid - 0.2, 1))), D("0.005")),
        ("Buy", D(repr(best_ask)), D("0.001")),
    ]
    assert _top(engine) == _expected(rows[2])  # the next row restores the recorded book
    assert market.trades_played == 3


def test_a_user_bid_better_than_a_recorded_sell_fills_first() -> None:
    clock = Clock()
    rows = list(snapshot_rows(2))
    bids, _ = _expected(rows[0])
    engine = _engine(clock)
    sell_px = float(bids[2][0])  # the recorded sell swept two levels below the best bid
    market = ReplayMarket(
        engine, raw_rows_to_table(rows), trades_to_table([_trade(1, T0_MS + 300, Side.SELL, sell_px, 0.003)])
    )
    market.advance(T0_MS)
    user_px = bids[0][0]  # the user joined the best bid, behind the recorded volume
    engine.submit("user", OrderRequest("BTCUSDT", "Buy", "Limit", D("0.002"), user_px))
    results = market.advance(T0_MS + 300)
    # The recorded volume above the print was gone by then; the user's bid was not, so it fills first.
    user_fills = [e for r in results for e in r.executions if e.owner == "user"]
    assert [(e.exec_price, e.exec_qty, e.is_maker) for e in user_fills] == [(user_px, D("0.002"), True)]
    trades = [(t.price, t.qty) for r in results for t in r.trades]
    assert trades == [(user_px, D("0.002")), (D(repr(sell_px)), D("0.001"))]


def test_parquet_round_trip(tmp_path: Path) -> None:
    rows = list(snapshot_rows(10))
    pq.write_table(raw_rows_to_table(rows), tmp_path / "rows.parquet")
    clock = Clock()
    engine = _engine(clock)
    market = ReplayMarket.from_parquet(engine, [tmp_path / "rows.parquet"])
    clock.now = rows[-1].ts
    market.advance(rows[-1].ts)
    assert _top(engine) == _expected(rows[-1])


def test_bad_recordings_are_named() -> None:
    engine = _engine(Clock())
    eth = list(snapshot_rows(1, symbol="DOGEUSDT"))
    with pytest.raises(ReplayError, match=r"\['DOGEUSDT'\] are not instruments"):
        ReplayMarket(engine, raw_rows_to_table(eth))
    off_grid = list(snapshot_rows(1, mid=64000.05))
    market = ReplayMarket(engine, raw_rows_to_table(off_grid))
    with pytest.raises(
        ReplayError, match=r"BTCUSDT at 1767225600000: recorded price 6399\d\.\d+ is not on the tick grid"
    ):
        market.advance(T0_MS)
    with pytest.raises(ReplayError, match="lacks columns"):
        ReplayMarket(engine, raw_rows_to_table(eth).drop_columns(["bid_sizes"]))
    with pytest.raises(ReplayError, match="no snapshot files"):
        ReplayMarket.from_parquet(engine, [])
