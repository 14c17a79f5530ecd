"""What feeds the hub: the book sink, the change detection of live records, the id cursors, drift, the poll
loop's failure handling. Messages are read through a real starlette WebSocket over in-memory ASGI queues."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import structlog
from psycopg_pool import AsyncConnectionPool
from starlette.types import Message
from starlette.websockets import WebSocket

from infra.db.connection import Database
from infra.db.repositories.fills import FillRepository
from infra.db.repositories.orchestration import DriftReportRecord, DriftReportRepository, DriftSeverity
from infra.db.repositories.signals import SignalRepository
from schemas.enums import OrderStatus, OrderType, Side, SignalAction
from schemas.snapshot import BOOK_DEPTH
from schemas.trading import Fill, Order, Signal
from testkit.rows import snapshot_rows
from trading_daemon.api.hub import Hub
from trading_daemon.api.messages import (
    book_message,
    diff_live,
    fill_message,
    model_key,
    model_message,
    order_fingerprint,
    order_message,
    signal_message,
)
from trading_daemon.api.principal import Principal, Role
from trading_daemon.api.publishers import (
    BookPublisher,
    DriftReports,
    LiveRecords,
    NewRows,
    fill_cursor,
    poll_every,
    signal_cursor,
)

T0 = 1_700_000_000_000


class MemoryClient:
    """One hub client over in-memory ASGI messages: `received` holds what the hub sent, decoded."""

    def __init__(self, hub: Hub) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.received: list[dict[str, Any]] = []
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.socket = WebSocket(
            {"type": "websocket", "path": "/ws", "headers": []}, self.inbox.get, self._send
        )
        self.hub = hub
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            self.received.append(json.loads(message["text"]))

    async def __aenter__(self) -> MemoryClient:
        await self.socket.accept()
        self._task = asyncio.create_task(self.hub.serve(self.socket, Principal(1, "viewer", Role.VIEWER)))
        await self.settled()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)

    async def subscribe(self, *topics: str) -> None:
        self.inbox.put_nowait(
            {"type": "websocket.receive", "text": json.dumps({"op": "subscribe", "topics": topics})}
        )
        await self.settled()

    async def settled(self) -> None:
        """Until the hub's reader and writer have nothing left to do."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def take(self, topic: str) -> list[dict[str, Any]]:
        """The data of the `topic` messages received since the last take."""
        await self.settled()
        taken = [m for m in self.received if m["topic"] == topic]
        self.received = [m for m in self.received if m["topic"] != topic]
        return [m["data"] for m in taken]


@pytest.fixture
async def client() -> AsyncIterator[MemoryClient]:
    async with MemoryClient(Hub(4096)) as c:
        await c.subscribe("book", "order", "position", "fill", "signal", "drift")
        yield c


# ---- the book ---------------------------------------------------------------------------------------------


async def test_book_publisher_sends_the_touch_of_every_row(client: MemoryClient) -> None:
    rows = list(snapshot_rows(40, symbol="ETHUSDT"))
    no_bids = msgspec.structs.replace(
        rows[-1], n_bid_levels=0, bid_prices=[0.0] * BOOK_DEPTH, bid_sizes=[0.0] * BOOK_DEPTH
    )
    sink = BookPublisher(client.hub)
    sink.submit_rows([*rows, no_bids])
    sink.submit_trades([])
    sink.submit_candles([])
    books = await client.take("book")
    assert len(books) == 41 and client.hub.stats()["by_topic"]["book"] == 41
    first, row = books[0], rows[0]
    assert first | {"mid": None, "spread_bps": None} == {
        "symbol": "ETHUSDT", "ts": row.ts, "best_bid": row.bid_prices[0], "best_ask": row.ask_prices[0],
        "bid_size": row.bid_sizes[0], "ask_size": row.ask_sizes[0], "mid": None, "spread_bps": None,
        "book_reset": row.book_reset,
    }  # fmt: skip
    mid = (row.bid_prices[0] + row.ask_prices[0]) / 2
    assert first["mid"] == pytest.approx(mid)
    assert first["spread_bps"] == pytest.approx((row.ask_prices[0] - row.bid_prices[0]) / mid * 1e4)
    assert [b["ts"] for b in books[:40]] == [r.ts for r in rows]
    assert books[-1]["best_bid"] is None and books[-1]["bid_size"] is None
    assert books[-1]["mid"] is None and books[-1]["spread_bps"] is None
    assert books[-1]["best_ask"] == no_bids.ask_prices[0]


