"""Dagster resources: thin wrappers over infra, configured from the environment (`dg.EnvVar`).

`definitions.py` binds every field to the environment variable of the setting it carries, so secrets
never sit in Dagster config. `depthcharge dagster` starts Dagster with all of them set from the one
settings object (DATABASE_URL to the embedded server's address when the project runs on it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
from psycopg import Connection

from infra.db.connection import Database, normalise_url


class DatabaseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The project database: its URL (DATABASE_URL), connect timeout (DB_CONNECT_TIMEOUT_S) and the
    market-data retention (MARKET_DATA_RETENTION_DAYS)."""

    database_url: str
    connect_timeout_s: int
    retention_days: int

    def database(self) -> Database:
        return Database(
            normalise_url(self.database_url), "DATABASE_URL", connect_timeout_s=self.connect_timeout_s
        )

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        """An autocommit connection, closed on exit."""
        with self.database().connect(autocommit=True) as conn:
            yield conn


def database_resource_from_env() -> DatabaseResource:
    """The resource as `definitions.py` wires it: every field read from its environment variable."""
    return DatabaseResource(
        database_url=dg.EnvVar("DATABASE_URL"),
        connect_timeout_s=dg.EnvVar.int("DB_CONNECT_TIMEOUT_S"),
        retention_days=dg.EnvVar.int("MARKET_DATA_RETENTION_DAYS"),
    )
