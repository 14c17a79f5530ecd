"""The model gate's decisions (sync: the registry runs in Dagster and the CLI).

One row per decision of `ml.gate` about a model version: promoted or not, the gate metric, the
candidate's value and interval, the production version compared with, the reason, and every number
behind it (`details`: each comparison's gain interval, the run's values, the bootstrap). A version may
be gated more than once (production changed since); the newest row is its current verdict.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from infra.db.errors import storage_errors
from infra.db.repositories._base import ms
from schemas.times import ms_to_datetime, now_ms

_SELECT = f"""
    SELECT id, version, {ms("decided_at")}, promoted, metric, candidate_value, candidate_low, candidate_high,
           production_version, reason, details
    FROM model_gate_decisions
"""


class ModelGateRepository:
    """Rows of `model_gate_decisions` over one sync connection (the caller owns its transaction)."""

    def __init__(self, conn: Connection[Any]) -> None:
        self._conn = conn

    def add(
        self,
        version: str,
        *,
        promoted: bool,
        metric: str,
        candidate_value: float,
        candidate_low: float,
        candidate_high: float,
        production_version: str | None,
        reason: str,
        details: dict[str, Any],
        decided_ms: int | None = None,
    ) -> int:
        """Store one decision; returns its id."""
        with (
            storage_errors(
                missing_reference=f"model version {version!r} (or its production) is not registered"
            ),
            self._conn.cursor() as cur,
        ):
            cur.execute(
                """INSERT INTO model_gate_decisions (version, decided_at, promoted, metric, candidate_value,
                       candidate_low, candidate_high, production_version, reason, details)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    version,
                    ms_to_datetime(decided_ms if decided_ms is not None else now_ms()),
                    promoted,
                    metric,
                    candidate_value,
                    candidate_low,
                    candidate_high,
                    production_version,
                    reason,
                    Jsonb(details),
                ),
            )
            row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def for_version(self, version: str) -> list[dict[str, Any]]:
        """The decisions about ``version``, newest first."""
        with storage_errors(), self._conn.cursor(row_factory=dict_row) as cur:
            return list(cur.execute(_SELECT + " WHERE version = %s ORDER BY id DESC", (version,)).fetchall())
