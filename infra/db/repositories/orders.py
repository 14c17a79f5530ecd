"""Orders and their state transitions, with optimistic locking on `version`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from infra.db.errors import NotFound, VersionConflict, storage_errors
from infra.db.repositories._base import AsyncConn, AsyncRepository, jsonb, ms, ms_param
from schemas.enums import OrderStatus, Side
from schemas.trading import Order, OrderEvent

LIVE_STATUSES = (OrderStatus.PENDING, OrderStatus.PLACED, OrderStatus.PARTIALLY_FILLED)
# Columns an order list may be sorted by (the API's `sort`), each with a unique tie-breaker after it.
SORTABLE = {
    "created": "o.created_at",
    "updated": "o.updated_at",
    "symbol": "o.symbol",
    "side": "o.side::text",
    "quantity": "o.quantity",
    "price": "o.price",
    "status": "o.status::text",
    "filled": "o.filled_quantity",
}


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    total: int  # orders matching the filters, over every page
    by_status: dict[str, int]  # of the matching orders


_COLUMNS = f"""o.id, o.client_order_id, o.exchange_order_id, o.symbol, o.side::text AS side,
    o.order_type::text AS order_type, o.time_in_force::text AS time_in_force, o.quantity, o.price,
    o.filled_quantity, o.avg_fill_price, o.reduce_only, o.status::text AS status, o.stop_loss, o.take_profit,
    o.position_id, o.reason, o.error_message, o.signal_data, o.trace_id, o.intent_id, o.attempt,
    {ms("o.sent_at")}, o.version, {ms("o.created_at")}, {ms("o.updated_at")}"""


def _to_order(row: dict[str, Any]) -> Order:
    # Column aliases match the record's field names; msgspec validates and converts enums and Decimals.
    return msgspec.convert(row, Order)


class OrderRepository(AsyncRepository):
    """Create, read and transition orders; every status change also writes an `order_events` row."""

    async def create(self, order: Order, *, conn: AsyncConn | None = None) -> Order:
        """Insert a new order (status as given, normally Pending) and its first event."""
        params = {
            "client_order_id": order.client_order_id,
            "exchange_order_id": order.exchange_order_id,
            "symbol": order.symbol,
            "side": str(order.side),
            "order_type": str(order.order_type),
            "time_in_force": str(order.time_in_force),
            "quantity": order.quantity,
            "price": order.price,
            "filled_quantity": order.filled_quantity,
            "avg_fill_price": order.avg_fill_price,
            "reduce_only": order.reduce_only,
            "status": str(order.status),
            "stop_loss": order.stop_loss,
            "take_profit": order.take_profit,
            "position_id": order.position_id,
            "reason": order.reason,
            "error_message": order.error_message,
            "signal_data": jsonb(order.signal_data),
            "trace_id": order.trace_id,
            "intent_id": order.intent_id,
            "attempt": order.attempt,
        }
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            with storage_errors(
                duplicate=f"an order with client_order_id {order.client_order_id!r} already exists"
                + (
                    ""
                    if order.intent_id is None
                    else f" (intent {order.intent_id!r}, attempt {order.attempt})"
                )
            ):
                await cur.execute(
                    f"""WITH o AS (
                          INSERT INTO orders ({", ".join(params)})
                          VALUES ({", ".join(f"%({k})s" for k in params)})
                          RETURNING *)
                        SELECT {_COLUMNS} FROM o""",
                    params,
                )
            created = _to_order(await cur.fetchone())
            await cur.execute(
                """INSERT INTO order_events (order_id, from_status, to_status, reason, trace_id)
                   VALUES (%s, NULL, %s, %s, %s)""",
                (created.id, str(created.status), order.reason or "created", order.trace_id),
            )
        return created

    async def get_by_client_order_id(
        self, client_order_id: str, *, conn: AsyncConn | None = None
    ) -> Order | None:
        return await self._one("o.client_order_id = %s", client_order_id, conn)

    async def get_by_intent(self, intent_id: str, *, conn: AsyncConn | None = None) -> list[Order]:
        """Every attempt at one intent, first attempt first."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM orders o WHERE o.intent_id = %s ORDER BY o.attempt", (intent_id,)
            )
            return [_to_order(r) for r in await cur.fetchall()]

    async def get_by_exchange_order_id(
        self, exchange_order_id: str, *, conn: AsyncConn | None = None
    ) -> Order | None:
        return await self._one("o.exchange_order_id = %s", exchange_order_id, conn)

    async def _one(self, where: str, value: str, conn: AsyncConn | None) -> Order | None:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(f"SELECT {_COLUMNS} FROM orders o WHERE {where}", (value,))
            row = await cur.fetchone()
        return None if row is None else _to_order(row)

    async def mark_sent(self, client_order_id: str, sent_ms: int, *, conn: AsyncConn | None = None) -> None:
        """Record that the order is about to go on the wire (written before the request leaves).

        Bookkeeping, not a state change: no version bump, no event. After a restart it bounds when the
        last request can have been signed, which the ambiguous-outcome rule waits out.
        """
        async with self._tx(conn) as c:
            cur = await c.execute(
                f"UPDATE orders SET sent_at = {ms_param('sent')} WHERE client_order_id = %(coid)s",
                {"sent": sent_ms, "coid": client_order_id},
            )
            if cur.rowcount != 1:
                raise NotFound(f"no order with client_order_id {client_order_id!r}")

    async def link_position(
        self, client_order_id: str, position_id: int, *, conn: AsyncConn | None = None
    ) -> None:
        """Attach the order to the position it opens, adds to or closes (no version bump)."""
        async with self._tx(conn) as c:
            await c.execute(
                "UPDATE orders SET position_id = %s WHERE client_order_id = %s",
                (position_id, client_order_id),
            )

    async def update_status(
        self,
        client_order_id: str,
        new_status: OrderStatus,
        *,
        expected_version: int,
        reason: str | None = None,
        trace_id: str | None = None,
        exchange_order_id: str | None = None,
        filled_quantity: Decimal | None = None,
        avg_fill_price: Decimal | None = None,
        error_message: str | None = None,
        details: dict[str, Any] | None = None,
        conn: AsyncConn | None = None,
    ) -> Order:
        """Move the order to `new_status` if it is still at `expected_version`.

        Raises VersionConflict when another writer moved it first (re-read and retry), NotFound when
        there is no such order. Fields left None keep their stored value.
        """
        params = {
            "coid": client_order_id,
            "version": expected_version,
            "status": str(new_status),
            "exchange_order_id": exchange_order_id,
            "filled_quantity": filled_quantity,
            "avg_fill_price": avg_fill_price,
            "error_message": error_message,
        }
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""WITH prev AS (
                      SELECT id, status FROM orders
                      WHERE client_order_id = %(coid)s AND version = %(version)s
                      FOR UPDATE),
                    o AS (
                      UPDATE orders SET status = %(status)s, version = orders.version + 1, updated_at = now(),
                          exchange_order_id = COALESCE(%(exchange_order_id)s, orders.exchange_order_id),
                          filled_quantity = COALESCE(%(filled_quantity)s, orders.filled_quantity),
                          avg_fill_price = COALESCE(%(avg_fill_price)s, orders.avg_fill_price),
                          error_message = COALESCE(%(error_message)s, orders.error_message)
                      FROM prev WHERE orders.id = prev.id
                      RETURNING orders.*, prev.status::text AS from_status)
                    SELECT {_COLUMNS}, o.from_status FROM o""",
                params,
            )
            row = await cur.fetchone()
            if row is None:
                await cur.execute("SELECT version FROM orders WHERE client_order_id = %s", (client_order_id,))
                found = await cur.fetchone()
                if found is None:
                    raise NotFound(f"no order with client_order_id {client_order_id!r}")
                raise VersionConflict("order", client_order_id, expected_version, found["version"])
            await cur.execute(
                """INSERT INTO order_events (order_id, from_status, to_status, reason, trace_id, details)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                (row["id"], row["from_status"], str(new_status), reason, trace_id, jsonb(details)),
            )
        return _to_order(row)

    async def amend(
        self,
        client_order_id: str,
        *,
        expected_version: int,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        reason: str | None = None,
        trace_id: str | None = None,
        conn: AsyncConn | None = None,
    ) -> Order:
        """Change the quantity and/or price of a working order (its status stays; the event records it)."""
        params = {"coid": client_order_id, "version": expected_version, "qty": quantity, "price": price}
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""WITH o AS (
                      UPDATE orders SET version = version + 1, updated_at = now(),
                          quantity = COALESCE(%(qty)s, quantity), price = COALESCE(%(price)s, price)
                      WHERE client_order_id = %(coid)s AND version = %(version)s
                      RETURNING *)
                    SELECT {_COLUMNS} FROM o""",
                params,
            )
            row = await cur.fetchone()
            if row is None:
                await cur.execute("SELECT version FROM orders WHERE client_order_id = %s", (client_order_id,))
                found = await cur.fetchone()
                if found is None:
                    raise NotFound(f"no order with client_order_id {client_order_id!r}")
                raise VersionConflict("order", client_order_id, expected_version, found["version"])
            details = {"amend": {"quantity": _text(quantity), "price": _text(price)}}
            await cur.execute(
                """INSERT INTO order_events (order_id, from_status, to_status, reason, trace_id, details)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                (row["id"], row["status"], row["status"], reason or "amended", trace_id, jsonb(details)),
            )
        return _to_order(row)

    async def find(
        self,
        *,
        symbol: str | None = None,
        statuses: Sequence[OrderStatus] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        trace_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        conn: AsyncConn | None = None,
    ) -> list[Order]:
        """Orders matching every given filter, newest first."""
        if limit < 1 or limit > 10_000:
            raise ValueError(f"limit must be in 1..10000, got {limit}")
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if symbol is not None:
            where.append("o.symbol = %(symbol)s")
            params["symbol"] = symbol
        if statuses:
            where.append("o.status::text = ANY(%(statuses)s)")
            params["statuses"] = [str(s) for s in statuses]
        if since_ms is not None:
            where.append(f"o.created_at >= {ms_param('since')}")
            params["since"] = since_ms
        if until_ms is not None:
            where.append(f"o.created_at < {ms_param('until')}")
            params["until"] = until_ms
        if trace_id is not None:
            where.append("o.trace_id = %(trace_id)s")
            params["trace_id"] = trace_id
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""SELECT {_COLUMNS} FROM orders o WHERE {" AND ".join(where)}
                    ORDER BY o.created_at DESC, o.id DESC LIMIT %(limit)s OFFSET %(offset)s""",
                params,
            )
            return [_to_order(r) for r in await cur.fetchall()]

    async def page(
        self,
        *,
        symbol: str | None = None,
        side: Side | None = None,
        statuses: Sequence[OrderStatus] | None = None,
        source: str | None = None,
        sort: str = "created",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
        conn: AsyncConn | None = None,
    ) -> OrderPage:
        """One page of the orders matching every filter (`source`: the strategy or rule whose intent it
        carries out, `signal_data.source`), sorted by a `SORTABLE` column, with the total and the counts per
        status of all matching orders."""
        if sort not in SORTABLE:
            raise ValueError(f"orders can be sorted by {', '.join(SORTABLE)}, not {sort!r}")
        if not 1 <= limit <= 1000 or offset < 0:
            raise ValueError(f"limit must be in 1..1000 and offset >= 0, got {limit} and {offset}")
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        filters_given = (("symbol", "o.symbol", symbol), ("side", "o.side::text", side),
                         ("source", "o.signal_data->>'source'", source))  # fmt: skip
        for name, column, value in filters_given:
            if value is not None:
                where.append(f"{column} = %({name})s")
                params[name] = str(value)
        if statuses:
            where.append("o.status::text = ANY(%(statuses)s)")
            params["statuses"] = [str(s) for s in statuses]
        direction = "DESC" if descending else "ASC"
        nulls = "NULLS LAST" if descending else "NULLS FIRST"
        filters = " AND ".join(where)
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""SELECT {_COLUMNS} FROM orders o WHERE {filters}
                    ORDER BY {SORTABLE[sort]} {direction} {nulls}, o.id {direction}
                    LIMIT %(limit)s OFFSET %(offset)s""",
                params,
            )
            orders = [_to_order(r) for r in await cur.fetchall()]
            await cur.execute(
                f"SELECT o.status::text AS status, count(*) AS n FROM orders o WHERE {filters} GROUP BY 1",
                params,
            )
            by_status = {r["status"]: int(r["n"]) for r in await cur.fetchall()}
        return OrderPage(orders, sum(by_status.values()), by_status)

    async def list_live(self, *, symbol: str | None = None, conn: AsyncConn | None = None) -> list[Order]:
        """Orders that may still be working on the exchange (what recovery reconciles)."""
        return await self.find(symbol=symbol, statuses=LIVE_STATUSES, limit=10_000, conn=conn)

    async def events(self, client_order_id: str, *, conn: AsyncConn | None = None) -> list[OrderEvent]:
        """Every transition of the order, oldest first."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""SELECT e.id, e.order_id, e.from_status::text AS from_status, e.to_status::text AS to_status,
                           e.reason, e.trace_id, e.details, {ms("e.created_at", "ts")}
                    FROM order_events e JOIN orders o ON o.id = e.order_id
                    WHERE o.client_order_id = %s ORDER BY e.id""",
                (client_order_id,),
            )
            rows = await cur.fetchall()
        return [msgspec.convert(r, OrderEvent) for r in rows]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
