"""Where the database is, and how to connect to it: sync connections for Dagster and the CLI,
an async pool for the daemon.

With DATABASE_URL the project uses that server; without it, the embedded server in `var/pg`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from infra.db.embedded import EmbeddedPostgres
from infra.db.errors import DatabaseUnavailable
from infra.settings import Settings

APP_DATABASE = "depthcharge"
DAGSTER_DATABASE = "dagster"


def redact(conninfo: str) -> str:
    """The connection target without its password, for messages and logs."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparseable connection string>"
    params.pop("password", None)
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    where = f"{host}:{port}" if not str(host).startswith("/") else f"socket {host}"
    return f"postgresql://{params.get('user', '')}@{where}/{params.get('dbname', '')}"


def normalise_url(url: str) -> str:
    """Accept a postgresql:// URL (SQLAlchemy-style `postgresql+driver://` too) or a libpq
    `key=value` string, and return what libpq takes."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise DatabaseUnavailable(
                f"DATABASE_URL is neither a postgresql:// URL nor a conninfo: {exc}"
            ) from None
        return url
    if not scheme.startswith(("postgresql", "postgres")):
        raise DatabaseUnavailable(f"DATABASE_URL must be a postgresql:// URL, got scheme {scheme!r}")
    return f"postgresql://{rest}"


@dataclass
class Database:
    """A resolved database: its conninfo, and the embedded server behind it if there is one."""

    conninfo: str
    source: str  # "DATABASE_URL", "TEST_DATABASE_URL" or "embedded"
    embedded: EmbeddedPostgres | None = None
    connect_timeout_s: int = 5

    @property
    def redacted(self) -> str:
        return redact(self.conninfo)

    @property
    def dbname(self) -> str:
        return str(conninfo_to_dict(self.conninfo).get("dbname", ""))

    def with_dbname(self, dbname: str) -> Database:
        """The same server, another database on it."""
        return Database(
            make_conninfo(self.conninfo, dbname=dbname), self.source, self.embedded, self.connect_timeout_s
        )

    def connect(self, *, autocommit: bool = False, dict_rows: bool = False) -> psycopg.Connection[Any]:
        """A sync connection, or DatabaseUnavailable naming the target and the reason."""
        try:
            return psycopg.connect(
                self.conninfo,
                autocommit=autocommit,
                connect_timeout=self.connect_timeout_s,
                row_factory=dict_row if dict_rows else psycopg.rows.tuple_row,
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(self._unreachable(exc)) from None

    @contextlib.contextmanager
    def session(self) -> Iterator[psycopg.Connection[Any]]:
        """A sync connection in a transaction: committed on success, rolled back on error, then closed."""
        conn = self.connect()
        try:
            with conn.transaction():
                yield conn
        finally:
            conn.close()

    async def open_pool(self, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
        """An opened async pool; the first connection is made before returning, so a bad target fails here."""
        pool = AsyncConnectionPool(
            self.conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"connect_timeout": self.connect_timeout_s},
            name=f"depthcharge-{self.dbname}",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout_s + 5)
        except Exception as exc:
            await pool.close()
            raise DatabaseUnavailable(self._unreachable(exc)) from None
        return pool

    def _unreachable(self, exc: BaseException) -> str:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"cannot connect to the database at {self.redacted} (from {self.source}): {reason}"

    def ensure_database(self) -> None:
        """Create this database on its server if missing (the embedded server starts with `postgres` only)."""
        admin = self.with_dbname("postgres")
        with admin.connect(autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone()
            if not exists:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(self.dbname))
                )

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def open_database(settings: Settings, *, dbname: str = APP_DATABASE) -> Database:
    """Resolve the project's database: DATABASE_URL if set, else start the embedded server."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        return Database(normalise_url(url), "DATABASE_URL", connect_timeout_s=settings.db_connect_timeout_s)
    embedded = EmbeddedPostgres(Path(settings.pg_dir)).start()
    db = Database(embedded.uri(dbname), "embedded", embedded, settings.db_connect_timeout_s)
    db.ensure_database()
    return db


def dagster_postgres_url(db: Database) -> str:
    """The URL dagster-postgres wants: psycopg2 scheme (psycopg 3 breaks its NOTIFY), socket dir as host."""
    params = conninfo_to_dict(db.with_dbname(DAGSTER_DATABASE).conninfo)
    user = params.get("user", "postgres")
    password = quote(str(params.get("password", "")), safe="")
    host = str(params.get("host", "localhost"))
    port = params.get("port")
    if host.startswith("/"):
        return f"postgresql+psycopg2://{user}:{password}@/{DAGSTER_DATABASE}?host={host}"
    return (
        f"postgresql+psycopg2://{user}:{password}@{host}{':' + str(port) if port else ''}/{DAGSTER_DATABASE}"
    )
