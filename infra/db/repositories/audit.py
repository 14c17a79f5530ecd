"""The append-only, hash-chained audit log.

Each row's `row_hash` is sha256 over the previous row's hash and a canonical serialisation of the
row. Appends serialise on an advisory lock so the chain is linear; a trigger rejects UPDATE, DELETE
and TRUNCATE; `verify_chain` recomputes every hash, so a superuser who disables the trigger and
edits or deletes a row is caught by `depthcharge audit verify`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from psycopg import Connection
from psycopg.rows import dict_row

from infra.db.errors import storage_errors
from infra.db.repositories._base import AsyncConn, AsyncRepository, jsonb, ms
from schemas.enums import AuditAction
from schemas.times import ms_to_datetime, now_ms
from schemas.trading import AuditEvent

GENESIS_HASH = "0" * 64
_APPEND_LOCK_KEY = 0x6175646974  # "audit": one chain, one writer at a time

# The hashed fields, in this order. JSON values enter as Postgres's own jsonb text form, which is
# canonical (sorted keys, normalised numbers), so the hash survives the round trip through jsonb.
HASHED_FIELDS = (
    "id",
    "ts",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "old_value",
    "new_value",
    "reason",
    "success",
    "error_message",
    "context",
    "trace_id",
    "correlation_id",
)

_SELECT = f"""
    SELECT id, {ms("ts", "ts")}, actor, action::text AS action, entity_type, entity_id,
           old_value::text AS old_value, new_value::text AS new_value, reason, success, error_message,
           context::text AS context, trace_id, correlation_id, prev_hash, row_hash
    FROM audit_log
"""


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The chain hash of one row given as a mapping with HASHED_FIELDS (JSON fields as jsonb text)."""
    canonical = json.dumps([row[f] for f in HASHED_FIELDS], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


# The next link of the chain, read under the append lock: the row's id, the last row's hash, and the JSON
# values as PostgreSQL will store them (jsonb normalises them; the hash covers what is stored).
_NEXT_LINK_SQL = """SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id,
       (SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1) AS prev_hash,
       %s::jsonb::text AS old_value, %s::jsonb::text AS new_value, %s::jsonb::text AS context"""
_INSERT_SQL = """INSERT INTO audit_log (id, ts, actor, action, entity_type, entity_id, old_value, new_value,
       reason, success, error_message, context, trace_id, correlation_id, prev_hash, row_hash)
   VALUES (%(id)s, %(ts_dt)s, %(actor)s, %(action)s, %(entity_type)s, %(entity_id)s,
       %(old_value)s::jsonb, %(new_value)s::jsonb, %(reason)s, %(success)s, %(error_message)s,
       %(context)s::jsonb, %(trace_id)s, %(correlation_id)s, %(prev_hash)s, %(row_hash)s)"""


def _chained_row(event: AuditEvent, ts: int, pre: dict[str, Any]) -> dict[str, Any]:
    """The row to insert after `pre` (the next link): the event's fields, the previous hash and its own."""
    row = {
        "id": pre["id"],
        "ts": ts,
        "actor": event.actor,
        "action": str(event.action),
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "old_value": pre["old_value"],
        "new_value": pre["new_value"],
        "reason": event.reason,
        "success": event.success,
        "error_message": event.error_message,
        "context": pre["context"],
        "trace_id": event.trace_id,
        "correlation_id": event.correlation_id,
    }
    prev = (pre["prev_hash"] or GENESIS_HASH).strip()
    row["prev_hash"] = prev
    row["row_hash"] = row_hash(prev, row)
    return row


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _to_event(row: dict[str, Any]) -> AuditEvent:
    json_fields = {name: _loads(row[name]) for name in ("old_value", "new_value", "context")}
    return msgspec.convert({**row, **json_fields}, AuditEvent)


class AuditRepository(AsyncRepository):
    """Append and query audit events."""

    async def append(self, event: AuditEvent, *, conn: AsyncConn | None = None) -> AuditEvent:
        """Store `event` at the end of the chain and return it with id, time and hashes."""
        ts = event.ts or now_ms()
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK_KEY,))
            await cur.execute(
                _NEXT_LINK_SQL,
                (jsonb(event.old_value), jsonb(event.new_value), jsonb(event.context)),
            )
            pre = await cur.fetchone()
            assert pre is not None  # a SELECT without FROM returns one row
            row = _chained_row(event, ts, pre)
            await cur.execute(
                _INSERT_SQL,
                {**row, "ts_dt": ms_to_datetime(ts)},
            )
        return _to_event(row)

    async def by_entity(
        self, entity_type: str, entity_id: str, *, conn: AsyncConn | None = None
    ) -> list[AuditEvent]:
        """The change history of one entity, oldest first."""
        return await self._query(
            "WHERE entity_type = %s AND entity_id = %s ORDER BY id", (entity_type, entity_id), conn
        )

    async def by_trace_id(self, trace_id: str, *, conn: AsyncConn | None = None) -> list[AuditEvent]:
        """Everything one operation (a market event and what it caused) wrote, oldest first."""
        return await self._query("WHERE trace_id = %s ORDER BY id", (trace_id,), conn)

    async def recent(
        self, *, limit: int = 100, failures_only: bool = False, conn: AsyncConn | None = None
    ) -> list[AuditEvent]:
        where = "WHERE NOT success" if failures_only else ""
        return await self._query(f"{where} ORDER BY id DESC LIMIT %s", (limit,), conn)

    async def find(
        self,
        *,
        action: AuditAction | None = None,
        entity_type: str | None = None,
        limit: int = 100,
        conn: AsyncConn | None = None,
    ) -> list[AuditEvent]:
        """The newest rows of one action and/or entity type, newest first."""
        if limit <= 0:
            raise ValueError(f"audit find: limit must be positive, got {limit}")
        where, params = [], []
        if action is not None:
            where.append("action = %s")
            params.append(str(action))
        if entity_type is not None:
            where.append("entity_type = %s")
            params.append(entity_type)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return await self._query(f"{clause}ORDER BY id DESC LIMIT %s", (*params, limit), conn)

    async def _query(self, tail: str, params: Iterable[Any], conn: AsyncConn | None) -> list[AuditEvent]:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(_SELECT + tail, tuple(params))
            return [_to_event(r) for r in await cur.fetchall()]


