"""The recorder's connection pool is sized by DB_POOL_MIN_SIZE and DB_POOL_MAX_SIZE."""

from __future__ import annotations

import contextlib

import pytest
from psycopg_pool import PoolTimeout

from infra.db.connection import Database, open_database
from infra.settings import load_settings
from trading_daemon.recorder import open_recorder_pool


async def test_recorder_pool_is_sized_by_the_settings(db: Database) -> None:
    settings = load_settings(
        _env_file=None, DATABASE_URL=db.conninfo, DB_POOL_MIN_SIZE="2", DB_POOL_MAX_SIZE="5"
    )
    pool = await open_recorder_pool(open_database(settings.database))
    try:
        await pool.wait(timeout=10)  # it opens without waiting (the database may be down)
        stats = pool.get_stats()
        assert (stats["pool_min"], stats["pool_max"], stats["pool_size"]) == (2, 5, 2)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(5):
                await held.enter_async_context(pool.connection(timeout=5))
            with pytest.raises(PoolTimeout):
                async with pool.connection(timeout=0.5):
                    pass
    finally:
        await pool.close()
