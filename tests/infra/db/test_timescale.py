"""The TimescaleDB path and its fallback, on servers with a stand-in timescaledb (see timescale_stub).

Each server is built from the pgserver wheel's PostgreSQL 16 and from the machine's own PostgreSQL (15).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from rich.console import Console

from depthcharge.commands.db import print_status
from infra.db import migrate, timescale
from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from infra.db.retention import DAY_MS, enforce_retention
from testkit.rows import T0_MS, candles, snapshot_rows, trades
from tests.infra.db.timescale_stub import OLD_API_VERSION, STUB_VERSION, timescale_utility_hook

MARKET_TABLES = ("market_snapshots", "public_trades", "candles")


def _query(db: Database, query: str, *params: object) -> list[tuple[object, ...]]:
    with db.connect() as conn:
        return list(conn.execute(query, params or None).fetchall())


def _brin_tables(db: Database) -> set[str]:
    rows = _query(db, "SELECT tablename FROM pg_indexes WHERE indexdef ILIKE '%USING brin%'")
    return {str(r[0]) for r in rows}


def _status_text(status: migrate.SchemaStatus) -> str:
    out = io.StringIO()
    print_status(status, Console(file=out, width=250, color_system=None))
    return out.getvalue()


# --- installed but not preloaded ---------------------------------------------------------------------


def test_not_preloaded_falls_back_to_plain_tables(unloaded_db: Database) -> None:
    # Before the fix: "timescaledb is installed but cannot be created … using plain tables", then
    # "upgrade to 'head' failed …: Can't reconnect until invalid transaction is rolled back".
    assert migrate.upgrade(unloaded_db, retention_days=30) == migrate.head_revision()
    status = migrate.schema_status(unloaded_db)
    assert status.up_to_date and all(t.exists for t in status.tables)
    assert status.timescaledb is False and status.timescaledb_version is None
    assert status.plain_reason is not None
    assert f"timescaledb {STUB_VERSION} is installed" in status.plain_reason
    assert "not in shared_preload_libraries" in status.plain_reason
    assert _brin_tables(unloaded_db) == set(MARKET_TABLES)
    assert _query(unloaded_db, "SELECT extname FROM pg_extension WHERE extname = 'timescaledb'") == []
    # and the plain schema goes down and up again like any other
    assert migrate.downgrade(unloaded_db, "base") is None
    assert migrate.upgrade(unloaded_db) == migrate.head_revision()


@pytest.mark.slow  # two CLI processes: about 10 s
def test_db_migrate_and_status_commands_say_why_plain(unloaded_db: Database) -> None:
    env = {**os.environ, "DATABASE_URL": unloaded_db.conninfo}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "depthcharge", "db", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    up = run("migrate")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip().endswith(f"base -> {migrate.head_revision()}")
    status = run("status")
    assert status.returncode == 0, status.stderr
    text = " ".join(status.stdout.split())  # rich wraps long lines
    assert "plain PostgreSQL (BRIN on time)" in text
    assert (
        f"why plain timescaledb {STUB_VERSION} is installed on the server but not in shared_preload_libraries"
        in text
    )


def test_status_of_a_database_migrated_before_the_reason_was_recorded(unloaded_db: Database) -> None:
    migrate.upgrade(unloaded_db)
    with unloaded_db.connect() as conn:
        conn.execute("DELETE FROM storage_settings WHERE key = 'timescaledb_reason'")
        conn.commit()
    reason = migrate.schema_status(unloaded_db).plain_reason
    assert reason is not None and reason.startswith("not recorded by the migration; timescaledb")
    assert "not in shared_preload_libraries" in reason


# --- roles that may not read shared_preload_libraries, and other refusals --------------------------


@contextlib.contextmanager
def _app_role_database(server: Database, *, owner: bool) -> Iterator[Database]:
    """A database for a role that is not a superuser (it may not read shared_preload_libraries): its owner
    (who may create a trusted extension such as timescaledb), or a role with CREATE on its schema only."""
    role = f"dc_app_{uuid.uuid4().hex[:8]}"
    name = f"dc_tsdb_{uuid.uuid4().hex[:12]}"
    with server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        conn.execute(sql.SQL("{} OWNER {}").format(create, sql.Identifier(role)) if owner else create)
    if not owner:
        with server.with_dbname(name).connect(autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    try:
        yield Database(make_conninfo(server.with_dbname(name).conninfo, user=role), "timescaledb-stub")
    finally:
        with server.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_role_that_may_not_create_the_extension_gets_plain_tables(timescale_preloaded: Database) -> None:
    with _app_role_database(timescale_preloaded, owner=False) as app_db:
        assert migrate.upgrade(app_db, retention_days=30) == migrate.head_revision()
        status = migrate.schema_status(app_db)
        assert all(t.exists for t in status.tables) and status.timescaledb is False
        assert status.plain_reason == (
            'CREATE EXTENSION timescaledb failed: permission denied to create extension "timescaledb"'
        )
        assert _brin_tables(app_db) == set(MARKET_TABLES)


def test_database_owner_gets_hypertables_without_reading_the_settings(timescale_preloaded: Database) -> None:
    with _app_role_database(timescale_preloaded, owner=True) as app_db:
        with app_db.connect() as conn:  # what the migration cannot see as this role
            assert conn.execute(
                "SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries'"
            ).fetchone() == (0,)
        _migrate_timescale(app_db)
        status = migrate.schema_status(app_db)
        assert status.timescaledb and {t.name for t in status.tables if t.hypertable} == set(MARKET_TABLES)


def test_role_on_a_server_without_preload_gets_plain_tables(timescale_unloaded: Database) -> None:
    with _app_role_database(timescale_unloaded, owner=True) as app_db:
        assert migrate.upgrade(app_db) == migrate.head_revision()
        status = migrate.schema_status(app_db)
        assert status.timescaledb is False and all(t.exists for t in status.tables)
        assert status.plain_reason is not None
        assert status.plain_reason.startswith("CREATE EXTENSION timescaledb ends the session")


def test_a_session_ended_by_create_extension_leaves_plain_tables(preloaded_db: Database) -> None:
    # Preloaded, and the library still will not load (another version already loaded, say): a FATAL.
    with preloaded_db.connect(autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET timescaledb_stub.fatal = {}").format(
                sql.Identifier(preloaded_db.dbname),
                sql.Literal('"timescaledb" already loaded with a different version'),
            )
        )
    assert migrate.upgrade(preloaded_db) == migrate.head_revision()
    status = migrate.schema_status(preloaded_db)
    assert status.timescaledb is False and all(t.exists for t in status.tables)
    assert status.plain_reason is not None
    assert status.plain_reason.startswith("CREATE EXTENSION timescaledb ends the session")


# --- preloaded: the TimescaleDB path ------------------------------------------------------------------


def _migrate_timescale(db: Database, **kwargs: object) -> list[str]:
    with timescale_utility_hook() as altered:
        assert migrate.upgrade(db, **kwargs) == migrate.head_revision()
    return altered


def test_timescale_path_end_to_end(preloaded_db: Database) -> None:
    altered = _migrate_timescale(preloaded_db, retention_days=21)
    assert len(altered) == 3

    hypertables = _query(
        preloaded_db,
        "SELECT hypertable_name, column_name, time_interval FROM timescaledb_information.dimensions "
        "ORDER BY hypertable_name",
    )
    assert [(str(n), str(c), str(i)) for n, c, i in hypertables] == [
        ("candles", "start_time", "7 days, 0:00:00"),
        ("market_snapshots", "ts", "1 day, 0:00:00"),
        ("public_trades", "ts", "1 day, 0:00:00"),
    ]
    # The generalised API of TimescaleDB 2.13+, empty tables converted in place.
    calls = _query(
        preloaded_db,
        "SELECT args FROM _timescaledb_catalog.stub_calls WHERE function = 'create_hypertable' ORDER BY id",
    )
    assert [c[0]["api"] for c in calls] == ["by_range"] * 3
    assert all(c[0]["migrate_data"] and c[0]["if_not_exists"] for c in calls)

    settings = _query(
        preloaded_db,
        "SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index, orderby_asc "
        "FROM timescaledb_information.compression_settings ORDER BY hypertable_name, attname",
    )
    assert settings == [
        ("candles", "start_time", None, 1, False),
        ("candles", "symbol", 1, None, None),
        ("market_snapshots", "symbol", 1, None, None),
        ("market_snapshots", "ts", None, 1, False),
        ("public_trades", "symbol", 1, None, None),
        ("public_trades", "trade_id", None, 2, True),
        ("public_trades", "ts", None, 1, False),
    ]
    # Every primary-key column is segmented or ordered by: TimescaleDB has nothing to warn about.
    assert _query(preloaded_db, "SELECT message FROM _timescaledb_catalog.stub_warnings") == []

    jobs = _query(
        preloaded_db,
        "SELECT hypertable_name, proc_name, config->>'compress_after', config->>'drop_after' "
        "FROM timescaledb_information.jobs ORDER BY hypertable_name, proc_name",
    )
    assert jobs == [
        ("candles", "policy_compression", "30 days", None),
        ("candles", "policy_retention", None, "21 days"),
        ("market_snapshots", "policy_compression", "7 days", None),
        ("market_snapshots", "policy_retention", None, "21 days"),
        ("public_trades", "policy_compression", "7 days", None),
        ("public_trades", "policy_retention", None, "21 days"),
    ]
    assert _brin_tables(preloaded_db) == set()

    status = migrate.schema_status(preloaded_db)
    assert status.timescaledb and status.timescaledb_version == STUB_VERSION and status.plain_reason is None
    assert {t.name for t in status.tables if t.hypertable} == set(MARKET_TABLES)
    assert f"TimescaleDB {STUB_VERSION} hypertables, retention 21 days" in _status_text(status)

    # Down removes the policies and the tables (the extension stays), and up again works.
    assert migrate.downgrade(preloaded_db, "base") is None
    removed = _query(
        preloaded_db,
        "SELECT function, count(*) FROM _timescaledb_catalog.stub_calls WHERE function LIKE 'remove_%' GROUP BY 1 ORDER BY 1",
    )
    assert removed == [("remove_compression_policy", 3), ("remove_retention_policy", 3)]
    assert _query(preloaded_db, "SELECT count(*) FROM timescaledb_information.jobs") == [(0,)]
    assert _query(preloaded_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == [
        ("alembic_version",)
    ]
    _migrate_timescale(preloaded_db)
    assert migrate.schema_status(preloaded_db).timescaledb


def test_timescale_before_2_13_gets_the_old_create_hypertable(preloaded_db: Database) -> None:
    with preloaded_db.connect(autocommit=True) as conn:
        conn.execute(f"CREATE EXTENSION timescaledb VERSION '{OLD_API_VERSION}'")  # no by_range() in it
    _migrate_timescale(preloaded_db)
    calls = _query(
        preloaded_db,
        "SELECT args FROM _timescaledb_catalog.stub_calls WHERE function = 'create_hypertable' ORDER BY id",
    )
    assert [(c[0]["api"], c[0]["time_column_name"], c[0]["chunk_time_interval"]) for c in calls] == [
        ("old", "ts", "1 day"),
        ("old", "ts", "1 day"),
        ("old", "start_time", "7 days"),
    ]
    assert migrate.schema_status(preloaded_db).timescaledb_version == OLD_API_VERSION


async def test_status_reports_hypertable_size_and_compression(preloaded_db: Database) -> None:
    # Before the fix `db status` read pg_total_relation_size() of the parent table, which holds no rows:
    # 24 kB however much the hypertable held.
    _migrate_timescale(preloaded_db)
    pool = await preloaded_db.open_pool(min_size=1, max_size=2)
    try:
        # 600 rows over three days: three one-day chunks.
        await MarketDataRepository(pool).copy_snapshots(list(snapshot_rows(600, interval_ms=432_000)))
    finally:
        await pool.close()
    with preloaded_db.connect() as conn:
        compressed = conn.execute(
            "SELECT compress_chunk(c) FROM show_chunks('market_snapshots', older_than => %s::timestamptz) c",
            ("2026-01-03T00:00:00Z",),
        ).fetchall()
        conn.commit()
        parent = conn.execute("SELECT pg_total_relation_size('market_snapshots')").fetchone()[0]
        chunk_heaps = conn.execute(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'market_snapshots'::regclass"
        ).fetchone()[0]
        reported = conn.execute("SELECT hypertable_size('market_snapshots')").fetchone()[0]
        stats = conn.execute(
            "SELECT total_chunks, number_compressed_chunks, before_compression_total_bytes, "
            "after_compression_total_bytes FROM hypertable_compression_stats('market_snapshots')"
        ).fetchone()
    assert len(compressed) == 2 and stats is not None
    total_chunks, compressed_chunks, before, after = stats
    assert (total_chunks, compressed_chunks) == (3, 2) and after < before

    status = migrate.schema_status(preloaded_db)
    snapshots = next(t for t in status.tables if t.name == "market_snapshots")
    assert snapshots.hypertable and snapshots.rows == 600
    assert snapshots.size_bytes == reported
    assert snapshots.size_bytes > 10 * parent  # the parent table is what the old status read
    assert snapshots.size_bytes < chunk_heaps  # two of three chunks counted at their compressed size
    assert (snapshots.total_chunks, snapshots.compressed_chunks) == (3, 2)
    assert (snapshots.before_compression_bytes, snapshots.after_compression_bytes) == (before, after)
    trades_status = next(t for t in status.tables if t.name == "public_trades")
    assert trades_status.rows == 0 and trades_status.compressed_chunks is None  # no chunk yet: no stats row

    line = next(x for x in _status_text(status).splitlines() if "market_snapshots" in x)
    assert f"{reported / 1024:,.0f} kB" in line
    assert f"2/3 chunks compressed {before / 1024:,.0f} kB -> {after / 1024:,.0f} kB" in line


async def test_timescale_retention_drops_old_chunks_and_resets_the_policy(preloaded_db: Database) -> None:
    _migrate_timescale(preloaded_db, retention_days=30)
    now = T0_MS + 40 * DAY_MS
    pool = await preloaded_db.open_pool(min_size=1, max_size=2)
    try:
        repo = MarketDataRepository(pool)
        for start in (T0_MS, now - DAY_MS):
            await repo.copy_snapshots(list(snapshot_rows(30, start_ms=start)))
            await repo.copy_trades(trades(20, start_ms=start, seed=start % 97))
            await repo.ingest_candles(candles(5, start_ms=start))
    finally:
        await pool.close()
    with preloaded_db.connect(autocommit=True) as conn:
        result = enforce_retention(conn, retention_days=10, now_ms=now)
    assert result.mode == "timescaledb"
    assert result.deleted == {
        "market_snapshots": 1,
        "public_trades": 1,
        "candles": 1,
        "model_predictions": 0,
        "sr_levels": 0,
    }  # chunks; rows of the plain tables
    counts = _query(
        preloaded_db,
        "SELECT (SELECT count(*) FROM market_snapshots), (SELECT count(*) FROM public_trades), "
        "(SELECT count(*) FROM candles)",
    )
    assert counts == [(30, 20, 5)]
    policies = _query(
        preloaded_db,
        "SELECT DISTINCT config->>'drop_after' FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'",
    )
    assert policies == [("10 days",)]
    assert migrate.schema_status(preloaded_db).retention_days == 10


# --- the decision itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", False),
        ("pg_stat_statements", False),
        ("timescaledb", True),
        ("pg_stat_statements,timescaledb", True),
        ("pg_stat_statements, timescaledb", True),
        ("$libdir/timescaledb", True),
        ('"timescaledb.so"', True),
        ("timescaledb_toolkit", False),
    ],
)
def test_preloaded_reads_the_setting(setting: str, expected: bool) -> None:
    assert timescale.preloaded(setting) is expected


@pytest.mark.parametrize(
    ("available", "installed", "preload", "possible", "reason"),
    [
        (None, None, "", False, "the server has no timescaledb extension"),
        (
            "2.17.2",
            None,
            "",
            False,
            "timescaledb 2.17.2 is installed on the server but not in shared_preload_libraries",
        ),
        (
            "2.17.2",
            None,
            "pg_stat_statements",
            False,
            "timescaledb 2.17.2 is installed on the server but not",
        ),
        ("2.17.2", "2.12.0", "timescaledb", True, ""),
        ("2.17.2", None, None, True, ""),  # the role may not read the setting: try it
        ("1.7.5", None, "timescaledb", False, "timescaledb 1.7.5 is older than 2.0"),
    ],
)
def test_support_decision(
    available: str | None, installed: str | None, preload: str | None, possible: bool, reason: str
) -> None:
    support = timescale.support_from_row(available, installed, preload)
    assert support.possible is possible
    assert support.reason.startswith(reason)
    assert support.version == (installed or available)
