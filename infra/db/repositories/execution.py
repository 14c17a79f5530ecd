"""Execution's own records: reconciliation runs, and small per-account facts that outlive a restart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.db.repositories._base import AsyncConn, AsyncRepository, jsonb, ms, ms_param


@dataclass(frozen=True)
class ReconciliationRun:
    account: str
    trigger: str  # start, reconnect, interval, demand, poll
    started_ms: int
    finished_ms: int
    success: bool
    attempts: int
    summary: dict[str, Any]
    error: str | None = None
    trace_id: str | None = None
    id: int | None = None


_RUN_COLUMNS = f"""id, account, trigger, {ms("started_at")}, {ms("finished_at")}, success, attempts, summary, error,
    trace_id"""


class ReconciliationRunRepository(AsyncRepository):
    """One row per reconciliation pass."""

    async def add(self, run: ReconciliationRun, *, conn: AsyncConn | None = None) -> int:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""INSERT INTO reconciliation_runs (account, trigger, started_at, finished_at, success, attempts,
                        summary, error, trace_id)
                    VALUES (%(account)s, %(trigger)s, {ms_param("started")}, {ms_param("finished")}, %(success)s,
                        %(attempts)s, %(summary)s, %(error)s, %(trace_id)s)
                    RETURNING id""",
                {
                    "account": run.account,
                    "trigger": run.trigger,
                    "started": run.started_ms,
                    "finished": run.finished_ms,
                    "success": run.success,
                    "attempts": run.attempts,
                    "summary": jsonb(run.summary),
                    "error": run.error,
                    "trace_id": run.trace_id,
                },
            )
            row = await cur.fetchone()
        return int(row["id"])

    async def recent(
        self, account: str, *, limit: int = 20, conn: AsyncConn | None = None
    ) -> list[ReconciliationRun]:
        """The newest runs of `account`, newest first."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"SELECT {_RUN_COLUMNS} FROM reconciliation_runs WHERE account = %s ORDER BY id DESC LIMIT %s",
                (account, limit),
            )
            return [ReconciliationRun(**r) for r in await cur.fetchall()]


class ExecutionStateRepository(AsyncRepository):
    """Per-account key → JSON value (the kill switch's halt lives here, so a restart does not undo it)."""

    async def get(self, account: str, key: str, *, conn: AsyncConn | None = None) -> Any:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                "SELECT value FROM execution_state WHERE account = %s AND key = %s", (account, key)
            )
            row = await cur.fetchone()
        return None if row is None else row["value"]

    async def set(self, account: str, key: str, value: Any, *, conn: AsyncConn | None = None) -> None:
        async with self._tx(conn) as c:
            await c.execute(
                """INSERT INTO execution_state (account, key, value) VALUES (%s, %s, %s)
                   ON CONFLICT (account, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
                (account, key, jsonb(value)),
            )

    async def delete(self, account: str, key: str, *, conn: AsyncConn | None = None) -> None:
        async with self._tx(conn) as c:
            await c.execute("DELETE FROM execution_state WHERE account = %s AND key = %s", (account, key))
