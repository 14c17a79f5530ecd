"""Driver exceptions become `infra.db.errors` types in one place (`storage_errors`), with a `transient`
flag: each case provokes the real error on a real server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import psycopg
import psycopg_pool
import pytest
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.errors import (
    ConstraintViolation,
    DatabaseUnavailable,
    DuplicateKey,
    InvalidData,
    MissingReference,
    NotFound,
    QueryError,
    QueryInterrupted,
    StorageError,
    storage_error_for,
    storage_errors,
)
from infra.db.repositories import MarketDataRepository
from testkit.rows import trades

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/depthcharge"

Conn = psycopg.Connection[Any]


@contextmanager
def _raises(kind: type[StorageError], driver: type[psycopg.Error]) -> Iterator[pytest.ExceptionInfo[Any]]:
    """The block raises exactly `kind` (translated by `storage_errors`) caused by a `driver` exception."""
    with pytest.raises(StorageError) as info, storage_errors():
        yield info
    assert type(info.value) is kind, repr(info.value)
    assert isinstance(info.value.__cause__, driver), repr(info.value.__cause__)
    assert type(info.value.__cause__).__name__ in str(info.value)  # the text names what the server said


def _table(conn: Conn) -> None:
    conn.execute(
        "CREATE TABLE t (id int PRIMARY KEY, qty int NOT NULL CHECK (qty > 0), parent int REFERENCES t)"
    )
    conn.execute("INSERT INTO t VALUES (1, 5, NULL)")


Case = tuple[str, Callable[[Conn], object], type[StorageError], type[psycopg.Error]]

CASES: list[Case] = [
    ("unique", lambda c: c.execute("INSERT INTO t VALUES (1, 5, NULL)"), DuplicateKey, psycopg.errors.UniqueViolation),
    ("foreign-key", lambda c: c.execute("INSERT INTO t VALUES (2, 5, 99)"), MissingReference,
     psycopg.errors.ForeignKeyViolation),
    ("check", lambda c: c.execute("INSERT INTO t VALUES (3, -1, NULL)"), ConstraintViolation,
     psycopg.errors.CheckViolation),
    ("not-null", lambda c: c.execute("INSERT INTO t VALUES (4, NULL, NULL)"), ConstraintViolation,
     psycopg.errors.NotNullViolation),
    ("bad-text", lambda c: c.execute("SELECT 'abc'::int"), InvalidData, psycopg.errors.InvalidTextRepresentation),
    ("out-of-range", lambda c: c.execute("SELECT 40000::int2"), InvalidData, psycopg.errors.NumericValueOutOfRange),
    ("undefined-table", lambda c: c.execute("SELECT * FROM no_such_table"), QueryError,
     psycopg.errors.UndefinedTable),
    ("syntax", lambda c: c.execute("SELEC 1"), QueryError, psycopg.errors.SyntaxError),
    ("statement-timeout", lambda c: c.execute("SET statement_timeout = '50ms'; SELECT pg_sleep(5)"),
     QueryInterrupted, psycopg.errors.QueryCanceled),
]  # fmt: skip


@pytest.mark.parametrize(("name", "provoke", "kind", "driver"), CASES, ids=[c[0] for c in CASES])
def test_server_errors_map_to_storage_types(
    db: Database,
    name: str,
    provoke: Callable[[Conn], object],
    kind: type[StorageError],
    driver: type[psycopg.Error],
) -> None:
    with db.connect(autocommit=True) as conn:
        _table(conn)
        with _raises(kind, driver):
            provoke(conn)
    assert kind.transient is (kind is QueryInterrupted)


def test_connection_refused_is_unavailable() -> None:
    with _raises(DatabaseUnavailable, psycopg.OperationalError) as info:
        psycopg.connect(UNREACHABLE, connect_timeout=2)
    assert info.value.transient


def test_connection_killed_by_the_server_and_closed_locally_are_unavailable(db: Database) -> None:
    with db.connect(autocommit=True) as victim, db.connect(autocommit=True) as admin:
        pid = victim.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with _raises(DatabaseUnavailable, psycopg.OperationalError):
            victim.execute("SELECT 1")
    closed = db.connect()
    closed.close()
    with _raises(DatabaseUnavailable, psycopg.OperationalError):
        closed.execute("SELECT 1")


def test_serialization_failure_is_interrupted(db: Database) -> None:
    with db.connect(autocommit=True) as setup:
        _table(setup)
    with db.connect() as first, db.connect() as second:
        first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert first.execute("SELECT qty FROM t WHERE id = 1").fetchone() == (5,)
        second.execute("UPDATE t SET qty = 6 WHERE id = 1")
        second.commit()
        with _raises(QueryInterrupted, psycopg.errors.SerializationFailure) as info:
            first.execute("UPDATE t SET qty = 7 WHERE id = 1")
        assert info.value.transient


def test_deadlock_is_interrupted(db: Database) -> None:
    with db.connect(autocommit=True) as setup:
        _table(setup)
        setup.execute("INSERT INTO t VALUES (2, 5, NULL)")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def lock(first: int, second: int) -> None:
        with db.connect() as conn:
            conn.execute("UPDATE t SET qty = qty + 1 WHERE id = %s", (first,))
            barrier.wait()
            try:
                with storage_errors():
                    conn.execute("UPDATE t SET qty = qty + 1 WHERE id = %s", (second,))
            except StorageError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=lock, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    (error,) = errors  # the server broke the cycle by failing one of the two
    assert type(error) is QueryInterrupted and isinstance(error.__cause__, psycopg.errors.DeadlockDetected)


def test_lock_timeout_is_interrupted(db: Database) -> None:
    with db.connect(autocommit=True) as setup:
        _table(setup)
    with db.connect() as holder, db.connect() as waiter:
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        waiter.execute("SET lock_timeout = '50ms'")
        with _raises(QueryInterrupted, psycopg.errors.LockNotAvailable):
            waiter.execute("SELECT * FROM t")


def test_the_append_only_audit_trigger_is_a_query_error(db: Database) -> None:
    with db.connect(autocommit=True) as conn, _raises(QueryError, psycopg.errors.InsufficientPrivilege):
        conn.execute("TRUNCATE audit_log")  # a statement trigger: fires on an empty table too


def test_callers_name_their_entity_and_other_exceptions_pass_unchanged() -> None:
    unique = storage_error_for(psycopg.errors.UniqueViolation("dup"), duplicate="order 'x' exists")
    assert type(unique) is DuplicateKey and str(unique) == "order 'x' exists"
    missing = storage_error_for(psycopg.errors.ForeignKeyViolation("fk"), missing_reference="no parent 'p'")
    assert isinstance(missing, NotFound) and str(missing) == "no parent 'p'"
    assert type(storage_error_for(psycopg.errors.InFailedSqlTransaction("x"))) is StorageError
    with pytest.raises(KeyError), storage_errors():
        raise KeyError("not the driver's")
    own = NotFound("already ours")
    with pytest.raises(NotFound) as info, storage_errors():
        raise own
    assert info.value is own


async def test_repositories_raise_storage_types_only(pool: AsyncConnectionPool) -> None:
    """Through a repository: an unreachable pool and a refused row (the model repository's duplicate and
    missing parent are in test_model_versions_idempotency.py, the orders' and positions' duplicates in
    test_orders.py and test_positions_fills.py)."""
    unreachable = AsyncConnectionPool(
        UNREACHABLE, min_size=0, max_size=1, open=False, timeout=0.5, reconnect_timeout=1
    )
    await unreachable.open(wait=False)
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await MarketDataRepository(unreachable).ingest_trades(trades(3))
        assert info.value.transient and isinstance(info.value.__cause__, psycopg_pool.PoolTimeout)
    finally:
        await unreachable.close()
    sideways = [msgspec.structs.replace(t, side="Sideways") for t in trades(2)]
    with pytest.raises(InvalidData, match="Sideways") as refused:
        await MarketDataRepository(pool).ingest_trades(sideways)
    assert not refused.value.transient
