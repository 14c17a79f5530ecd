"""Positions (one live position per symbol in one-way mode) with optimistic locking and history."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from infra.db.errors import NotFound, VersionConflict, storage_errors
from infra.db.repositories._base import AsyncConn, AsyncRepository, jsonb, ms
from schemas.enums import PositionStatus
from schemas.times import ms_to_datetime
from schemas.trading import Position

_COLUMNS = f"""p.id, p.symbol, p.side::text AS side, p.status::text AS status, p.quantity, p.entry_price,
    p.exit_price, p.leverage, p.unrealized_pnl, p.realized_pnl, p.fees_paid, p.stop_loss, p.take_profit,
    p.entry_reason, p.exit_reason, p.signal_data, p.trace_id, {ms("p.opened_at")}, {ms("p.closed_at")},
    p.version, {ms("p.created_at")}, {ms("p.updated_at")}"""

# Fields `update` may change besides status (timestamps are passed in ms and converted).
_UPDATABLE = {
    "quantity",
    "entry_price",
    "exit_price",
    "leverage",
    "unrealized_pnl",
    "realized_pnl",
    "fees_paid",
    "stop_loss",
    "take_profit",
    "exit_reason",
    "opened_ms",
    "closed_ms",
}


def _to_position(row: dict[str, Any]) -> Position:
    # Column aliases match the record's field names; msgspec validates and converts enums and Decimals.
    return msgspec.convert(row, Position)


def _db_value(name: str, value: Any) -> tuple[str, Any]:
    if name in ("opened_ms", "closed_ms"):
        return name.replace("_ms", "_at"), None if value is None else ms_to_datetime(value)
    return name, value


class PositionRepository(AsyncRepository):
    """Create, read and update positions; status changes also write `position_events`."""

    async def create(self, position: Position, *, conn: AsyncConn | None = None) -> Position:
        params = {
            "symbol": position.symbol,
            "side": str(position.side),
            "status": str(position.status),
            "quantity": position.quantity,
            "entry_price": position.entry_price,
            "leverage": position.leverage,
            "stop_loss": position.stop_loss,
            "take_profit": position.take_profit,
            "entry_reason": position.entry_reason,
            "signal_data": jsonb(position.signal_data),
            "trace_id": position.trace_id,
            "opened_at": None if position.opened_ms is None else ms_to_datetime(position.opened_ms),
        }
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            with storage_errors(
                duplicate=f"{position.symbol} already has a live position (one-way mode allows one per symbol)"
            ):
                await cur.execute(
                    f"""WITH p AS (INSERT INTO positions ({", ".join(params)})
                                   VALUES ({", ".join(f"%({k})s" for k in params)}) RETURNING *)
                        SELECT {_COLUMNS} FROM p""",
                    params,
                )
            created = _to_position(await cur.fetchone())
            await cur.execute(
                """INSERT INTO position_events (position_id, from_status, to_status, reason, trace_id)
                   VALUES (%s, NULL, %s, %s, %s)""",
                (created.id, str(created.status), position.entry_reason or "created", position.trace_id),
            )
        return created

    async def get(self, position_id: int, *, conn: AsyncConn | None = None) -> Position | None:
        return await self._one("p.id = %s", (position_id,), conn)

    async def get_live(self, symbol: str, *, conn: AsyncConn | None = None) -> Position | None:
        """The symbol's position that is not Closed, if any."""
        return await self._one("p.symbol = %s AND p.status <> 'Closed'", (symbol,), conn)

    async def list_live(self, *, conn: AsyncConn | None = None) -> list[Position]:
        """Every position that is not Closed (at most one per symbol)."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(f"SELECT {_COLUMNS} FROM positions p WHERE p.status <> 'Closed' ORDER BY p.id")
            return [_to_position(r) for r in await cur.fetchall()]

    async def _one(self, where: str, params: tuple[Any, ...], conn: AsyncConn | None) -> Position | None:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(f"SELECT {_COLUMNS} FROM positions p WHERE {where}", params)
            row = await cur.fetchone()
        return None if row is None else _to_position(row)

    async def update(
        self,
        position_id: int,
        *,
        expected_version: int,
        status: PositionStatus | None = None,
        reason: str | None = None,
        trace_id: str | None = None,
        details: dict[str, Any] | None = None,
        conn: AsyncConn | None = None,
        **changes: Decimal | int | str | None,
    ) -> Position:
        """Apply `changes` (and `status`) if the position is still at `expected_version`."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(
                f"cannot update position field(s) {sorted(unknown)}; allowed: {sorted(_UPDATABLE)}"
            )
        sets = ["version = positions.version + 1", "updated_at = now()"]
        params: dict[str, Any] = {"id": position_id, "version": expected_version}
        if status is not None:
            sets.append("status = %(status)s")
            params["status"] = str(status)
        for name, value in changes.items():
            column, db_value = _db_value(name, value)
            sets.append(f"{column} = %({column})s")
            params[column] = db_value
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""WITH prev AS (SELECT id, status FROM positions WHERE id = %(id)s AND version = %(version)s
                                  FOR UPDATE),
                         p AS (UPDATE positions SET {", ".join(sets)} FROM prev WHERE positions.id = prev.id
                               RETURNING positions.*, prev.status::text AS from_status)
                    SELECT {_COLUMNS}, p.from_status FROM p""",
                params,
            )
            row = await cur.fetchone()
            if row is None:
                await cur.execute("SELECT version FROM positions WHERE id = %s", (position_id,))
                found = await cur.fetchone()
                if found is None:
                    raise NotFound(f"no position with id {position_id}")
                raise VersionConflict("position", position_id, expected_version, found["version"])
            if status is not None and row["from_status"] != str(status):
                await cur.execute(
                    """INSERT INTO position_events (position_id, from_status, to_status, reason, trace_id, details)
                       VALUES (%s, %s, %s, %s, %s, %s)""",
                    (position_id, row["from_status"], str(status), reason, trace_id, jsonb(details)),
                )
        return _to_position(row)

    async def find(
        self,
        *,
        symbol: str | None = None,
        status: PositionStatus | None = None,
        limit: int = 100,
        conn: AsyncConn | None = None,
    ) -> list[Position]:
        """Positions matching the filters, newest first."""
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {"limit": limit}
        if symbol is not None:
            where.append("p.symbol = %(symbol)s")
            params["symbol"] = symbol
        if status is not None:
            where.append("p.status = %(status)s")
            params["status"] = str(status)
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""SELECT {_COLUMNS} FROM positions p WHERE {" AND ".join(where)}
                    ORDER BY p.created_at DESC, p.id DESC LIMIT %(limit)s""",
                params,
            )
            return [_to_position(r) for r in await cur.fetchall()]

    async def status_history(
        self, position_id: int, *, conn: AsyncConn | None = None
    ) -> list[tuple[str | None, str]]:
        """(from, to) of every status change, oldest first."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                """SELECT from_status::text AS f, to_status::text AS t FROM position_events
                   WHERE position_id = %s ORDER BY id""",
                (position_id,),
            )
            return [(r["f"], r["t"]) for r in await cur.fetchall()]
