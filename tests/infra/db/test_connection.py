from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest
from psycopg_pool import PoolTimeout

from infra.db.connection import Database, normalise_url, open_database, redact
from infra.db.errors import DatabaseUnavailable
from infra.settings import load_settings

UNREACHABLE = "postgresql://postgres:s3cret@127.0.0.1:1/depthcharge"


def test_unreachable_database_url_raises_clear_error() -> None:
    db = open_database(load_settings(DATABASE_URL=UNREACHABLE, DB_CONNECT_TIMEOUT_S=2).database)
    with pytest.raises(DatabaseUnavailable) as info:
        db.connect()
    message = str(info.value)
    assert "127.0.0.1:1/depthcharge" in message and "DATABASE_URL" in message
    assert "s3cret" not in message


async def test_unreachable_pool_raises_clear_error() -> None:
    db = Database(UNREACHABLE, "DATABASE_URL", connect_timeout_s=1)
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        await db.open_pool()


def test_cli_reports_unreachable_database_without_traceback() -> None:
    env = {**os.environ, "DATABASE_URL": UNREACHABLE, "DB_CONNECT_TIMEOUT_S": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "depthcharge", "db", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Transient, not a configuration error: 1, so that systemd restarts a daemon whose database was down.
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "error: cannot connect to the database at postgresql://postgres@127.0.0.1:1/"
    )
    assert "Traceback" not in proc.stderr
    assert "s3cret" not in proc.stderr


def test_bad_url_scheme_is_named() -> None:
    with pytest.raises(DatabaseUnavailable, match="postgresql:// URL, got scheme 'mysql'"):
        normalise_url("mysql://root@localhost/x")


def test_sqlalchemy_scheme_accepted_and_password_redacted() -> None:
    url = normalise_url("postgresql+psycopg://u:pw@db.example:6543/app")
    assert url == "postgresql://u:pw@db.example:6543/app"
    assert redact(url) == "postgresql://u@db.example:6543/app"


async def test_pool_sizes_come_from_the_settings(db: Database) -> None:
    """DB_POOL_MIN_SIZE connections are open once the pool is; a DB_POOL_MAX_SIZE+1st caller waits."""
    settings = load_settings(
        _env_file=None, DATABASE_URL=db.conninfo, DB_POOL_MIN_SIZE="3", DB_POOL_MAX_SIZE="4"
    )
    configured = open_database(settings.database)
    pool = await configured.open_pool()
    try:
        stats = pool.get_stats()
        assert (stats["pool_min"], stats["pool_max"], stats["pool_size"]) == (3, 4, 3)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(4):
                await held.enter_async_context(pool.connection(timeout=5))
            with pytest.raises(PoolTimeout):
                async with pool.connection(timeout=0.5):
                    pass
    finally:
        await pool.close()