def test_book_message_of_an_empty_book() -> None:
    row = msgspec.structs.replace(
        next(snapshot_rows(1)), n_bid_levels=0, n_ask_levels=0, bid_prices=[0.0] * BOOK_DEPTH,
        bid_sizes=[0.0] * BOOK_DEPTH, ask_prices=[0.0] * BOOK_DEPTH, ask_sizes=[0.0] * BOOK_DEPTH,
    )  # fmt: skip
    message = book_message(row)
    assert [message[k] for k in ("best_bid", "best_ask", "bid_size", "ask_size", "mid", "spread_bps")] == [
        None
    ] * 6


# ---- live orders and positions --------------------------------------------------------------------------


def order(coid: str, status: OrderStatus = OrderStatus.PLACED, filled: str = "0", version: int = 2) -> Order:
    return Order(
        client_order_id=coid, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("0.010"),
        price=Decimal("64000.1"), status=status, filled_quantity=Decimal(filled), version=version, id=int(coid[1:]),
        created_ms=T0, updated_ms=T0 + version, signal_data={"source": "momentum", "context": {"big": "x" * 50}},
    )  # fmt: skip


def test_diff_live_finds_new_changed_and_gone_records() -> None:
    a, b, c = order("o1"), order("o2"), order("o3")
    seen, changed, gone = diff_live({}, {"o1": a, "o2": b}, order_fingerprint)
    assert changed == [("o1", a), ("o2", b)] and gone == {}
    same = order("o1")  # an equal state in a new object: no change
    b2 = order("o2", OrderStatus.PARTIALLY_FILLED, "0.004", version=3)
    seen, changed, gone = diff_live(seen, {"o1": same, "o2": b2, "o3": c}, order_fingerprint)
    assert changed == [("o2", b2), ("o3", c)] and gone == {}
    seen, changed, gone = diff_live(seen, {"o3": c}, order_fingerprint)
    assert changed == [] and gone == {"o1": same, "o2": b2}  # the last state known of each
    assert set(seen) == {"o3"}
    # a change the version alone shows (an amend of the price)
    _, changed, _ = diff_live(seen, {"o3": order("o3", version=5)}, order_fingerprint)
    assert [k for k, _ in changed] == ["o3"]


