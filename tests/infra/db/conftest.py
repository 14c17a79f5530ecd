"""Servers with a stand-in TimescaleDB (see timescale_stub): one where the extension is installed but not
preloaded, one where it is preloaded. Each is built from the pgserver wheel's PostgreSQL 16 and, where the
machine has one, from its own PostgreSQL (15 here); the real installs are never written to."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from infra.db.connection import Database
from tests.infra.db.timescale_stub import (
    PgInstall,
    StubCluster,
    pgserver_install,
    stage_install,
    system_install,
)


@pytest.fixture(scope="session", params=("pgserver", "system"))
def timescale_install(request: pytest.FixtureRequest) -> Iterator[tuple[PgInstall, PgInstall]]:
    """(the original install, its staged mirror with the stand-in timescaledb)."""
    source = pgserver_install() if request.param == "pgserver" else system_install()
    if source is None:
        pytest.skip("this machine has no PostgreSQL server of its own in /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="dc-tsi-"))
    root.chmod(0o755)  # the server may run as another user (pgserver's, under root)
    yield source, stage_install(source, root / "install")
    shutil.rmtree(root, ignore_errors=True)


def _cluster(install: tuple[PgInstall, PgInstall], *, preload: bool) -> Iterator[Database]:
    cluster = StubCluster(*install, preload=preload)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def timescale_unloaded(timescale_install: tuple[PgInstall, PgInstall]) -> Iterator[Database]:
    """A server with timescaledb installed but not in shared_preload_libraries."""
    yield from _cluster(timescale_install, preload=False)


@pytest.fixture(scope="session")
def timescale_preloaded(timescale_install: tuple[PgInstall, PgInstall]) -> Iterator[Database]:
    """A server with timescaledb installed and preloaded."""
    yield from _cluster(timescale_install, preload=True)


def _fresh_database(server: Database) -> Iterator[Database]:
    name = f"dc_tsdb_{uuid.uuid4().hex[:12]}"
    with server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield server.with_dbname(name)
    with server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def unloaded_db(timescale_unloaded: Database) -> Iterator[Database]:
    """A new database on the server where timescaledb is installed but not preloaded."""
    yield from _fresh_database(timescale_unloaded)


@pytest.fixture
def preloaded_db(timescale_preloaded: Database) -> Iterator[Database]:
    """A new database on the server where timescaledb is preloaded."""
    yield from _fresh_database(timescale_preloaded)
