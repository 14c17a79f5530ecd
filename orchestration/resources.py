"""Dagster resources: thin wrappers over infra."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
from psycopg import Connection

from infra.db.connection import open_database
from infra.settings import load_settings


class DatabaseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The project database (DATABASE_URL, or the embedded server in VAR_DIR/pg)."""

    database_url: str | None = None

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        overrides = {"DATABASE_URL": self.database_url} if self.database_url else {}
        db = open_database(load_settings(**overrides))
        try:
            with db.connect(autocommit=True) as conn:
                yield conn
        finally:
            db.close()

    def retention_days(self) -> int:
        return load_settings().market_data_retention_days