async def test_live_records_publish_changes_then_the_final_state(client: MemoryClient) -> None:
    live: dict[str, Order] = {"o1": order("o1"), "o2": order("o2")}
    stored: dict[str, Order] = {}
    reads: list[str] = []
    database_up = True

    async def read_final(coid: str) -> Order | None:
        reads.append(coid)
        if not database_up:
            raise ConnectionError("database unreachable")
        return stored.get(coid)

    feed = LiveRecords(client.hub, "order", live=lambda: dict(live), fingerprint=order_fingerprint,
                       message=order_message, read_final=read_final)  # fmt: skip
    await feed.poll()
    first = await client.take("order")
    assert [(o["client_order_id"], o["status"], o["live"]) for o in first] == [
        ("o1", "Placed", True),
        ("o2", "Placed", True),
    ]
    assert (
        first[0]["price"] == "64000.1"
        and first[0]["quantity"] == "0.010"
        and first[0]["strategy"] == "momentum"
    )
    assert "signal_data" not in first[0]
    await feed.poll()
    assert await client.take("order") == []  # nothing changed

    live["o1"] = order("o1", OrderStatus.PARTIALLY_FILLED, "0.004", version=3)
    await feed.poll()
    assert [(o["status"], o["filled_quantity"]) for o in await client.take("order")] == [
        ("Partially_Filled", "0.004")
    ]

    # o1 ends while the database is down: its final state is read once it is back, and published once.
    del live["o1"]
    stored["o1"] = order("o1", OrderStatus.FILLED, "0.010", version=4)
    database_up = False
    with pytest.raises(ConnectionError):
        await feed.poll()
    assert await client.take("order") == []
    database_up = True
    await feed.poll()
    assert [(o["status"], o["live"], o["filled_quantity"]) for o in await client.take("order")] == [
        ("Filled", False, "0.010")
    ]
    await feed.poll()
    assert await client.take("order") == [] and reads == ["o1", "o1"]

    # o2 ends through the ledger's hook: published at once, never read from the database.
    del live["o2"]
    feed.ended("o2", order("o2", OrderStatus.CANCELLED, version=3))
    assert [o["status"] for o in await client.take("order")] == ["Cancelled"]
    await feed.poll()
    assert await client.take("order") == [] and reads == ["o1", "o1"]

    # An order that lived shorter than one look is seen only by the hook; a gone one the database does not
    # know goes out with the last state seen.
    feed.ended("o9", order("o9", OrderStatus.FILLED, "0.010", version=3))
    live["o5"] = order("o5")
    await feed.poll()
    del live["o5"]
    await feed.poll()
    assert [(o["client_order_id"], o["status"]) for o in await client.take("order")] == [
        ("o9", "Filled"), ("o5", "Placed"),
    ]  # fmt: skip
    assert reads[-1] == "o5"  # read, found nothing newer than what was published: no repeat


# ---- rows by id: fills and signals ------------------------------------------------------------------------


def fill(n: int, ts: int) -> Fill:
    return Fill(exec_id=f"e{n}", symbol="BTCUSDT", side=Side.SELL, price=Decimal("64000.5"),
                quantity=Decimal("0.001"), fee=Decimal("0.0352"), ts=ts, closed_pnl=Decimal("1E+1"))  # fmt: skip


async def test_new_fills_are_published_by_id_from_the_start_on(
    client: MemoryClient, pool: AsyncConnectionPool
) -> None:
    repo = FillRepository(pool)
    await repo.add(fill(1, T0))
    feed = NewRows(client.hub, "fill", fill_cursor(pool), lambda f: f.id, fill_message)
    await feed.poll()  # where it starts: history is the HTTP routes'
    assert await client.take("fill") == [] and feed.last_id == 1
    # stored later but executed earlier (a reconciliation's back-fill): still new
    await repo.add(fill(2, T0 + 5000))
    await repo.add(fill(3, T0 - 60_000))
    await feed.poll()
    fills = await client.take("fill")
    assert [(f["exec_id"], f["ts"]) for f in fills] == [("e2", T0 + 5000), ("e3", T0 - 60_000)]
    assert fills[0] | {"id": None, "order_id": None} == {
        "id": None, "exec_id": "e2", "order_id": None, "client_order_id": None, "symbol": "BTCUSDT",
        "side": "Sell", "exec_type": "Trade", "price": "64000.5", "quantity": "0.001", "fee": "0.0352",
        "fee_currency": "USDT", "is_maker": False, "closed_pnl": "10", "ts": T0 + 5000,
    }  # fmt: skip
    await feed.poll()
    assert await client.take("fill") == []


async def test_the_id_cursor_walks_signals_in_batches(pool: AsyncConnectionPool) -> None:
    cursor = signal_cursor(pool)
    assert await cursor.last_id() == 0
    await SignalRepository(pool).add_many(
        [Signal(symbol="BTCUSDT", ts=T0 + i, source="momentum", action=SignalAction.BUY, strength=0.5,
                price=Decimal("64000.1"), context={"i": i}) for i in range(5)]
    )  # fmt: skip
    first = await cursor.after_id(0, limit=3)
    rest = await cursor.after_id(first[-1].id or 0, limit=3)
    assert [s.context for s in first + rest] == [{"i": i} for i in range(5)]
    assert await cursor.last_id() == rest[-1].id
    message = signal_message(rest[-1])
    assert message["price"] == "64000.1" and message["action"] == "Buy" and message["ts"] == T0 + 4


