"""Fills (executions). Idempotent on the venue's `exec_id`, so replays and reconciliation never double-count."""

from __future__ import annotations

from typing import Any

import msgspec

from infra.db.repositories._base import AsyncConn, AsyncRepository, ms, ms_param
from schemas.times import ms_to_datetime
from schemas.trading import Fill

_COLUMNS = f"""f.id, f.exec_id, f.order_id, f.client_order_id, f.exchange_order_id, f.symbol,
    f.side::text AS side, f.exec_type::text AS exec_type, f.price, f.quantity, f.fee, f.fee_currency,
    f.is_maker, f.closed_pnl, {ms("f.executed_at", "ts")}, f.trace_id"""


def _to_fill(row: dict[str, Any]) -> Fill:
    # Column aliases match the record's field names; msgspec validates and converts enums and Decimals.
    return msgspec.convert(row, Fill)


class FillRepository(AsyncRepository):
    async def add(self, fill: Fill, *, conn: AsyncConn | None = None) -> bool:
        """Store the fill; False if this exec_id was already stored (nothing changes then).

        The order is linked by `order_id`, or else by `client_order_id` when we know that order.
        """
        params = {
            "exec_id": fill.exec_id,
            "order_id": fill.order_id,
            "coid": fill.client_order_id,
            "exchange_order_id": fill.exchange_order_id,
            "symbol": fill.symbol,
            "side": str(fill.side),
            "exec_type": str(fill.exec_type),
            "price": fill.price,
            "quantity": fill.quantity,
            "fee": fill.fee,
            "fee_currency": fill.fee_currency,
            "is_maker": fill.is_maker,
            "closed_pnl": fill.closed_pnl,
            "executed_at": ms_to_datetime(fill.ts),
            "trace_id": fill.trace_id,
        }
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                """INSERT INTO fills (exec_id, order_id, client_order_id, exchange_order_id, symbol, side, exec_type,
                       price, quantity, fee, fee_currency, is_maker, closed_pnl, executed_at, trace_id)
                   VALUES (%(exec_id)s,
                       COALESCE(%(order_id)s, (SELECT id FROM orders WHERE client_order_id = %(coid)s)),
                       %(coid)s, %(exchange_order_id)s, %(symbol)s, %(side)s, %(exec_type)s, %(price)s,
                       %(quantity)s, %(fee)s, %(fee_currency)s, %(is_maker)s, %(closed_pnl)s, %(executed_at)s,
                       %(trace_id)s)
                   ON CONFLICT (exec_id) DO NOTHING""",
                params,
            )
            return bool(cur.rowcount == 1)

    async def latest_ts(self, *, conn: AsyncConn | None = None) -> int | None:
        """The execution time of the newest stored fill or funding payment (where reconciliation resumes)."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(f"SELECT {ms('max(executed_at)', 'ts')} FROM fills")
            row = await cur.fetchone()
        return None if row is None else row["ts"]

    async def last_id(self, *, conn: AsyncConn | None = None) -> int:
        return await self._max_id("fills", conn)

    async def after_id(self, last_id: int, *, limit: int = 500, conn: AsyncConn | None = None) -> list[Fill]:
        """Fills stored after the one with id `last_id`, in the order they were stored (not executed:
        reconciliation stores missed fills late, with older execution times)."""
        rows = await self._rows_after_id(_COLUMNS, "fills", "f", last_id, limit, conn)
        return [_to_fill(r) for r in rows]

    async def known_exec_ids(self, exec_ids: list[str], *, conn: AsyncConn | None = None) -> set[str]:
        """Which of `exec_ids` are stored already."""
        if not exec_ids:
            return set()
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute("SELECT exec_id FROM fills WHERE exec_id = ANY(%s)", (exec_ids,))
            return {r["exec_id"] for r in await cur.fetchall()}

    async def by_order(self, client_order_id: str, *, conn: AsyncConn | None = None) -> list[Fill]:
        return await self._query("f.client_order_id = %(coid)s", {"coid": client_order_id}, conn)

    async def find(
        self,
        *,
        symbol: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
        conn: AsyncConn | None = None,
    ) -> list[Fill]:
        """Fills in [since_ms, until_ms), oldest first (what reconciliation replays)."""
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {}
        if symbol is not None:
            where.append("f.symbol = %(symbol)s")
            params["symbol"] = symbol
        if since_ms is not None:
            where.append(f"f.executed_at >= {ms_param('since')}")
            params["since"] = since_ms
        if until_ms is not None:
            where.append(f"f.executed_at < {ms_param('until')}")
            params["until"] = until_ms
        return await self._query(" AND ".join(where), params, conn, limit)

    async def _query(
        self, where: str, params: dict[str, Any], conn: AsyncConn | None, limit: int = 10_000
    ) -> list[Fill]:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM fills f WHERE {where} ORDER BY f.executed_at, f.id LIMIT %(limit)s",
                {**params, "limit": limit},
            )
            return [_to_fill(r) for r in await cur.fetchall()]
