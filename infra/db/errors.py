"""Errors of the storage layer. Each names what was wrong; none is a bare driver traceback.

Driver exceptions become these types in ONE place, :func:`storage_errors` (a context manager, as httpx's
``map_httpcore_exceptions``), which every repository wraps around its database work; callers never see a
psycopg type. Each type says by its ``transient`` flag whether running the same work again later may
succeed (the database was unreachable, or the server interrupted the statement) or not (the data or the
SQL is wrong)::

    StorageError                 transient  psycopg source
    ├── DatabaseUnavailable      yes        cannot connect, connection lost or closed, pool timeout, server
    │                                       shutting down or starting up, too many connections, disk full
    ├── QueryInterrupted         yes        serialization failure, deadlock, lock not available, statement
    │                                       cancelled or timed out
    ├── ConstraintViolation      no         check, not-null, exclusion constraint
    │   ├── DuplicateKey         no         unique violation
    │   └── MissingReference     no         foreign key violation (also a NotFound)
    ├── InvalidData              no         a value the server refuses (out of range, bad text, encoding)
    ├── QueryError               no         the SQL does not fit the database: undefined table or column,
    │                                       syntax, privileges (a bug, or a database not migrated)
    ├── NotFound                 no         (raised by repositories)
    ├── VersionConflict          no         (optimistic locking: re-read, then decide)
    ├── PromotionConflict        no
    ├── MigrationError           no
    └── AuditChainBroken         no

Any other driver error becomes a plain ``StorageError`` (not transient). What the daemon does about each
is decided in ``trading_daemon.errors.classify``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import errors as pg


class StorageError(Exception):
    """Base class of every error raised by infra.db. `transient`: the same work may succeed later."""

    transient: bool = False


class DatabaseUnavailable(StorageError):
    """The database could not be reached or started, or the connection was lost: retry later.

    A connection lost during COMMIT leaves the outcome unknown; every write of the repositories is keyed
    (a replay meets `DuplicateKey` or is skipped), so retrying is safe.
    """

    transient = True


class QueryInterrupted(StorageError):
    """The server rolled back or cancelled the statement (serialization failure, deadlock, lock or
    statement timeout); running the transaction again may succeed."""

    transient = True


class ConstraintViolation(StorageError):
    """The data breaks a constraint of the table (check, not-null, exclusion)."""


class InvalidData(StorageError):
    """The server refused a value (numeric out of range, invalid text representation, bad encoding)."""


class QueryError(StorageError):
    """The SQL does not fit the database (undefined table or column, syntax, privileges): a bug or an
    unmigrated database; retrying cannot help."""


class MigrationError(StorageError):
    """A migration could not be applied or reverted."""


class NotFound(StorageError):
    """The requested row does not exist."""


class VersionConflict(StorageError):
    """An optimistic-locking update found the row at another version than the caller read."""

    def __init__(self, entity: str, key: object, expected: int, actual: int | None) -> None:
        self.entity, self.key, self.expected, self.actual = entity, key, expected, actual
        super().__init__(
            f"{entity} {key!r} moved: expected version {expected}, found version {actual}; "
            "re-read it and retry"
        )


class DuplicateKey(ConstraintViolation):
    """A row with the same unique key (client order id, exec id, version...) already exists."""


class MissingReference(ConstraintViolation, NotFound):
    """A row refers to one that does not exist (a foreign key)."""


class AuditChainBroken(StorageError):
    """`audit verify` found rows whose hash chain does not hold."""


class PromotionConflict(StorageError):
    """Another model version became production since the caller read the production model."""

    def __init__(self, expected: str | None, actual: str | None) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(
            f"production model moved: expected {expected!r}, found {actual!r}; re-evaluate against the new one"
        )


# SQLSTATE class 40 (transaction rollback: serialization failure, deadlock, …). psycopg's classes of it
# do not derive from one another (SerializationFailure is no TransactionRollback), so the class is
# matched by its code.
_TRANSACTION_ROLLBACK_CLASS = "40"

# The most specific driver class first: DuplicateKey before ConstraintViolation, the interruptions
# before the rest of OperationalError (psycopg files them all under OperationalError).
_BY_DRIVER_TYPE: tuple[tuple[type[psycopg.Error], type[StorageError]], ...] = (
    (pg.UniqueViolation, DuplicateKey),
    (pg.ForeignKeyViolation, MissingReference),
    (psycopg.IntegrityError, ConstraintViolation),
    (psycopg.DataError, InvalidData),
    (pg.QueryCanceled, QueryInterrupted),  # statement_timeout, pg_cancel_backend
    (pg.LockNotAvailable, QueryInterrupted),  # lock_timeout, NOWAIT
    (psycopg.OperationalError, DatabaseUnavailable),  # connection failures, pool timeout, shutdown
    (psycopg.InterfaceError, DatabaseUnavailable),  # the connection is closed or broken
    (psycopg.ProgrammingError, QueryError),
)


def storage_error_for(
    exc: psycopg.Error, *, duplicate: str | None = None, missing_reference: str | None = None
) -> StorageError:
    """The `StorageError` for a driver exception; `duplicate` / `missing_reference` replace the text of a
    unique / foreign-key violation with one that names the caller's entity."""
    cls: type[StorageError] = StorageError
    if (exc.sqlstate or "").startswith(_TRANSACTION_ROLLBACK_CLASS):
        cls = QueryInterrupted
    else:
        for driver_type, mapped in _BY_DRIVER_TYPE:
            if isinstance(exc, driver_type):
                cls = mapped
                break
    if cls is DuplicateKey and duplicate is not None:
        return DuplicateKey(duplicate)
    if cls is MissingReference and missing_reference is not None:
        return MissingReference(missing_reference)
    return cls(_describe(exc))


@contextlib.contextmanager
def storage_errors(*, duplicate: str | None = None, missing_reference: str | None = None) -> Iterator[None]:
    """Translate psycopg (and psycopg_pool) exceptions raised in the block into `StorageError` types.

    Works around sync and async code alike (``with storage_errors(): await cur.execute(...)``). Our own
    `StorageError`s and every non-driver exception pass through unchanged; the driver exception stays
    attached as ``__cause__``.
    """
    try:
        yield
    except psycopg.Error as exc:
        raise storage_error_for(exc, duplicate=duplicate, missing_reference=missing_reference) from exc


def _describe(exc: psycopg.Error) -> str:
    sqlstate = exc.sqlstate
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}{f' [{sqlstate}]' if sqlstate else ''}: {text}"
