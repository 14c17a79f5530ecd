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
