"""Where the database is, and how to connect to it: sync connections for Dagster and the CLI,
an async pool for the daemon.

With DATABASE_URL the project uses that server; without it, the embedded server in `var/pg`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from infra.db.embedded import EmbeddedPostgres
from infra.db.errors import DatabaseUnavailable
from infra.settings import DatabaseConfig, code_defaults

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
    """A resolved database: its conninfo, the embedded server behind it if there is one, and the
    connection limits of `DatabaseConfig` (`open_database` sets them; built directly, e.g. in tests,
    it takes the settings' defaults)."""

    conninfo: str
    source: str  # "DATABASE_URL", "TEST_DATABASE_URL" or "embedded"
    embedded: EmbeddedPostgres | None = None
    connect_timeout_s: int = field(default_factory=lambda: code_defaults().db_connect_timeout_s)
    pool_min_size: int = field(default_factory=lambda: code_defaults().db_pool_min_size)
    pool_max_size: int = field(default_factory=lambda: code_defaults().db_pool_max_size)

    @property
    def redacted(self) -> str:
        return redact(self.conninfo)

    @property
    def dbname(self) -> str:
        return str(conninfo_to_dict(self.conninfo).get("dbname", ""))

    def with_dbname(self, dbname: str) -> Database:
        """The same server, another database on it."""
        return dataclasses.replace(self, conninfo=make_conninfo(self.conninfo, dbname=dbname))

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

    async def open_pool(
        self, *, min_size: int | None = None, max_size: int | None = None
    ) -> AsyncConnectionPool:
        """An opened async pool of DB_POOL_MIN_SIZE..DB_POOL_MAX_SIZE connections (unless given); the
        minimum is connected before returning, so a bad target fails here."""
        pool = AsyncConnectionPool(
            self.conninfo,
            min_size=self.pool_min_size if min_size is None else min_size,
            max_size=self.pool_max_size if max_size is None else max_size,
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


def open_database(config: DatabaseConfig, *, dbname: str = APP_DATABASE) -> Database:
    """Resolve the project's database: DATABASE_URL if set, else start the embedded server."""
    if config.url is not None:
        conninfo, source, embedded = normalise_url(config.url.get_secret_value()), "DATABASE_URL", None
    else:
        embedded = EmbeddedPostgres(config.pg_dir).start()
        conninfo, source = embedded.uri(dbname), "embedded"
    db = Database(
        conninfo,
        source,
        embedded,
        connect_timeout_s=config.connect_timeout_s,
        pool_min_size=config.pool_min_size,
        pool_max_size=config.pool_max_size,
    )
    if embedded is not None:
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
