"""What the Dagster assets and sensors keep in Postgres (migration 0004): the index of drift reports and the
record of retraining runs. Sync, over one connection the caller owns (Dagster steps and sensors are sync).

The drift-retraining sensor reads reports by id (its cursor); the status API lists both tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec
from psycopg import Connection
from psycopg.rows import dict_row

from infra.db.errors import storage_errors
from infra.db.repositories._base import jsonb, ms, ms_param

DriftSeverity = Literal["none", "low", "medium", "high"]
RetrainingTrigger = Literal["drift", "schedule", "manual"]
RetrainingStatus = Literal["promoted", "kept", "failed"]


class DriftReportRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One drift report of one symbol's time partition (``id`` and ``created_ms`` set by the database)."""

    partition_key: str
    symbol: str
    window_start_ms: int
    window_end_ms: int
    production_version: str | None
    severity: DriftSeverity
    feature_drift_score: float
    prediction_psi: float | None
    accuracy_drop: float | None
    drivers: list[str]
    drifted_features: list[str]
    recommendation: str
    html_path: str
    json_path: str
    n_reference: int
    n_current: int
    dagster_run_id: str | None = None
    id: int | None = None
    created_ms: int | None = None


class RetrainingRunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """How one retraining run ended (``id`` and ``created_ms`` set by the database)."""

    dagster_run_id: str
    trigger: RetrainingTrigger
    status: RetrainingStatus
    reason: str
    drift_report_ids: list[int] = msgspec.field(default_factory=list)
    candidate_version: str | None = None
    production_version_before: str | None = None
    metric: str | None = None
    candidate_value: float | None = None
    production_value: float | None = None
    symbols: list[str] = msgspec.field(default_factory=list)
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    id: int | None = None
    created_ms: int | None = None


_DRIFT_SELECT = f"""
    SELECT id, partition_key, symbol, {ms("window_start", "window_start_ms")}, {ms("window_end", "window_end_ms")},
           production_version, severity, feature_drift_score, prediction_psi, accuracy_drop, drivers,
           drifted_features, recommendation, html_path, json_path, n_reference, n_current, dagster_run_id,
           {ms("created_at")}
    FROM drift_reports
"""

_RUN_SELECT = f"""
    SELECT id, dagster_run_id, trigger, status, drift_report_ids, candidate_version, production_version_before,
           metric, candidate_value, production_value, reason, symbols,
           {ms("window_start", "window_start_ms")}, {ms("window_end", "window_end_ms")}, {ms("created_at")}
    FROM retraining_runs
"""


class DriftReportRepository:
    """Rows of ``drift_reports`` over one sync connection."""

    def __init__(self, conn: Connection[Any]) -> None:
        self._conn = conn

    def add(self, report: DriftReportRecord) -> DriftReportRecord:
        """Store a report; returns it with its id and creation time."""
        values = msgspec.structs.asdict(report)
        values["drivers"] = jsonb(report.drivers)
        values["drifted_features"] = jsonb(report.drifted_features)
        with (
            storage_errors(
                missing_reference=f"production model {report.production_version!r} is not registered"
            ),
            self._conn.transaction(),
            self._conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                f"""INSERT INTO drift_reports (partition_key, symbol, window_start, window_end,
                       production_version, severity, feature_drift_score, prediction_psi, accuracy_drop,
                       drivers, drifted_features, recommendation, html_path, json_path, n_reference,
                       n_current, dagster_run_id)
                   VALUES (%(partition_key)s, %(symbol)s, {ms_param("window_start_ms")},
                       {ms_param("window_end_ms")}, %(production_version)s, %(severity)s,
                       %(feature_drift_score)s, %(prediction_psi)s, %(accuracy_drop)s, %(drivers)s,
                       %(drifted_features)s, %(recommendation)s, %(html_path)s, %(json_path)s,
                       %(n_reference)s, %(n_current)s, %(dagster_run_id)s)
                   RETURNING id, {ms("created_at")}""",
                values,
            )
            row = cur.fetchone()
        assert row is not None
        return msgspec.structs.replace(report, id=row["id"], created_ms=row["created_ms"])

    def after(self, last_id: int, *, limit: int = 100) -> list[DriftReportRecord]:
        """Reports with an id above ``last_id``, oldest first (a sensor's cursor walks them)."""
        return self._query("WHERE id > %s ORDER BY id LIMIT %s", (last_id, limit))

    def recent(self, *, limit: int = 50, symbol: str | None = None) -> list[DriftReportRecord]:
        """The newest reports, newest first, optionally of one symbol."""
        if symbol is None:
            return self._query("ORDER BY id DESC LIMIT %s", (limit,))
        return self._query("WHERE symbol = %s ORDER BY id DESC LIMIT %s", (symbol, limit))

    def get(self, report_id: int) -> DriftReportRecord | None:
        found = self._query("WHERE id = %s", (report_id,))
        return found[0] if found else None

    def _query(self, tail: str, params: Sequence[Any]) -> list[DriftReportRecord]:
        with storage_errors(), self._conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_DRIFT_SELECT + tail, tuple(params)).fetchall()
        return [msgspec.convert(r, DriftReportRecord) for r in rows]