# ---- drift, the model -------------------------------------------------------------------------------------


def report(symbol: str, severity: DriftSeverity) -> DriftReportRecord:
    return DriftReportRecord(
        partition_key=f"2026-01-01|{symbol}", symbol=symbol, window_start_ms=T0, window_end_ms=T0 + 86_400_000,
        production_version=None, severity=severity, feature_drift_score=0.25, prediction_psi=None,
        accuracy_drop=None, drivers=["feature drift 0.2500 >= 0.2"], drifted_features=[f"f{i}" for i in range(27)],
        recommendation="retrain", html_path="r.html", json_path="r.json", n_reference=1000, n_current=900,
    )  # fmt: skip


async def test_new_drift_reports_are_published(client: MemoryClient, db: Database) -> None:
    with db.session() as conn:
        DriftReportRepository(conn).add(report("BTCUSDT", "low"))
    feed = DriftReports(client.hub, db)
    try:
        await feed.poll()
        assert await client.take("drift") == []
        with db.session() as conn:
            stored = DriftReportRepository(conn).add(report("ETHUSDT", "high"))
        await feed.poll()
        [drift] = await client.take("drift")
    finally:
        feed.close()
    assert (drift["id"], drift["symbol"], drift["severity"]) == (stored.id, "ETHUSDT", "high")
    assert (
        drift["drift_share"] == 0.25 and drift["drifted_features"] == 27 and len(drift["top_drifted"]) == 10
    )


def test_model_message_says_why_rows_go_without_a_model() -> None:
    served = {"version": "v1", "model_type": "mlp", "age_hours": 1.5}
    none = model_message({"production": None, "shadow": None, "stale": False})
    fresh = model_message({"production": served, "shadow": None, "stale": False, "swaps": {"notify": 1}})
    older = model_message({"production": served | {"age_hours": 2.0}, "shadow": None, "stale": False})
    stale = model_message({"production": served, "shadow": None, "stale": True})
    assert (none["fallback"], fresh["fallback"], stale["fallback"]) == ("no_model", None, "stale_model")
    assert fresh["production"] == served and fresh["swaps"] == {"notify": 1}
    assert model_key(fresh) == model_key(older)  # the age alone is no change
    assert len({model_key(m) for m in (none, fresh, stale)}) == 3
    shadowed = model_message({"production": served, "shadow": {"version": "v2"}, "stale": False})
    assert model_key(shadowed) != model_key(fresh)


# ---- the poll loop ----------------------------------------------------------------------------------------


async def test_a_failing_poll_is_logged_once_per_outage_and_retried() -> None:
    outcomes = iter([None, "down", "down", "down", None, None, "down", None])
    stop = asyncio.Event()
    calls = 0

    async def poll() -> None:
        nonlocal calls
        calls += 1
        outcome = next(outcomes, None)
        if calls == 8:
            stop.set()
        if outcome == "down":
            raise ConnectionError("database unreachable")

    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(poll_every("fill", 0.001, poll, stop), 5)
    events = [(e["event"], e.get("feed")) for e in logs if e["log_level"] in ("warning", "info")]
    assert calls == 8
    assert events == [
        ("live feed poll failed; retried every period", "fill"),
        ("live feed poll works again", "fill"),
        ("live feed poll failed; retried every period", "fill"),
        ("live feed poll works again", "fill"),
    ]
    assert "ConnectionError: database unreachable" in logs[0]["error"]


async def test_stop_ends_the_poll_loop_between_looks() -> None:
    stop = asyncio.Event()
    looks = 0

    async def poll() -> None:
        nonlocal looks
        looks += 1

    task = asyncio.create_task(poll_every("metrics", 60.0, poll, stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert looks == 1
