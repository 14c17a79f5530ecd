"""What every repository shares: a connection from the caller's transaction or from the pool, and
SQL fragments that turn timestamptz into integer milliseconds exactly."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from infra.db.errors import storage_errors

AsyncConn = AsyncConnection[Any]


def ms(column: str, alias: str | None = None) -> str:
    """`column` (timestamptz) as integer ms; extract() is numeric since PG 14, so this is exact."""
    name = column.split(".")[-1]
    alias = alias or (name[:-3] if name.endswith("_at") else name) + "_ms"  # created_at -> created_ms
    return f"(extract(epoch FROM {column}) * 1000)::bigint AS {alias}"


def ms_param(name: str) -> str:
    """A bigint ms parameter as timestamptz, without a float on the way."""
    return f"(timestamptz 'epoch' + %({name})s * interval '1 millisecond')"


def jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class AsyncRepository:
    """Base of the daemon-side repositories, over an async pool.

    Every method takes an optional `conn`: given, it runs inside the caller's transaction (so an
    order update and its audit row commit together); omitted, it takes a pooled connection and
    commits its own transaction. Driver exceptions leave as `infra.db.errors` types (`storage_errors`).
    """

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _tx(self, conn: AsyncConn | None) -> AsyncIterator[AsyncConn]:
        # Outside the transaction: what its rollback or commit raises is translated too.
        with storage_errors():
            if conn is not None:
                async with conn.transaction():
                    yield conn
                return
            async with self._pool.connection() as pooled, pooled.transaction():
                yield pooled

    @staticmethod
    def _cursor(conn: AsyncConn) -> Any:
        return conn.cursor(row_factory=dict_row)

    async def _max_id(self, table: str, conn: AsyncConn | None) -> int:
        """The largest id of `table` (0 when empty): where a walk by id starts."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(f"SELECT coalesce(max(id), 0) AS last FROM {table}")
            row = await cur.fetchone()
        return int(row["last"])

    async def _rows_after_id(
        self, columns: str, table: str, alias: str, last_id: int, limit: int, conn: AsyncConn | None
    ) -> list[dict[str, Any]]:
        """The rows of `table` (as `alias`) with an id above `last_id`, by id. Walking ids skips nothing
        where one writer at a time inserts (ids then follow commit order)."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"SELECT {columns} FROM {table} {alias} WHERE {alias}.id > %s ORDER BY {alias}.id LIMIT %s",
                (last_id, limit),
            )
            rows: list[dict[str, Any]] = await cur.fetchall()
            return rows