@dataclass(frozen=True)
class ChainProblem:
    id: int
    kind: str  # "content" (row edited) or "link" (a row before it was removed, inserted or reordered)
    detail: str


@dataclass
class ChainReport:
    rows_checked: int = 0
    last_hash: str = GENESIS_HASH
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(conn: Connection[Any], *, batch_size: int = 5000) -> ChainReport:
    """Recompute every row hash in id order and report rows whose content or link does not hold."""
    report = ChainReport()
    expected_prev = GENESIS_HASH
    with storage_errors(), conn.cursor(name="audit_verify", row_factory=dict_row) as cur:
        cur.itersize = batch_size
        cur.execute(_SELECT + " ORDER BY id")
        for row in cur:
            report.rows_checked += 1
            stored_prev, stored_hash = row["prev_hash"].strip(), row["row_hash"].strip()
            if stored_prev != expected_prev:
                report.problems.append(
                    ChainProblem(
                        row["id"],
                        "link",
                        f"prev_hash {stored_prev[:12]}… does not follow "
                        f"{expected_prev[:12]}…: a row before it was deleted, inserted or reordered",
                    )
                )
            if row_hash(stored_prev, row) != stored_hash:
                report.problems.append(
                    ChainProblem(row["id"], "content", "row_hash does not match the row: it was edited")
                )
            expected_prev = stored_hash
    report.last_hash = expected_prev
    return report


def append_sync(conn: Connection[Any], event: AuditEvent) -> AuditEvent:
    """`AuditRepository.append` for sync callers (the model registry in Dagster and the CLI): the same
    chain, lock and hash, inside the caller's transaction on ``conn`` (so a promotion and its audit row
    commit together)."""
    ts = event.ts or now_ms()
    with storage_errors(), conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK_KEY,))
        pre = cur.execute(
            _NEXT_LINK_SQL,
            (jsonb(event.old_value), jsonb(event.new_value), jsonb(event.context)),
        ).fetchone()
        assert pre is not None  # a SELECT without FROM returns one row
        row = _chained_row(event, ts, pre)
        cur.execute(
            _INSERT_SQL,
            {**row, "ts_dt": ms_to_datetime(ts)},
        )
    return _to_event(row)
