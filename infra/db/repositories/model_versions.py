"""Model versions (sync: the registry runs in Dagster and the CLI; the daemon calls it in a thread).

Promotion flips the production row in one transaction guarded by the caller's view of the current
production model, and sends `NOTIFY model_promoted` on commit so the daemon hot-swaps.
"""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from infra.db.errors import NotFound, PromotionConflict, storage_errors
from schemas.enums import ModelStatus
from schemas.model import ModelManifest
from schemas.times import ms_to_datetime

PROMOTION_CHANNEL = "model_promoted"

_SELECT = "SELECT manifest, status::text AS status FROM model_versions"


def _to_manifest(row: dict[str, Any]) -> ModelManifest:
    manifest = msgspec.convert(row["manifest"], ModelManifest)
    return msgspec.structs.replace(manifest, status=ModelStatus(row["status"]))


class ModelVersionRepository:
    """Rows of `model_versions` over one sync connection (the caller owns its transaction).

    Driver exceptions leave as `infra.db.errors` types (`storage_errors`)."""

    def __init__(self, conn: Connection[Any]) -> None:
        self._conn = conn

    def add(self, manifest: ModelManifest) -> None:
        window = manifest.data_window
        with (
            storage_errors(
                duplicate=f"model version {manifest.version!r} is already registered",
                missing_reference=f"parent model version {manifest.parent_version!r} is not registered",
            ),
            self._conn.transaction(),
        ):
            self._conn.execute(
                """INSERT INTO model_versions (version, model_type, status, feature_spec_hash,
                       definitions_version, artifact_path, artifact_sha256, metrics, manifest,
                       data_start, data_end, parent_version, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    manifest.version,
                    manifest.model_type,
                    str(manifest.status),
                    manifest.feature_spec_hash,
                    manifest.definitions_version,
                    manifest.artifact_path,
                    manifest.artifact_sha256,
                    Jsonb(manifest.metrics),
                    Jsonb(msgspec.to_builtins(manifest)),
                    ms_to_datetime(window.start_ms),
                    ms_to_datetime(window.end_ms),
                    manifest.parent_version,
                    ms_to_datetime(manifest.created_ms),
                ),
            )

    def get(self, version: str) -> ModelManifest:
        with storage_errors(), self._conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(_SELECT + " WHERE version = %s", (version,)).fetchone()
        if row is None:
            raise NotFound(f"no model version {version!r}")
        return _to_manifest(row)

    def find(self, *, status: ModelStatus | None = None, limit: int = 100) -> list[ModelManifest]:
        """Versions, newest first."""
        where = "WHERE status = %s" if status is not None else "WHERE %s::text IS NULL"
        with storage_errors(), self._conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                f"{_SELECT} {where} ORDER BY created_at DESC LIMIT %s",
                (None if status is None else str(status), limit),
            ).fetchall()
        return [_to_manifest(r) for r in rows]

    def production(self) -> ModelManifest | None:
        with storage_errors(), self._conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(_SELECT + " WHERE status = 'production'").fetchone()
        return None if row is None else _to_manifest(row)

    def set_status(self, version: str, status: ModelStatus) -> None:
        """Mark a candidate rejected or a version archived (promotion goes through `promote`)."""
        if status is ModelStatus.PRODUCTION:
            raise ValueError("use promote() to make a version the production model")
        with storage_errors(), self._conn.transaction():
            cur = self._conn.execute(
                "UPDATE model_versions SET status = %s WHERE version = %s", (str(status), version)
            )
        if cur.rowcount == 0:
            raise NotFound(f"no model version {version!r}")

    def promote(self, version: str, *, expected_production: str | None) -> None:
        """Make `version` the production model if production is still `expected_production`.

        The registry decides whether the candidate is better; this only makes the switch atomic and
        refuses it (PromotionConflict) when another promotion happened since the caller looked.
        """
        with storage_errors(), self._conn.transaction(), self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute("LOCK TABLE model_versions IN SHARE ROW EXCLUSIVE MODE")
            current = cur.execute("SELECT version FROM model_versions WHERE status = 'production'").fetchone()
            current_version = None if current is None else current["version"]
            if current_version != expected_production:
                raise PromotionConflict(expected_production, current_version)
            if cur.execute("SELECT 1 FROM model_versions WHERE version = %s", (version,)).fetchone() is None:
                raise NotFound(f"no model version {version!r}")
            if current_version is not None:
                cur.execute(
                    "UPDATE model_versions SET status = 'archived' WHERE version = %s", (current_version,)
                )
            cur.execute(
                "UPDATE model_versions SET status = 'production', promoted_at = now() WHERE version = %s",
                (version,),
            )
            cur.execute("SELECT pg_notify(%s, %s)", (PROMOTION_CHANNEL, version))