class RetrainingRunRepository:
    """Rows of ``retraining_runs`` over one sync connection."""

    def __init__(self, conn: Connection[Any]) -> None:
        self._conn = conn

    def add(self, run: RetrainingRunRecord) -> RetrainingRunRecord:
        """Record how a run ended. A run is recorded once: a second record of the same Dagster run (a
        retried step) replaces the first, so the table always says how the run finally ended."""
        values = msgspec.structs.asdict(run)
        with (
            storage_errors(missing_reference="the candidate or production version is not registered"),
            self._conn.transaction(),
            self._conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                f"""INSERT INTO retraining_runs (dagster_run_id, trigger, status, drift_report_ids,
                       candidate_version, production_version_before, metric, candidate_value,
                       production_value, reason, symbols, window_start, window_end)
                   VALUES (%(dagster_run_id)s, %(trigger)s, %(status)s, %(drift_report_ids)s,
                       %(candidate_version)s, %(production_version_before)s, %(metric)s,
                       %(candidate_value)s, %(production_value)s, %(reason)s, %(symbols)s,
                       {_nullable_ms("window_start_ms")}, {_nullable_ms("window_end_ms")})
                   ON CONFLICT (dagster_run_id) DO UPDATE SET
                       status = EXCLUDED.status, drift_report_ids = EXCLUDED.drift_report_ids,
                       candidate_version = EXCLUDED.candidate_version,
                       production_version_before = EXCLUDED.production_version_before,
                       metric = EXCLUDED.metric, candidate_value = EXCLUDED.candidate_value,
                       production_value = EXCLUDED.production_value, reason = EXCLUDED.reason,
                       symbols = EXCLUDED.symbols, window_start = EXCLUDED.window_start,
                       window_end = EXCLUDED.window_end
                   RETURNING id, {ms("created_at")}""",
                values,
            )
            row = cur.fetchone()
        assert row is not None
        return msgspec.structs.replace(run, id=row["id"], created_ms=row["created_ms"])

    def recent(self, *, limit: int = 50) -> list[RetrainingRunRecord]:
        """The newest runs, newest first."""
        return self._query("ORDER BY id DESC LIMIT %s", (limit,))

    def by_run_id(self, dagster_run_id: str) -> RetrainingRunRecord | None:
        found = self._query("WHERE dagster_run_id = %s", (dagster_run_id,))
        return found[0] if found else None

    def _query(self, tail: str, params: Sequence[Any]) -> list[RetrainingRunRecord]:
        with storage_errors(), self._conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_RUN_SELECT + tail, tuple(params)).fetchall()
        return [msgspec.convert(r, RetrainingRunRecord) for r in rows]


def _nullable_ms(name: str) -> str:
    return f"CASE WHEN %({name})s::bigint IS NULL THEN NULL ELSE {ms_param(name)} END"
