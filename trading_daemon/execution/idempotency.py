"""The idempotency service: an operation with the same key within its TTL runs once; repeats get its result.

Results live in `idempotency_keys` (so they survive a restart) and, in front of it, in a small in-memory
cache (a repeat costs a dictionary lookup, not a round trip). `run(operation, params, fn)` claims the key
(`INSERT … ON CONFLICT DO NOTHING`), runs `fn`, stores its result with the TTL; a second caller within the
TTL gets the stored result and `fn` is not called. A claim whose operation raised is released, so that a
retry may run; a claim left `in_progress` by a crashed process is reported as such (`InProgress`) and the
caller decides from its own records (execution looks the intent's orders up).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from infra.db.repositories import IdempotencyRepository
from infra.db.repositories.idempotency import IdempotencyRecord

Result = dict[str, Any]
_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `run` did: the result, and whether it was a repeat served from the store."""

    result: Result
    cached: bool


class InProgress(Exception):
    """The key is claimed by an operation that has not finished (running now, or its process died)."""

    def __init__(self, record: IdempotencyRecord) -> None:
        self.record = record
        super().__init__(f"operation {record.operation!r} with key {record.key!r} is in progress")


class KeyReused(Exception):
    """The same key arrived with different parameters: a caller's bug, refused."""


def canonical(params: Mapping[str, Any]) -> bytes:
    """Parameters as canonical JSON (sorted keys, Decimals as exact strings)."""
    return msgspec.json.encode(msgspec.to_builtins(dict(params), builtin_types=None), order="sorted")


class IdempotencyService:
    """Runs operations at most once per key within `ttl_s` (IDEMPOTENCY_TTL_MINUTES)."""

    def __init__(
        self, repo: IdempotencyRepository, *, ttl_s: int, clock: Callable[[], float] = time.monotonic
    ):
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.repo = repo
        self.ttl_s = ttl_s
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, str | None, Result]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def generate_idempotency_key(operation: str, params: Mapping[str, Any]) -> str:
        """`operation:` + SHA-256 of the canonical parameters (the original spec's hash-based keys)."""
        return f"{operation}:{hashlib.sha256(canonical(params)).hexdigest()[:40]}"

    @staticmethod
    def request_hash(params: Mapping[str, Any]) -> str:
        return hashlib.sha256(canonical(params)).hexdigest()

    def cached(self, key: str) -> Result | None:
        """The result of `key` from memory, if it is there and unexpired."""
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._cache[key]
            return None
        return entry[2]

    async def get_operation_result(self, key: str) -> Result | None:
        """The stored result of `key` (memory, then the database), if unexpired and completed."""
        hit = self.cached(key)
        if hit is not None:
            return hit
        record = await self.repo.get(key)
        if record is None or record.status == "in_progress":
            return None
        return dict(record.result or {})

    async def run(
        self,
        operation: str,
        key: str,
        params: Mapping[str, Any],
        fn: Callable[[], Awaitable[Result]],
    ) -> Outcome:
        """Run `fn` once for `key`; within the TTL a repeat returns the first result without calling it.

        Raises `KeyReused` when `key` was first used with other `params`, `InProgress` when its first
        operation has not finished.
        """
        digest = self.request_hash(params)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self.clock():
            if hit[1] is not None and hit[1] != digest:
                raise KeyReused(f"{operation} key {key!r} reused with different parameters")
            self.hits += 1
            return Outcome(hit[2], True)
        claimed, record = await self.repo.claim(key, operation, ttl_s=self.ttl_s, request_hash=digest)
        if not claimed:
            if record.request_hash is not None and record.request_hash != digest:
                raise KeyReused(f"{operation} key {key!r} reused with different parameters")
            if record.status == "in_progress":
                raise InProgress(record)
            self.hits += 1
            result = dict(record.result or {})
            self._remember(key, digest, result)
            return Outcome(result, True)
        self.misses += 1
        try:
            result = await fn()
        except BaseException:
            await self.repo.release(key)
            raise
        await self.repo.complete(key, result)
        self._remember(key, digest, result)
        return Outcome(result, False)

    async def save_operation_result(
        self, operation: str, key: str, result: Result, *, ttl_s: int | None = None
    ) -> None:
        """Store a result for `key` directly (the original spec's `save_operation_result`)."""
        claimed, _ = await self.repo.claim(key, operation, ttl_s=ttl_s or self.ttl_s)
        if claimed:
            await self.repo.complete(key, result)
        self._remember(key, None, result)

    async def cleanup_expired(self) -> int:
        """Delete expired keys from the store and the cache; returns how many rows went."""
        now = self.clock()
        for key in [k for k, v in self._cache.items() if v[0] <= now]:
            del self._cache[key]
        return await self.repo.purge_expired()

    def _remember(self, key: str, digest: str | None, result: Result) -> None:
        self._cache[key] = (self.clock() + self.ttl_s, digest, result)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
