"""What feeds the live hub from the running daemon.

    BookPublisher(hub)              a market sink: each raw snapshot row → a `book` message (synchronous)
    await run_publishers(ctx, stop) periodic looks at the live components and the database, until `stop`:

    topic     every   source                                               published when
    metrics   2 s     ctx.analyzer.all_latest()                             always (the screener's columns)
    bot       1 s     ctx.ready, execution's pause, kill switch and holds   it changed (and once at start)
    drift     5 s     DriftReportRepository (sync: in a thread)             a new report was stored
    order     0.5 s   ctx.execution.account.orders (+ the ledger's          an order's status, filled quantity,
                      order-end hook, OrderRepository for final states)     version or update time changed
    position  0.5 s   ctx.execution.account.positions (+ PositionRepository) likewise
    fill      1 s     the fills table, by id                                a new fill was stored
    signal    1 s     the signals table, by id                              a new signal was stored
    model     2 s     ctx.decisions.gate.stats()                            the production or shadow version or
                                                                            the fallback changed (and at start)

A record leaving the live set (an order that ended, a position that closed) is published once more with its
final state. Ids are read from the moment the publishers start: history is the HTTP routes' business. A poll
that fails (the database is down) is logged once per outage and tried again the next period.

Every message's `data` is plain JSON: money as a decimal string, time as integer ms, enums as their values.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import structlog
from psycopg import Connection
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.repositories.fills import FillRepository
from infra.db.repositories.orchestration import DriftReportRecord, DriftReportRepository
from infra.db.repositories.orders import OrderRepository
from infra.db.repositories.positions import PositionRepository
from infra.db.repositories.signals import SignalRepository
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from schemas.trading import Order, Position
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.hub import Hub
from trading_daemon.api.messages import (
    book_message,
    bot_message,
    diff_live,
    drift_message,
    fill_message,
    metrics_message,
    model_key,
    model_message,
    order_fingerprint,
    order_message,
    position_fingerprint,
    position_key,
    position_message,
    signal_message,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

METRICS_PERIOD_S = 2.0
BOT_PERIOD_S = 1.0
LIVE_PERIOD_S = 0.5  # orders and positions: a look at memory, the database only for final states
FILL_PERIOD_S = 1.0
SIGNAL_PERIOD_S = 1.0
MODEL_PERIOD_S = 2.0
DRIFT_PERIOD_S = 5.0
BATCH = 500  # new rows read per look; more wait for the next one (nothing is skipped)
PUBLISHED_MEMORY = 4096  # records whose last published state is remembered (no repeats)


# ---- the market ---------------------------------------------------------------------------------------


class BookPublisher:
    """A market sink (`MarketSink`): the touch of each raw snapshot row as a `book` message."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        # On the feed's path for every row: build nothing while no page watches the book.
        if not self.hub.wanted("book"):
            return
        for row in rows:
            self.hub.publish("book", book_message(row))

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Trades reach the page through the `metrics` topic's flow columns."""

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        """Candles are read from the HTTP routes."""


# ---- trading records ----------------------------------------------------------------------------------


class LiveRecords(Generic[T]):
    """One kind of live record (orders, positions) on one topic: its changes, then its final state."""

    def __init__(
        self,
        hub: Hub,
        topic: str,
        *,
        live: Callable[[], Mapping[str, T]],
        fingerprint: Callable[[T], Hashable],
        message: Callable[[T], dict[str, Any]],
        read_final: Callable[[str], Awaitable[T | None]],
    ) -> None:
        self.hub = hub
        self.topic = topic
        self._live = live
        self._fingerprint = fingerprint
        self._message = message
        self._read_final = read_final
        self._seen: dict[str, tuple[Hashable, T]] = {}
        self._leaving: dict[str, T] = {}  # left the live set; final state not read yet
        self._published: dict[str, Hashable] = {}  # key → fingerprint last published, oldest first

    async def poll(self) -> None:
        """Publish what changed; then the final state of what left (raises while the database is down: those
        are read again the next time)."""
        self._seen, changed, gone = diff_live(self._seen, self._live(), self._fingerprint)
        for key, record in changed:
            self._emit(key, record)
        self._leaving.update(gone)
        for key, last in list(self._leaving.items()):
            final = await self._read_final(key)
            del self._leaving[key]
            self._emit(key, final if final is not None else last)

    def ended(self, key: str, record: T) -> None:
        """A record's final state, straight from its owner (the ledger's order-end hook): no database read."""
        self._seen.pop(key, None)
        self._leaving.pop(key, None)
        self._emit(key, record)

    def _emit(self, key: str, record: T) -> None:
        fp = self._fingerprint(record)
        if self._published.get(key) == fp:
            return  # the hook and a look (or a database read) saw the same state
        self._published.pop(key, None)
        self._published[key] = fp
        if len(self._published) > PUBLISHED_MEMORY:
            del self._published[next(iter(self._published))]
        self.hub.publish(self.topic, self._message(record))


class IdCursor(Protocol[T_co]):
    """A table walked by id (`FillRepository`, `SignalRepository`)."""

    async def last_id(self) -> int: ...
    async def after_id(self, last_id: int, *, limit: int = ...) -> Sequence[T_co]: ...


def fill_cursor(pool: AsyncConnectionPool) -> FillRepository:
    return FillRepository(pool)


def signal_cursor(pool: AsyncConnectionPool) -> SignalRepository:
    return SignalRepository(pool)


