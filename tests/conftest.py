"""Shared fixtures: real PostgreSQL servers, per-test databases cloned from a migrated template.

Storage tests run against the embedded server (pgserver, PostgreSQL 16) and once more against
TEST_DATABASE_URL when it is set (this machine's PostgreSQL 15), in databases the tests create and drop.
Tests marked `slow` (whole daemons, crash trials, Dagster runs) exercise processes, not SQL dialects: they
run against the embedded server only, unless SLOW_TESTS_ON_ALL_SERVERS=1 — the storage tests already cover
both servers, and running every end-to-end test twice would double the suite's time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from infra.db import migrate
from infra.db.connection import Database, normalise_url
from infra.db.embedded import EmbeddedPostgres

SERVERS = ("embedded", "external")
# A daemon a test starts serves no API unless the test is about the API (those set API_ENABLED=true), and
# then on a free port: never the operator's 8000, never two alike.
os.environ.setdefault("API_ENABLED", "false")
os.environ.setdefault("API_PORT", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SLOW_TESTS_ON_ALL_SERVERS") != "1":
        kept, dropped = [], []
        for item in items:
            callspec = getattr(item, "callspec", None)
            on_external = callspec is not None and callspec.params.get("pg_server") == "external"
            (dropped if on_external and item.get_closest_marker("slow") else kept).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    _longest_modules_first(items)


SLOW_DEFAULT_S = 10.0


def _longest_modules_first(items: list[pytest.Item]) -> None:
    """Order modules by their longest test, longest first (`@pytest.mark.slow(seconds=…)`; `slow` alone
    counts SLOW_DEFAULT_S), keeping each module's tests in order. `make test` runs the suite on every
    core with pytest-xdist, a module per worker at a time, in this order (--no-loadscope-reorder): a
    five-minute module handed out last would leave the other workers idle while it runs alone."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    longest: dict[str, float] = {}
    for item in items:
        marker = item.get_closest_marker("slow")
        seconds = 0.0 if marker is None else float(marker.kwargs.get("seconds", SLOW_DEFAULT_S))
        longest[module(item)] = max(longest.get(module(item), 0.0), seconds)
    items.sort(key=lambda item: -longest[module(item)])


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedPostgres]:
    # A short path: the server's Unix socket lives in its data directory (107-byte limit).
    root = Path(tempfile.mkdtemp(prefix="dc-pg-"))
    server = EmbeddedPostgres(root / "pg").start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", params=SERVERS)
def pg_server(request: pytest.FixtureRequest) -> Database:
    """The `postgres` maintenance database of each server under test."""
    if request.param == "embedded":
        server = request.getfixturevalue("embedded_server")
        return Database(server.uri("postgres"), "embedded", server)
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: no external PostgreSQL to run against")
    return Database(normalise_url(url), "TEST_DATABASE_URL")


def create_database(server: Database, name: str, template: str | None = None) -> Database:
    with server.connect(autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        conn.execute(query)
    return server.with_dbname(name)


def drop_database(server: Database, name: str) -> None:
    with server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_db(pg_server: Database) -> Iterator[Database]:
    """A new, unmigrated database, dropped after the test."""
    name = f"dc_test_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server, name)
    drop_database(pg_server, name)


@pytest.fixture(scope="session")
def migrated_template(pg_server: Database) -> Iterator[str]:
    name = f"dc_template_{uuid.uuid4().hex[:8]}"
    migrate.upgrade(create_database(pg_server, name), retention_days=30)
    yield name
    drop_database(pg_server, name)


@pytest.fixture
def db(pg_server: Database, migrated_template: str) -> Iterator[Database]:
    """A migrated database of its own for each test (a copy of the template: fast, isolated)."""
    name = f"dc_test_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server, name, template=migrated_template)
    drop_database(pg_server, name)


@pytest.fixture
async def pool(db: Database) -> AsyncIterator[AsyncConnectionPool]:
    p = await db.open_pool(min_size=1, max_size=4)
    yield p
    await p.close()
