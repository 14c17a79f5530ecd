from __future__ import annotations

import pytest

from infra.db import migrate
from infra.db.connection import Database
from infra.db.errors import MigrationError


def _public_objects(db: Database) -> tuple[set[str], set[str]]:
    with db.connect() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        types = {
            r[0]
            for r in conn.execute(
                "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e'"
            )
        }
    return tables, types


def test_migrate_up_down_up(empty_db: Database) -> None:
    assert migrate.current_revision(empty_db) is None
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    tables, types = _public_objects(empty_db)
    assert set(migrate.TABLES) == tables - {"alembic_version"}  # `db status` lists every table
    assert {"order_status", "position_status", "audit_action"} <= types

    assert migrate.downgrade(empty_db, "base") is None
    tables, types = _public_objects(empty_db)
    assert tables == {"alembic_version"}
    assert types == set()

    assert migrate.upgrade(empty_db) == migrate.head_revision()
    status = migrate.schema_status(empty_db)
    assert status.up_to_date
    assert all(t.exists for t in status.tables)
    assert status.timescaledb is False  # neither test server has the extension
    assert status.plain_reason == "the server has no timescaledb extension"
    assert status.retention_days == 30


def test_plain_mode_has_brin_indexes_on_time(db: Database) -> None:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE indexdef ILIKE '%USING brin%'"
        ).fetchall()
    assert {r[0] for r in rows} == {"market_snapshots", "public_trades", "candles"}


def test_retention_days_recorded_from_setting(empty_db: Database) -> None:
    migrate.upgrade(empty_db, retention_days=7)
    assert migrate.schema_status(empty_db).retention_days == 7


def test_unknown_revision_is_a_clear_error(empty_db: Database) -> None:
    with pytest.raises(MigrationError, match="upgrade to 'nope' failed"):
        migrate.upgrade(empty_db, "nope")
