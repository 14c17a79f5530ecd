"""TimescaleDB: whether a server can give the market-data tables hypertables, and how big they are.

TimescaleDB's library must be in `shared_preload_libraries`. When it is installed but not preloaded (the
package installed, its tuning step skipped), `CREATE EXTENSION timescaledb` does not fail with an ERROR a
savepoint could roll back: the library raises FATAL `extension "timescaledb" must be preloaded` and the
server ends the session, taking the migration's transaction with it. So the migration asks first:

1. `SUPPORT_SQL` (decided by `support_from_row`): is the extension on the server, and, where the role may
   read it (superusers, `pg_read_all_settings`), does `shared_preload_libraries` name it?
2. If that does not rule it out, `try_create` creates the extension on a connection of its own and rolls
   it back, so that a FATAL of any kind ends that session, not the migration's.
3. Only then does the migration create it, still in a savepoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.rows import tuple_row

# The first release with `by_range()` and the generalised `create_hypertable(relation, dimension)`;
# older 2.x releases get the (since deprecated) `create_hypertable(relation, time_column, ...)`.
GENERALISED_API = (2, 13)
MINIMUM_VERSION = (2, 0)  # compression and retention policies as used here

SUPPORT_SQL = """
SELECT (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
       -- pg_settings leaves the row out (NULL here) for roles that may not read the setting
       (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload
"""


@dataclass(frozen=True)
class TimescaleSupport:
    """What the server's settings say about TimescaleDB here."""

    possible: bool  # False: the extension must not be tried; True: try it (try_create) before relying on it
    version: str | None  # installed in this database, else the server's default version
    reason: str  # why not, when not possible


def version_tuple(version: str) -> tuple[int, ...]:
    """`2.17.2` -> (2, 17, 2); a suffix such as `-dev` is ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-")[0])[:3])


def preloaded(shared_preload_libraries: str) -> bool:
    """Whether the `shared_preload_libraries` setting names the timescaledb library."""
    for entry in shared_preload_libraries.split(","):
        name = entry.strip().strip('"').rsplit("/", 1)[-1].removesuffix(".so")
        if name == "timescaledb":
            return True
    return False


def support_from_row(available: str | None, installed: str | None, preload: str | None) -> TimescaleSupport:
    """Decide from what `SUPPORT_SQL` returns."""
    version = installed or available
    if version is None:
        return TimescaleSupport(False, None, "the server has no timescaledb extension")
    if preload is not None and not preloaded(preload):
        setting = f"it is {preload!r}" if preload else "it is empty"
        return TimescaleSupport(
            False,
            version,
            f"timescaledb {version} is installed on the server but not in shared_preload_libraries "
            f"({setting}); creating the extension would end the session. Add it, restart PostgreSQL, "
            "and migrate a new database to get hypertables",
        )
    if version_tuple(version) < MINIMUM_VERSION:
        return TimescaleSupport(False, version, f"timescaledb {version} is older than 2.0")
    return TimescaleSupport(True, version, "")


def check_support(conn: Connection[Any]) -> TimescaleSupport:
    """What the settings say on this connection's server and database now."""
    row = conn.cursor(row_factory=tuple_row).execute(SUPPORT_SQL).fetchone()
    assert row is not None
    return support_from_row(*row)


def try_create(conn: Connection[Any]) -> str:
    """Create the extension in a transaction of `conn` and roll it back: "" when that works, else why not.

    Give it a connection of its own: when the library cannot load, the server ends that session.
    """
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            raise psycopg.Rollback()
    except psycopg.Error as exc:
        detail = first_line(exc)
        if conn.closed or conn.broken:
            return f"CREATE EXTENSION timescaledb ends the session ({detail})"
        return f"CREATE EXTENSION timescaledb failed: {detail}"
    return ""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (the server's DETAIL, HINT and CONTEXT follow it)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass(frozen=True)
class HypertableSize:
    """A hypertable's size as TimescaleDB reports it: all chunks, compressed ones at their compressed size."""

    total_bytes: int
    total_chunks: int | None = None
    compressed_chunks: int | None = None
    before_compression_bytes: int | None = None  # of the compressed chunks
    after_compression_bytes: int | None = None


def hypertable_size(conn: Connection[Any], table: str) -> HypertableSize:
    """`hypertable_size()` and `hypertable_compression_stats()` of `table`.

    The parent table of a hypertable holds no rows (they live in its chunks), so
    `pg_total_relation_size()` of it stays at a few pages however much the hypertable holds.
    """
    cur = conn.cursor(row_factory=tuple_row)
    size = cur.execute("SELECT hypertable_size(%s::regclass)", (table,)).fetchone()
    total = size[0] if size is not None and size[0] is not None else 0
    # One row per data node (none while the hypertable has no chunk or compression is off), summed.
    stats = cur.execute(
        """SELECT sum(total_chunks)::bigint, sum(number_compressed_chunks)::bigint,
                  sum(before_compression_total_bytes)::bigint, sum(after_compression_total_bytes)::bigint
             FROM hypertable_compression_stats(%s::regclass)""",
        (table,),
    ).fetchone()
    chunks, compressed, before, after = (int(v) if v is not None else None for v in stats or (None,) * 4)
    return HypertableSize(int(total), chunks, compressed, before, after)
