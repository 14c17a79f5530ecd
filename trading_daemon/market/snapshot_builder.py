"""The raw snapshot builder: the single producer of raw snapshot rows (docs/features.md §6), for recording
and for live features alike.

One builder per symbol consumes that symbol's messages in arrival order — `orderbook.50` snapshots and
deltas, `publicTrade` records, and the timestamps of every other message (klines) — and cuts rows on
exchange time: row R (a multiple of SNAPSHOT_INTERVAL_MS) holds the messages with ts <= R that no
earlier row holds. Row R is emitted when the symbol's clock (the running maximum message ts) passes R,
or when `on_timer` sees local time (mapped onto exchange time) pass R + ROW_GRACE_MS. The builder is
pure and synchronous: the daemon feeds it, so a replayed message log reproduces the recorded rows.

A row is emitted on time whatever happened: one that cannot be built from the book and the interval's
aggregates (a level the book should never have held, an aggregate that overflowed) is emitted as the row
of an invalid book instead (no levels, `book_reset`, docs/features.md §6.2), the book is invalidated, and
`pop_degraded_rows` tells the owner to resync it. Nothing the builder is fed can stop its rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from schemas.snapshot import BOOK_DEPTH, NO_CANDLE_PIN, RawSnapshotRow
from trading_daemon.market.orderbook import DeltaOutcome, Level, LevelEvents, LocalOrderBook

log = structlog.get_logger(__name__)


@dataclass
class _Aggregates:
    """The stream aggregates of the row being built; reset after each emitted row."""

    n_book_msgs: int = 0
    n_bbo_changes: int = 0
    events: LevelEvents = field(default_factory=LevelEvents)
    n_buy_trades: int = 0
    n_sell_trades: int = 0
    buy_volume: float = 0.0
    sell_volume: float = 0.0
    buy_notional: float = 0.0
    sell_notional: float = 0.0
    eff_spread_wsum: float = 0.0
    eff_spread_volume: float = 0.0
    late_messages: int = 0
    book_loaded: bool = False  # a snapshot was loaded since the previous row


class RawSnapshotBuilder:
    """Builds the raw snapshot rows of one symbol from its messages (docs/features.md §6.2).

    `interval_ms` and `grace_ms` are SNAPSHOT_INTERVAL_MS and ROW_GRACE_MS (`infra.settings.FeedConfig`).
    """

    def __init__(
        self,
        symbol: str,
        *,
        interval_ms: int,
        grace_ms: int,
        candle_pin: Callable[[], int] = lambda: NO_CANDLE_PIN,
        book: LocalOrderBook | None = None,
    ) -> None:
        if interval_ms <= 0:
            raise ValueError(f"SNAPSHOT_INTERVAL_MS must be positive, got {interval_ms}")
        if grace_ms < 0:
            raise ValueError(f"ROW_GRACE_MS must be >= 0, got {grace_ms}")
        self.symbol = symbol
        self.interval_ms = interval_ms
        self.grace_ms = grace_ms
        self.candle_pin = candle_pin
        self.book = book or LocalOrderBook(symbol)
        self.clock: int | None = None  # running max of message ts
        self.first_message_ts: int | None = None
        self.next_boundary: int | None = None  # the open row's R
        self.last_emitted: int | None = None
        self.last_trade_price = 0.0
        self.rows_emitted = 0
        self.rows_degraded = 0  # rows emitted as an invalid book's because the real one could not be built
        self._degraded_unreported = 0
        self._agg = _Aggregates()

    # -- inputs --------------------------------------------------------------------------------------

    def on_book_snapshot(
        self, bids: Sequence[Level], asks: Sequence[Level], u: int, ts: int
    ) -> list[RawSnapshotRow]:
        rows = self._arrive(ts)
        before = self._bbo_state()
        self.book.load_snapshot(bids, asks, u, ts)  # snapshots produce no level events
        self._agg.n_book_msgs += 1
        self._agg.book_loaded = True
        self._count_bbo(before)
        return rows

    def on_book_delta(
        self, bids: Sequence[Level], asks: Sequence[Level], u: int, ts: int
    ) -> tuple[list[RawSnapshotRow], DeltaOutcome]:
        """Apply a delta; the outcome tells the caller whether to resubscribe (`needs_resync`)."""
        rows = self._arrive(ts)
        before = self._bbo_state()
        outcome = self.book.apply_delta(bids, asks, u, ts, self._agg.events)
        if outcome in (DeltaOutcome.APPLIED, DeltaOutcome.CROSSED):
            self._agg.n_book_msgs += 1
            self._count_bbo(before)
        return rows, outcome

    def on_trade(
        self, ts: int, side: str, price: float, size: float, *, block_trade: bool = False
    ) -> list[RawSnapshotRow]:
        if not (0.0 < price < math.inf and 0.0 < size < math.inf):
            raise ValueError(
                f"{self.symbol} trade at {ts}: price and size must be finite and > 0, got {price} and {size}"
            )
        if side not in ("Buy", "Sell"):
            raise ValueError(f"{self.symbol} trade at {ts}: taker side must be Buy or Sell, got {side!r}")
        rows = self._arrive(ts)
        if block_trade:  # block trades never touch the book and are left out of every aggregate
            return rows
        agg = self._agg
        if side == "Buy":
            agg.n_buy_trades += 1
            agg.buy_volume += size
            agg.buy_notional += price * size
        else:
            agg.n_sell_trades += 1
            agg.sell_volume += size
            agg.sell_notional += price * size
        mid = self.book.mid()
        if mid is not None:
            agg.eff_spread_wsum += size * abs(price - mid) / mid
            agg.eff_spread_volume += size
        self.last_trade_price = price
        return rows

    def on_other_message(self, ts: int) -> list[RawSnapshotRow]:
        """Any other message of the symbol (klines): it only moves the clock."""
        return self._arrive(ts)

    def on_timer(self, exchange_now_ms: int) -> list[RawSnapshotRow]:
        """Emit every open row whose grace period has passed on the local clock (in exchange time)."""
        rows: list[RawSnapshotRow] = []
        while self.next_boundary is not None and exchange_now_ms >= self.next_boundary + self.grace_ms:
            if (row := self._emit()) is not None:
                rows.append(row)
        return rows

    def invalidate_book(self) -> None:
        """The connection dropped or a resync started: rows carry no levels until the next snapshot."""
        self.book.invalidate()

    def pop_degraded_rows(self) -> int:
        """Rows emitted as an invalid book's since the last call (the book was invalidated: resync it)."""
        n, self._degraded_unreported = self._degraded_unreported, 0
        return n

    # -- rows ----------------------------------------------------------------------------------------

    def _arrive(self, ts: int) -> list[RawSnapshotRow]:
        rows: list[RawSnapshotRow] = []
        if self.next_boundary is None:
            self.first_message_ts = ts
            self.next_boundary = -(-ts // self.interval_ms) * self.interval_ms  # first multiple >= ts
        while ts > self.next_boundary:  # the clock passes R: row R is complete
            if (row := self._emit()) is not None:
                rows.append(row)
        if self.last_emitted is not None and ts <= self.last_emitted:
            self._agg.late_messages += 1
        self.clock = ts if self.clock is None else max(self.clock, ts)
        return rows

    def _emit(self) -> RawSnapshotRow | None:
        assert self.next_boundary is not None
        boundary = self.next_boundary
        row: RawSnapshotRow | None
        try:
            row = self._row(boundary, self._agg)
        except Exception as exc:  # whatever broke the row, it must not stop this symbol's rows
            row = self._degraded_row(boundary, exc)
        self._agg = _Aggregates()
        self.last_emitted = boundary
        self.next_boundary = boundary + self.interval_ms
        if row is not None:
            self.rows_emitted += 1
        return row

    def _degraded_row(self, boundary: int, error: Exception) -> RawSnapshotRow | None:
        """Row `boundary` as an invalid book's (no levels, `book_reset`), the book invalidated for a resync.

        The interval's aggregates stay when they are valid; when they are not (an overflow, a lifetime
        from messages whose ts went backwards) the row carries none, which its `book_reset` covers. None
        only when not even that row is valid (a boundary that is no time: a message with ts <= 0).
        """
        self.book.invalidate()
        self.rows_degraded += 1
        self._degraded_unreported += 1
        row: RawSnapshotRow | None = None
        aggregates = "kept"
        for agg in (self._agg, _Aggregates()):
            try:
                row = self._row(boundary, agg)
                break
            except ValueError:
                aggregates = "dropped"
        log.error(
            "raw snapshot row could not be built: emitted without levels, book invalidated",
            symbol=self.symbol, ts=boundary, error=repr(error), aggregates=aggregates if row else "no row",
        )  # fmt: skip
        return row

    def _row(self, boundary: int, agg: _Aggregates) -> RawSnapshotRow:
        assert self.first_message_ts is not None
        bids, asks = self.book.top(BOOK_DEPTH)
        first = self.rows_emitted == 0
        ev = agg.events
        lifetimes = ev.lifetimes_s
        return RawSnapshotRow(
            symbol=self.symbol,
            ts=boundary,
            interval_ms=boundary - self.first_message_ts if first else self.interval_ms,
            book_reset=first or agg.book_loaded or not self.book.valid,
            n_bid_levels=len(bids),
            n_ask_levels=len(asks),
            bid_prices=_pad([p for p, _ in bids]),
            bid_sizes=_pad([s for _, s in bids]),
            ask_prices=_pad([p for p, _ in asks]),
            ask_sizes=_pad([s for _, s in asks]),
            last_candle_start_ms=self.candle_pin(),
            n_book_msgs=agg.n_book_msgs,
            n_bbo_changes=agg.n_bbo_changes,
            bid_inserts=ev.bid_inserts,
            bid_updates=ev.bid_updates,
            bid_deletes=ev.bid_deletes,
            ask_inserts=ev.ask_inserts,
            ask_updates=ev.ask_updates,
            ask_deletes=ev.ask_deletes,
            ttl_count=len(lifetimes),
            ttl_sum_s=sum(lifetimes),
            ttl_sumsq_s2=sum(x * x for x in lifetimes),
            n_buy_trades=agg.n_buy_trades,
            n_sell_trades=agg.n_sell_trades,
            buy_volume=agg.buy_volume,
            sell_volume=agg.sell_volume,
            buy_notional=agg.buy_notional,
            sell_notional=agg.sell_notional,
            eff_spread_wsum=agg.eff_spread_wsum,
            eff_spread_volume=agg.eff_spread_volume,
            last_trade_price=self.last_trade_price,
            late_messages=agg.late_messages,
            book_update_id=self.book.last_u,
            book_msg_ts=self.book.last_ts,
        )

    def _bbo_state(self) -> tuple[Level | None, Level | None]:
        # (Pb, Qb) and (Pa, Qa); an empty side or an invalid book counts as "none".
        return self.book.best_bid(), self.book.best_ask()

    def _count_bbo(self, before: tuple[Level | None, Level | None]) -> None:
        if self._bbo_state() != before:
            self._agg.n_bbo_changes += 1


def _pad(values: list[float]) -> list[float]:
    return values + [0.0] * (BOOK_DEPTH - len(values))
