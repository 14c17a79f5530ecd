"""Opening the project's database from the CLI, with the embedded server released on exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from infra.db.connection import Database, open_database
from infra.settings import Settings, load_settings


@contextlib.contextmanager
def database(settings: Settings | None = None) -> Iterator[Database]:
    db = open_database((settings or load_settings()).database)
    try:
        yield db
    finally:
        db.close()