class NewRows(Generic[T]):
    """Publish the rows stored since the publishers started."""

    def __init__(
        self, hub: Hub, topic: str, cursor: IdCursor[T], record_id: Callable[[T], int | None],
        message: Callable[[T], dict[str, Any]],
    ) -> None:  # fmt: skip
        self.hub, self.topic, self.cursor = hub, topic, cursor
        self._record_id, self._message = record_id, message
        self.last_id: int | None = None

    async def poll(self) -> None:
        if self.last_id is None:
            self.last_id = await self.cursor.last_id()
            return
        for record in await self.cursor.after_id(self.last_id, limit=BATCH):
            self.hub.publish(self.topic, self._message(record))
            self.last_id = self._record_id(record) or self.last_id


# ---- the bot, the model, drift --------------------------------------------------------------------------


class OnChange:
    """Publish a state when its key changed since the last publication (and at the first look)."""

    def __init__(
        self,
        hub: Hub,
        topic: str,
        state: Callable[[], dict[str, Any]],
        key: Callable[[dict[str, Any]], Hashable],
    ) -> None:
        self.hub, self.topic, self._state, self._key = hub, topic, state, key
        self._last: Hashable = object()

    async def poll(self) -> None:
        message = self._state()
        key = self._key(message)
        if key != self._last:
            self.hub.publish(self.topic, message)
            self._last = key


class DriftReports:
    """New drift reports, read over one sync connection kept in a worker thread's hands."""

    def __init__(self, hub: Hub, db: Database) -> None:
        self.hub, self.db = hub, db
        self.last_id: int | None = None
        self._conn: Connection[Any] | None = None

    async def poll(self) -> None:
        for report in await asyncio.to_thread(self._read):
            self.hub.publish("drift", drift_message(report))
            self.last_id = report.id or self.last_id

    def _read(self) -> list[DriftReportRecord]:
        if self._conn is None or self._conn.closed:
            # autocommit: a long-lived connection must not sit idle in an open transaction
            self._conn = self.db.connect(autocommit=True)
        try:
            repo = DriftReportRepository(self._conn)
            if self.last_id is None:
                newest = repo.recent(limit=1)
                self.last_id = (newest[0].id or 0) if newest else 0
                return []
            return repo.after(self.last_id, limit=BATCH)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


# ---- running them -------------------------------------------------------------------------------------


async def poll_every(
    name: str, period_s: float, poll: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    """`poll` now and every `period_s` until `stop`; a failure is logged once per outage, never ends it."""
    failing = False
    while not stop.is_set():
        try:
            await poll()
        except Exception as exc:
            if not failing:
                log.warning(
                    "live feed poll failed; retried every period",
                    feed=name,
                    error=f"{type(exc).__name__}: {exc}",
                )
            failing = True
        else:
            if failing:
                log.info("live feed poll works again", feed=name)
            failing = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)


async def run_publishers(ctx: DaemonContext, stop: asyncio.Event) -> None:
    """Feed `ctx.hub` from the live daemon until `stop` is set (module docstring)."""
    hub = ctx.hub
    if hub is None:
        raise ValueError("run_publishers: ctx.hub is None (create the Hub before its publishers)")

    async def screener() -> None:
        latest = ctx.analyzer.all_latest()
        if latest:
            hub.publish("metrics", metrics_message(latest))

    drift = DriftReports(hub, ctx.db)
    bot = OnChange(hub, "bot", lambda: bot_message(ctx), lambda m: msgspec.json.encode(m))
    feeds: list[tuple[str, float, Callable[[], Awaitable[None]]]] = [
        ("metrics", METRICS_PERIOD_S, screener),
        ("bot", BOT_PERIOD_S, bot.poll),
        ("drift", DRIFT_PERIOD_S, drift.poll),
    ]
    undo: list[Callable[[], None]] = []
    if ctx.execution is not None:
        execution, pool = ctx.execution, ctx.pool
        orders_repo, positions_repo = OrderRepository(pool), PositionRepository(pool)

        async def final_position(key: str) -> Position | None:
            return await positions_repo.get(int(key)) if key.isdigit() else None

        orders = LiveRecords(
            hub, "order", live=lambda: dict(execution.account.orders), fingerprint=order_fingerprint,
            message=order_message, read_final=orders_repo.get_by_client_order_id,
        )  # fmt: skip
        positions = LiveRecords(
            hub, "position", live=lambda: {position_key(p): p for p in execution.account.positions.values()},
            fingerprint=position_fingerprint, message=position_message, read_final=final_position,
        )  # fmt: skip
        fills = NewRows(hub, "fill", fill_cursor(pool), lambda f: f.id, fill_message)

        async def order_ended(order: Order, report: object) -> None:
            orders.ended(order.client_order_id, order)

        execution.ledger.on_order_end.append(order_ended)
        undo.append(functools.partial(execution.ledger.on_order_end.remove, order_ended))
        feeds += [("order", LIVE_PERIOD_S, orders.poll), ("position", LIVE_PERIOD_S, positions.poll),
                  ("fill", FILL_PERIOD_S, fills.poll)]  # fmt: skip
    if ctx.decisions is not None:
        gate = ctx.decisions.gate
        signals = NewRows(hub, "signal", signal_cursor(ctx.pool), lambda s: s.id, signal_message)
        model = OnChange(hub, "model", lambda: model_message(gate.stats()), model_key)
        feeds += [("signal", SIGNAL_PERIOD_S, signals.poll), ("model", MODEL_PERIOD_S, model.poll)]
    try:
        async with asyncio.TaskGroup() as group:
            for name, period_s, poll in feeds:
                group.create_task(poll_every(name, period_s, poll, stop), name=f"publish-{name}")
    finally:
        for step in undo:
            step()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(drift.close)
