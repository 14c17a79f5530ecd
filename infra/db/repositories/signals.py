"""Signals (strategies, the consensus, the ML gate's decisions) and the served models' row predictions.

Both are written in batches by the daemon's decision engine and keyed so that replaying a batch whose
commit was not seen stores nothing twice: a signal by (symbol, ts, source), a prediction by (symbol, ts,
model_version).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from infra.db.repositories._base import AsyncConn, AsyncRepository, jsonb, ms
from schemas.times import ms_to_datetime
from schemas.trading import Signal

_SIGNAL_COLUMNS = f"""id, symbol, {ms("ts", "ts")}, source, action::text AS action, strength, confidence, price,
    model_version, reason, context, trace_id"""


@dataclass(frozen=True)
class PredictionRow:
    """One model's prediction of one row (a `model_predictions` row)."""

    symbol: str
    ts: int
    model_version: str
    role: str  # production or shadow
    horizons_s: list[int]
    direction: list[int]
    probabilities: list[float]  # per horizon: down, flat, up
    confidence: float
    expected_return_bps: list[float]
    latency_ms: float | None = None


class SignalRepository(AsyncRepository):
    """Rows of `signals` and `model_predictions`."""

    async def add_many(self, signals: Sequence[Signal], *, conn: AsyncConn | None = None) -> int:
        """Store the signals; returns how many were new (a (symbol, ts, source) already stored is skipped)."""
        if not signals:
            return 0
        rows = [
            (
                s.symbol,
                ms_to_datetime(s.ts),
                s.source,
                str(s.action),
                s.strength,
                s.confidence,
                s.price,
                s.model_version,
                s.reason,
                jsonb(s.context),
                s.trace_id,
            )
            for s in signals
        ]
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.executemany(
                """INSERT INTO signals (symbol, ts, source, action, strength, confidence, price, model_version,
                       reason, context, trace_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (symbol, ts, source) DO NOTHING""",
                rows,
            )
            return max(int(cur.rowcount), 0)

    async def recent(
        self,
        *,
        symbol: str | None = None,
        source: str | None = None,
        limit: int = 100,
        conn: AsyncConn | None = None,
    ) -> list[Signal]:
        """Newest first, optionally of one symbol and/or source."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""SELECT {_SIGNAL_COLUMNS} FROM signals
                    WHERE (%(symbol)s::text IS NULL OR symbol = %(symbol)s)
                      AND (%(source)s::text IS NULL OR source = %(source)s)
                    ORDER BY ts DESC, id DESC LIMIT %(limit)s""",
                {"symbol": symbol, "source": source, "limit": limit},
            )
            return [msgspec.convert(r, Signal) for r in await cur.fetchall()]

    async def last_id(self, *, conn: AsyncConn | None = None) -> int:
        return await self._max_id("signals", conn)

    async def after_id(
        self, last_id: int, *, limit: int = 500, conn: AsyncConn | None = None
    ) -> list[Signal]:
        """Signals stored after the one with id `last_id`, in the order they were stored."""
        rows = await self._rows_after_id(_SIGNAL_COLUMNS, "signals", "s", last_id, limit, conn)
        return [msgspec.convert(r, Signal) for r in rows]

    async def count_by(self, column: str, *, conn: AsyncConn | None = None) -> dict[str | None, int]:
        """Signals per `source` or per `model_version`."""
        if column not in ("source", "model_version"):
            raise ValueError(f"count_by: column must be source or model_version, got {column!r}")
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(f"SELECT {column} AS k, count(*) AS n FROM signals GROUP BY {column}")
            return {r["k"]: r["n"] for r in await cur.fetchall()}

    async def add_predictions(self, rows: Sequence[PredictionRow], *, conn: AsyncConn | None = None) -> int:
        """Store model predictions; one already stored for (symbol, ts, model_version) is skipped."""
        if not rows:
            return 0
        params = [
            (
                r.symbol,
                ms_to_datetime(r.ts),
                r.model_version,
                r.role,
                r.horizons_s,
                r.direction,
                r.probabilities,
                r.confidence,
                r.expected_return_bps,
                r.latency_ms,
            )
            for r in rows
        ]
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.executemany(
                """INSERT INTO model_predictions (symbol, ts, model_version, role, horizons_s, direction,
                       probabilities, confidence, expected_return_bps, latency_ms)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (symbol, ts, model_version) DO NOTHING""",
                params,
            )
            return max(int(cur.rowcount), 0)

    async def predictions(
        self, *, symbol: str, role: str | None = None, conn: AsyncConn | None = None
    ) -> list[dict[str, Any]]:
        """A symbol's stored predictions, oldest first (for comparisons and tests)."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""SELECT symbol, {ms("ts", "ts")}, model_version, role, horizons_s, direction, probabilities,
                           confidence, expected_return_bps, latency_ms
                    FROM model_predictions
                    WHERE symbol = %(symbol)s AND (%(role)s::text IS NULL OR role = %(role)s)
                    ORDER BY ts, role""",
                {"symbol": symbol, "role": role},
            )
            return list(await cur.fetchall())
