"""Idempotency keys: a repeated operation within its TTL returns the stored result instead of running twice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.db.repositories._base import AsyncConn, AsyncRepository, jsonb, ms


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str
    operation: str
    request_hash: str | None
    status: str  # in_progress, completed, failed
    result: Any
    created_ms: int
    expires_ms: int


_COLUMNS = f"key, operation, request_hash, status, result, {ms('created_at')}, {ms('expires_at')}"


class IdempotencyRepository(AsyncRepository):
    async def claim(
        self,
        key: str,
        operation: str,
        *,
        ttl_s: int,
        request_hash: str | None = None,
        conn: AsyncConn | None = None,
    ) -> tuple[bool, IdempotencyRecord]:
        """Claim `key` for a new operation. Returns (True, record) when this caller owns it now, or
        (False, existing) when an unexpired record exists: the caller returns its result instead."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            # An expired key is free again.
            await cur.execute("DELETE FROM idempotency_keys WHERE key = %s AND expires_at <= now()", (key,))
            await cur.execute(
                f"""INSERT INTO idempotency_keys (key, operation, request_hash, status, expires_at)
                    VALUES (%s, %s, %s, 'in_progress', now() + %s * interval '1 second')
                    ON CONFLICT (key) DO NOTHING RETURNING {_COLUMNS}""",
                (key, operation, request_hash, ttl_s),
            )
            row = await cur.fetchone()
            if row is not None:
                return True, IdempotencyRecord(**_fields(row))
            await cur.execute(f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key = %s", (key,))
            return False, IdempotencyRecord(**_fields(await cur.fetchone()))

    async def complete(
        self, key: str, result: Any, *, failed: bool = False, conn: AsyncConn | None = None
    ) -> None:
        async with self._tx(conn) as c:
            await c.execute(
                "UPDATE idempotency_keys SET status = %s, result = %s WHERE key = %s",
                ("failed" if failed else "completed", jsonb(result), key),
            )

    async def release(self, key: str, *, conn: AsyncConn | None = None) -> None:
        """Give up a claim whose operation failed before it did anything, so that a retry may run."""
        async with self._tx(conn) as c:
            await c.execute("DELETE FROM idempotency_keys WHERE key = %s AND status = 'in_progress'", (key,))

    async def get(self, key: str, *, conn: AsyncConn | None = None) -> IdempotencyRecord | None:
        """The unexpired record for `key`, if any."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key = %s AND expires_at > now()", (key,)
            )
            row = await cur.fetchone()
        return None if row is None else IdempotencyRecord(**_fields(row))

    async def purge_expired(self, *, conn: AsyncConn | None = None) -> int:
        async with self._tx(conn) as c:
            cur = await c.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")
            return cur.rowcount


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: row[k] for k in ("key", "operation", "request_hash", "status", "result")},
        "created_ms": row["created_ms"],
        "expires_ms": row["expires_ms"],
    }
