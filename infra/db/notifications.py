"""LISTEN on a Postgres channel from asyncio, on a dedicated connection, with driver errors translated.

The daemon's ML gate hot-swaps its model on `NOTIFY model_promoted`
(`infra.db.repositories.model_versions.PROMOTION_CHANNEL`). A notification is delivered only to sessions
listening when it is sent, so a listener that reconnects must re-read the state it follows (the caller's
`on_listening` hook runs once LISTEN is active, before any payload is yielded).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
from psycopg import sql

from infra.db.connection import Database
from infra.db.errors import storage_errors


async def listen(
    db: Database,
    channel: str,
    *,
    on_listening: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[str]:
    """Yield the payload of every notification on `channel` until the connection fails or the caller stops.

    Connection and server errors leave as `infra.db.errors` types (`DatabaseUnavailable` when the server
    goes away); the caller decides whether to listen again (after re-reading what it follows).
    """
    with storage_errors():
        conn = await psycopg.AsyncConnection.connect(
            db.conninfo, autocommit=True, connect_timeout=db.connect_timeout_s
        )
    try:
        with storage_errors():
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        if on_listening is not None:
            await on_listening()
        while True:
            with storage_errors():
                # The first notification ends the wait at once; a bounded wait, so that a connection that
                # died silently is noticed by the next round trip.
                batch = [n.payload async for n in conn.notifies(timeout=30.0, stop_after=1)]
                if not batch:
                    await conn.execute("SELECT 1")
            for payload in batch:
                yield payload
    finally:
        with storage_errors():
            await conn.close()
