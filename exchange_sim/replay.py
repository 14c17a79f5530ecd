"""Replay mode: recorded raw snapshot rows and public trades played back through the venue's engine.

A :class:`ReplayMarket` is a market source (``advance(to_ms)``, see ``exchange_sim.venue``). Its
liquidity is resting orders of the ``replay`` owner in the same book the accounts trade against, so
everything the venue publishes — order-book snapshots and deltas, trades, klines, tickers — comes out
of the normal engine path, and a user's orders meet the recorded market with price-time priority.

* **Trades** (``public_trades`` rows) are reproduced as they were printed: replay liquidity on the
  maker side at prices better than the trade is withdrawn (it was gone when the trade printed at that
  price), enough is placed at the trade price, and an IOC order of the taker side takes it. With no
  user orders in the way the public trade equals the recorded one; a user's order at a better price
  fills first, as it would have.
* **Rows** (``market_snapshots``, docs/features.md §6.1) set the book: at each row's ``ts`` the replay
  orders are reconciled with the row's top 50 levels (reductions first, so that old and new replay
  levels never cross each other, then additions). Without user orders the venue's top 50 then equals
  the row exactly.

Events are played in time order; at equal time trades come before the row, because a row holds the
book after every message with ``ts`` at or before its boundary. Inputs are Arrow tables typed by
``schemas.arrow`` (RAW_SNAPSHOTS, PUBLIC_TRADES), read from the Parquet lake or, by the CLI, from
Postgres.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from exchange_sim.book import BUY, SELL
from exchange_sim.errors import ExchangeError
from exchange_sim.events import OPEN_STATUSES
from exchange_sim.matching import EngineResult, MatchingEngine, OrderRequest
from schemas.arrow import PUBLIC_TRADES, RAW_SNAPSHOTS

REPLAY_OWNER = "replay"
REPLAY_TAKER = "replay-taker"


class ReplayError(ValueError):
    """Recorded data that cannot be played back (unknown symbol, off-grid price, bad table)."""


@dataclass(frozen=True, slots=True)
class _RowEvent:
    ts: int
    symbol: str
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class _TradeEvent:
    ts: int
    symbol: str
    side: str
    price: float
    size: float


def _decimal(value: float) -> Decimal:
    # repr() is the shortest string that round-trips the float, i.e. the exchange's decimal string.
    return Decimal(repr(value))


def _row_events(table: pa.Table) -> Iterator[_RowEvent]:
    missing = [n for n in ("symbol", "ts", "n_bid_levels", "n_ask_levels", "bid_prices", "bid_sizes",
                           "ask_prices", "ask_sizes") if n not in table.column_names]  # fmt: skip
    if missing:
        raise ReplayError(f"snapshot table lacks columns {missing} (expected schemas.arrow.RAW_SNAPSHOTS)")
    for r in table.to_pylist():
        nb, na = r["n_bid_levels"], r["n_ask_levels"]
        yield _RowEvent(
            r["ts"], r["symbol"],
            tuple(zip(r["bid_prices"][:nb], r["bid_sizes"][:nb], strict=True)),
            tuple(zip(r["ask_prices"][:na], r["ask_sizes"][:na], strict=True)),
        )  # fmt: skip


def _trade_events(table: pa.Table) -> Iterator[_TradeEvent]:
    missing = [n for n in ("symbol", "ts", "side", "price", "size") if n not in table.column_names]
    if missing:
        raise ReplayError(f"trade table lacks columns {missing} (expected schemas.arrow.PUBLIC_TRADES)")
    for r in table.to_pylist():
        if r.get("block_trade"):
            continue  # block trades never touch the book (docs/features.md §6.2)
        if r["side"] not in (BUY, SELL):
            raise ReplayError(
                f"trade {r.get('trade_id')!r} at {r['ts']}: side must be Buy or Sell, got {r['side']!r}"
            )
        yield _TradeEvent(r["ts"], r["symbol"], r["side"], r["price"], r["size"])


class ReplayMarket:
    """Plays recorded rows and trades through ``engine`` as exchange time advances."""

    def __init__(self, engine: MatchingEngine, snapshots: pa.Table, trades: pa.Table | None = None) -> None:
        self.engine = engine
        rows = sorted(_row_events(snapshots), key=lambda e: (e.ts, e.symbol))
        prints = sorted(_trade_events(trades), key=lambda e: e.ts) if trades is not None else []
        unknown = {e.symbol for e in rows} | {e.symbol for e in prints}
        unknown -= set(engine.instruments)
        if unknown:
            raise ReplayError(f"recorded symbols {sorted(unknown)} are not instruments of this exchange")
        # Trades sort before a row of the same ts (kind 0 < 1).
        self._events: list[tuple[int, int, int, _RowEvent | _TradeEvent]] = [
            (e.ts, 0, i, e) for i, e in enumerate(prints)
        ] + [(e.ts, 1, i, e) for i, e in enumerate(rows)]
        heapq.heapify(self._events)
        self._resting: dict[str, dict[str, tuple[str, int, int]]] = {s: {} for s in engine.instruments}
        self.rows_played = 0
        self.trades_played = 0

    @classmethod
    def from_parquet(
        cls, engine: MatchingEngine, snapshot_paths: Iterable[Path], trade_paths: Iterable[Path] = ()
    ) -> ReplayMarket:
        """A replay of Parquet files of the lake (raw_snapshots and public_trades datasets)."""
        snaps = [pq.read_table(p) for p in snapshot_paths]
        if not snaps:
            raise ReplayError("no snapshot files to replay")
        prints = [pq.read_table(p) for p in trade_paths]
        snapshots = pa.concat_tables([t.select(RAW_SNAPSHOTS.names).cast(RAW_SNAPSHOTS) for t in snaps])
        trades = (
            pa.concat_tables([t.select(PUBLIC_TRADES.names).cast(PUBLIC_TRADES) for t in prints])
            if prints
            else None
        )
        return cls(engine, snapshots, trades)

    @property
    def start_ms(self) -> int | None:
        """Time of the first recorded event: where the venue clock should start."""
        return self._events[0][0] if self._events else None

    @property
    def done(self) -> bool:
        return not self._events

    def advance(self, to_ms: int) -> list[EngineResult]:
        """Play every recorded event with ``ts`` <= ``to_ms``; return the engine results in order."""
        results: list[EngineResult] = []
        while self._events and self._events[0][0] <= to_ms:
            _, _, _, event = heapq.heappop(self._events)
            if isinstance(event, _TradeEvent):
                self._play_trade(event, results)
                self.trades_played += 1
            else:
                self._play_row(event, results)
                self.rows_played += 1
        return results

    # -- trades --------------------------------------------------------------------------------------

    def _play_trade(self, t: _TradeEvent, results: list[EngineResult]) -> None:
        spec = self.engine.instruments[t.symbol]
        ticks = self._ticks(t.symbol, t.price, t.ts)
        lots = self._lots(t.symbol, t.size, t.ts)
        maker = SELL if t.side == BUY else BUY
        sign = 1 if maker == BUY else -1  # a better maker price: higher bid, lower ask
        for order_id, (side, price, _) in list(self._resting[t.symbol].items()):
            if side == maker and sign * (price - ticks) > 0:
                self._call(results, self.engine.cancel, REPLAY_OWNER, t.symbol, order_id=order_id)
        have = sum(q for s, p, q in self._resting[t.symbol].values() if s == maker and p == ticks)
        if have < lots:
            self._place(t.symbol, maker, ticks, lots - have, results)
        request = OrderRequest(
            t.symbol, t.side, "Limit", spec.lots_to_qty(lots), spec.ticks_to_price(ticks), "IOC"
        )
        self._call(results, self.engine.submit, REPLAY_TAKER, request)

    # -- rows ----------------------------------------------------------------------------------------

    def _play_row(self, row: _RowEvent, results: list[EngineResult]) -> None:
        target: dict[tuple[str, int], int] = {}
        for side, levels in ((BUY, row.bids), (SELL, row.asks)):
            for price, size in levels:
                target[(side, self._ticks(row.symbol, price, row.ts))] = self._lots(row.symbol, size, row.ts)
        current: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for order_id, (side, price, lots) in self._resting[row.symbol].items():
            current.setdefault((side, price), []).append((order_id, lots))
        # Reductions first: a new level may sit where an old level of the other side was.
        for key, orders in current.items():
            excess = sum(q for _, q in orders) - target.get(key, 0)
            for order_id, lots in reversed(orders):  # newest first: older orders keep their place
                if excess <= 0:
                    break
                if lots <= excess:
                    self._call(results, self.engine.cancel, REPLAY_OWNER, row.symbol, order_id=order_id)
                else:
                    spec = self.engine.instruments[row.symbol]
                    self._call(results, self.engine.amend, REPLAY_OWNER, row.symbol, order_id=order_id,
                               qty=spec.lots_to_qty(lots - excess))  # fmt: skip
                excess -= lots
        for (side, price), lots in target.items():
            have = sum(q for s, p, q in self._resting[row.symbol].values() if s == side and p == price)
            if lots > have:
                self._place(row.symbol, side, price, lots - have, results)
        book = self.engine.books[row.symbol]
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            self.engine.set_mark_price(row.symbol, book.instrument.ticks_to_price(bid + ask) / 2)

    # -- engine calls ----------------------------------------------------------------------------------

    def _place(self, symbol: str, side: str, ticks: int, lots: int, results: list[EngineResult]) -> None:
        spec = self.engine.instruments[symbol]
        request = OrderRequest(
            symbol, side, "Limit", spec.lots_to_qty(lots), spec.ticks_to_price(ticks), "GTC"
        )
        self._call(results, self.engine.submit, REPLAY_OWNER, request)

    def _call(
        self, results: list[EngineResult], fn: Callable[..., EngineResult], *args: Any, **kwargs: Any
    ) -> None:
        try:
            result = fn(*args, **kwargs)
        except ExchangeError as exc:
            raise ReplayError(f"the engine refused a replay order ({args[1:]}, {kwargs}): {exc}") from exc
        results.append(result)
        self._track(result)

    def _track(self, result: EngineResult) -> None:
        """Keep the replay owner's resting orders (side, ticks, leaves lots) in step with the engine."""
        for order in result.order_updates:
            if order.owner != REPLAY_OWNER:
                continue
            resting = self._resting[order.symbol]
            if order.order_status in OPEN_STATUSES:
                spec = self.engine.instruments[order.symbol]
                assert order.price is not None
                resting[order.order_id] = (order.side, spec.price_to_ticks(order.price),
                                           spec.qty_to_lots(order.leaves_qty))  # fmt: skip
            else:
                resting.pop(order.order_id, None)

    def _ticks(self, symbol: str, price: float, ts: int) -> int:
        try:
            return self.engine.instruments[symbol].price_to_ticks(_decimal(price))
        except ExchangeError as exc:
            raise ReplayError(
                f"{symbol} at {ts}: recorded price {price} is not on the tick grid: {exc}"
            ) from exc

    def _lots(self, symbol: str, size: float, ts: int) -> int:
        try:
            return self.engine.instruments[symbol].qty_to_lots(_decimal(size))
        except ExchangeError as exc:
            raise ReplayError(
                f"{symbol} at {ts}: recorded size {size} is not on the lot grid: {exc}"
            ) from exc
