"""Errors of the storage layer. Each names what was wrong; none is a bare driver traceback."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by infra.db."""


class DatabaseUnavailable(StorageError):
    """The database could not be reached or started."""


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


class DuplicateKey(StorageError):
    """A row with the same unique key (client order id, exec id, version...) already exists."""


class AuditChainBroken(StorageError):
    """`audit verify` found rows whose hash chain does not hold."""


class PromotionConflict(StorageError):
    """Another model version became production since the caller read the production model."""

    def __init__(self, expected: str | None, actual: str | None) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(
            f"production model moved: expected {expected!r}, found {actual!r}; re-evaluate against the new one"
        )
