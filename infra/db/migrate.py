"""Apply, revert and inspect the Alembic migrations in `infra/db/migrations` on a Database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from infra.db import timescale
from infra.db.connection import Database
from infra.db.errors import DatabaseUnavailable, MigrationError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Tables the migrations own, in the order `db status` prints them.
TABLES = (
    "orders",
    "order_events",
    "positions",
    "position_events",
    "fills",
    "signals",
    "audit_log",
    "idempotency_keys",
    "reconciliation_runs",
    "execution_state",
    "model_versions",
    "model_gate_decisions",
    "model_predictions",
    "users",
    "market_snapshots",
    "public_trades",
    "candles",
    "storage_settings",
    "strategy_statistics",
    "detections",
    "sr_levels",
    "drift_reports",
    "retraining_runs",
)


def _config(**attributes: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes.update(attributes)
    return cfg


@contextlib.contextmanager
def _sqlalchemy_connection(db: Database) -> Iterator[Connection]:
    # Alembic needs SQLAlchemy; hand it connections made by psycopg 3 for the same target, so there is
    # one way to reach the database (socket dirs and all) and its errors stay ours.
    engine = create_engine("postgresql+psycopg://", creator=lambda: db.connect(), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with _sqlalchemy_connection(db) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head", *, retention_days: int | None = None) -> str | None:
    """Migrate up to `revision`; returns the revision the database is at afterwards."""
    return _run(db, "upgrade", revision, retention_days=retention_days)


def downgrade(db: Database, revision: str) -> str | None:
    """Migrate down to `revision` ("base" reverts everything)."""
    return _run(db, "downgrade", revision)


def _run(db: Database, direction: str, revision: str, **attributes: Any) -> str | None:
    try:
        with _sqlalchemy_connection(db) as conn:
            cfg = _config(connection=conn, **attributes)
            getattr(command, direction)(cfg, revision)
            conn.commit()
            return MigrationContext.configure(conn).get_current_revision()
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise MigrationError(f"{direction} to {revision!r} failed on {db.redacted}: {detail}") from exc


@dataclass(frozen=True)
class TableStatus:
    name: str
    exists: bool
    rows: int | None
    hypertable: bool
    # A hypertable's rows live in its chunks: its size is hypertable_size() (compressed chunks at their
    # compressed size), not the few pages of the parent table; a plain table's is pg_total_relation_size().
    size_bytes: int | None
    total_chunks: int | None = None
    compressed_chunks: int | None = None
    before_compression_bytes: int | None = None  # of the compressed chunks, before and after
    after_compression_bytes: int | None = None


@dataclass(frozen=True)
class SchemaStatus:
    target: str
    server_version: str
    current: str | None
    head: str
    timescaledb: bool
    retention_days: int | None
    tables: tuple[TableStatus, ...]
    timescaledb_version: str | None = None
    plain_reason: str | None = None  # why the market data is in plain tables, when it is

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_status(db: Database) -> SchemaStatus:
    """What `depthcharge db status` prints: revision, mode and every table."""
    current = current_revision(db)
    with db.connect(dict_rows=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()["server_version"]  # type: ignore[index]
        settings: dict[str, Any] = {}
        if conn.execute("SELECT to_regclass('storage_settings') AS t").fetchone()["t"]:  # type: ignore[index]
            settings = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM storage_settings")}
        hypertables: set[str] = set()
        plain_reason: str | None = None
        if settings.get("timescaledb"):
            hypertables = {
                r["hypertable_name"]
                for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
            }
        elif settings:
            plain_reason = settings.get("timescaledb_reason")
            if plain_reason is None:  # migrated before the reason was recorded: say how the server stands
                now = timescale.check_support(conn)
                plain_reason = "not recorded by the migration; " + (
                    now.reason
                    or f"timescaledb {now.version} is on the server now (a new database may get hypertables)"
                )
        tables: list[TableStatus] = []
        for name in TABLES:
            exists = conn.execute("SELECT to_regclass(%s) AS t", (f"public.{name}",)).fetchone()["t"]  # type: ignore[index]
            if not exists:
                tables.append(TableStatus(name, False, None, False, None))
                continue
            rows = conn.execute(f"SELECT count(*) AS n FROM {name}").fetchone()["n"]  # type: ignore[index]
            if name in hypertables:
                size = timescale.hypertable_size(conn, name)
                tables.append(
                    TableStatus(
                        name,
                        True,
                        rows,
                        True,
                        size.total_bytes,
                        size.total_chunks,
                        size.compressed_chunks,
                        size.before_compression_bytes,
                        size.after_compression_bytes,
                    )
                )
            else:
                total = conn.execute("SELECT pg_total_relation_size(%s) AS s", (name,)).fetchone()["s"]  # type: ignore[index]
                tables.append(TableStatus(name, True, rows, False, total))
    return SchemaStatus(
        target=db.redacted,
        server_version=version,
        current=current,
        head=head_revision(),
        timescaledb=bool(settings.get("timescaledb", False)),
        retention_days=settings.get("market_data_retention_days"),
        tables=tuple(tables),
        timescaledb_version=settings.get("timescaledb_version"),
        plain_reason=plain_reason,
    )
