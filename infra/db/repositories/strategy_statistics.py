"""Per-strategy statistics (`strategy_statistics`): one row per strategy, written by the strategy manager
and read back when the daemon starts, so counters, measured outcomes and PnL survive restarts.

The daemon holding the account is the only writer (execution's account lock), so a save replaces the rows
it names with its in-memory counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from infra.db.repositories._base import AsyncConn, AsyncRepository, ms
from schemas.strategies import StrategyStatistics
from schemas.times import ms_to_datetime

_FIELDS = tuple(f for f in StrategyStatistics.__struct_fields__ if f != "updated_ms")
_SELECT = f"SELECT {', '.join(_FIELDS)}, {ms('updated_at')} FROM strategy_statistics"


class StrategyStatisticsRepository(AsyncRepository):
    async def load(self, *, conn: AsyncConn | None = None) -> dict[str, StrategyStatistics]:
        """Every stored strategy's counters, by strategy name."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(_SELECT + " ORDER BY strategy")
            rows = await cur.fetchall()
        out = {}
        for row in rows:
            row["measured_sum_bps"] = float(row["measured_sum_bps"])
            row["measured_sumsq_bps"] = float(row["measured_sumsq_bps"])
            out[row["strategy"]] = msgspec.convert(row, StrategyStatistics)
        return out

    async def save(self, records: Sequence[StrategyStatistics], *, conn: AsyncConn | None = None) -> None:
        """Insert or replace the rows of `records` (in one transaction)."""
        if not records:
            return
        columns = (*_FIELDS, "updated_at")
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "strategy")
        query = (
            f"INSERT INTO strategy_statistics ({', '.join(columns)}) "
            f"VALUES ({', '.join('%(' + c + ')s' for c in columns)}) "
            f"ON CONFLICT (strategy) DO UPDATE SET {assignments}"
        )
        params: list[dict[str, Any]] = []
        for record in records:
            values = {f: getattr(record, f) for f in _FIELDS}
            values["updated_at"] = ms_to_datetime(record.updated_ms)
            params.append(values)
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.executemany(query, params)
