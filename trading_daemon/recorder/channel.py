"""One record kind's path to the database: bounded in-memory queue → batches → `ingest_*`, or the
spool when the database is down, and the back-fill of the spool when it returns.

Order is kept per kind. Every record is handled in submit order: a batch taken from the queue is
older than anything still queued, and once anything is in the spool every later batch is appended
after it, until the back-fill has committed the spool oldest file first. Only then are batches
written directly again.

What a failed write means is the daemon's failure policy (`trading_daemon.errors.classify`; the
repository has already turned driver errors into `infra.db.errors` types): RETRY (the database is
unreachable, or interrupted the statement; a write timed out) is retried a few times with the daemon's
`Backoff`, then the database counts as down and batches go to the spool. Anything else (REJECT: the
database refuses this batch's data; FATAL: the SQL does not fit the database) is about the batch, not the
database: it is put aside in a rejected spool file, never dropped, and the writer carries on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import structlog
from tenacity import AsyncRetrying, stop_after_attempt

from trading_daemon.errors import Backoff, classify, retry_if_transient
from trading_daemon.recorder.health import DatabaseHealth
from trading_daemon.recorder.spool import Spool

log = structlog.get_logger(__name__)

T = TypeVar("T")
State = Literal["writing", "spooling", "backfilling"]
Write = Callable[[Sequence[T]], Awaitable[int]]


def database_down(exc: BaseException) -> bool:
    """Whether a failed write means "the database cannot take writes now" (spool and probe), as opposed
    to "the database refuses this batch" (put the batch aside): the policy's RETRY."""
    return classify(exc).retry


@dataclass(frozen=True)
class RecorderConfig:
    """Batching, retry, spool and probe parameters (defaults suit the daemon; tests shrink them)."""

    batch_size: int = 500
    batch_age_s: float = 0.25
    queue_size: int = 10_000
    write_timeout_s: float = 5.0
    retry_attempts: int = 3
    retry_wait_s: float = 0.05
    probe_interval_s: float = 0.5
    probe_timeout_s: float = 2.0
    segment_bytes: int = 8 << 20
    backfill_chunk: int = 2_000


class Channel(Generic[T]):
    """The queue, writer task and spool of one record kind."""

    def __init__(
        self, kind: str, write: Write[T], spool: Spool[T], health: DatabaseHealth, config: RecorderConfig
    ) -> None:
        self.kind = kind
        self._write = write
        self.spool = spool
        self._health = health
        self._cfg = config
        self._queue: deque[tuple[float, T]] = deque()
        # Chunks moved out of a full queue by submit(): older than the queue, newer than the batch in
        # hand. They wait here (in memory, briefly) only until the writer appends them to the spool,
        # because submit() runs on the hot path and must not touch the disk.
        self._overflow: deque[list[tuple[float, T]]] = deque()
        self._inflight_t: float | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._submitted = 0
        self._handled = 0  # records committed or spooled, in submit order
        self._durable = 0  # of those, records whose spool frames are fsynced (or that went to the DB)
        self._flush_waiters = 0
        self._closing = False
        self.rows_written = 0
        self.rows_duplicate = 0
        self.rows_spooled = 0
        self.rows_backfilled = 0
        self.rows_rejected = 0
        self.rows_overflowed = 0

    # ---- hot path ---------------------------------------------------------------------------------

    def submit(self, records: Sequence[T]) -> None:
        """Queue records; never blocks, never drops. A full queue is spilled whole (see _overflow)."""
        if self._closing:
            raise RuntimeError(f"recorder {self.kind} channel is closed")
        now = time.time()
        for rec in records:
            if len(self._queue) >= self._cfg.queue_size:
                self._overflow.append(list(self._queue))
                self.rows_overflowed += len(self._queue)
                self._queue.clear()
            self._queue.append((now, rec))
        self._submitted += len(records)
        self._wake.set()

    # ---- state --------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        if self.spool.empty and not self._overflow:
            return "writing"
        return "backfilling" if self._health.up else "spooling"

    def lag_s(self) -> float:
        """Age of the oldest record not yet committed to the database (0 when none)."""
        candidates = [self.spool.oldest_submitted_at, self._inflight_t]
        if self._overflow:
            candidates.append(self._overflow[0][0][0])
        if self._queue:
            candidates.append(self._queue[0][0])
        oldest = min((t for t in candidates if t is not None), default=None)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    @property
    def submitted(self) -> int:
        return self._submitted

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(len(c) for c in self._overflow)

    # ---- flush / close -----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Return once every record submitted before the call is committed or fsynced in the spool."""
        target = self._submitted
        self._flush_waiters += 1
        self._wake.set()
        try:
            async with self._progress:
                await self._progress.wait_for(lambda: self._durable >= target)
        finally:
            self._flush_waiters -= 1

    def request_close(self) -> None:
        self._closing = True
        self._wake.set()

    # ---- writer task ------------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer: batch, write or spool, back-fill when the database is back; until closed."""
        while True:
            batch = await self._collect()
            if batch:
                await self._handle(batch)
            await self._spill_overflow()
            if not self.spool.empty and self._health.up:
                await self._backfill()
            await self._mark_progress()
            if self._closing and not self._queue and not self._overflow:
                break
        if not self.spool.empty and self._health.up:
            await self._backfill()  # graceful shutdown: to the DB if it is reachable...
        await asyncio.to_thread(self.spool.close)  # ...else the spool, fsynced
        await self._mark_progress()

    async def _collect(self) -> list[tuple[float, T]]:
        """Up to batch_size records, waiting at most batch_age_s after the first (less when flushing)."""
        cfg = self._cfg
        deadline = time.monotonic() + cfg.batch_age_s
        while len(self._queue) < cfg.batch_size and not self._overflow and not self._closing:
            if self._queue and self._flush_waiters:
                break  # a flush cuts the batch short; with nothing queued there is nothing to cut
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                break
        # Overflow chunks are older than the queue: they go (to the spool) before any queued record.
        n = 0 if self._overflow else min(len(self._queue), cfg.batch_size)
        batch = [self._queue.popleft() for _ in range(n)]
        self._inflight_t = batch[0][0] if batch else None
        return batch

    async def _handle(self, batch: list[tuple[float, T]]) -> None:
        records = [rec for _, rec in batch]
        if self.spool.empty and not self._overflow and self._health.up:
            try:
                added = await self._write_db(records)
            except Exception as exc:
                if not database_down(exc):
                    await self._reject(records, batch[0][0], exc)
                    self._advance(len(records), durable=True)
                    return
                log.warning("recorder database unreachable, spooling", kind=self.kind, error=str(exc))
                self._health.mark_down()
            else:
                self.rows_written += len(records)
                self.rows_duplicate += len(records) - added
                self._advance(len(records), durable=True)
                return
        await asyncio.to_thread(self.spool.append, records, batch[0][0])
        self.rows_spooled += len(records)
        self._advance(len(records), durable=False)

    async def _spill_overflow(self) -> None:
        while self._overflow:
            chunk = self._overflow[0]
            await asyncio.to_thread(self.spool.append, [rec for _, rec in chunk], chunk[0][0])
            self._overflow.popleft()
            self.rows_spooled += len(chunk)
            self._advance(len(chunk), durable=False)

    async def _backfill(self) -> None:
        """Commit the spool oldest file first, deleting each file only after all its rows are in.
        A file half-committed before a new outage is replayed whole: ingest skips what is stored."""
        while self._health.up:
            await self._spill_overflow()  # what overflowed meanwhile is newer: append it first
            await asyncio.to_thread(self.spool.seal)
            files = self.spool.files()
            if not files:
                return
            path = files[0]
            records = await asyncio.to_thread(self.spool.read, path)
            try:
                for i in range(0, len(records), self._cfg.backfill_chunk):
                    chunk = records[i : i + self._cfg.backfill_chunk]
                    added = await self._write_db(chunk)
                    self.rows_backfilled += len(chunk)
                    self.rows_duplicate += len(chunk) - added
            except Exception as exc:
                if not database_down(exc):
                    log.error(
                        "recorder database refused a spool file",
                        kind=self.kind,
                        path=str(path),
                        error=str(exc),
                    )
                    await asyncio.to_thread(self.spool.reject, path, repr(exc))
                    self.rows_rejected += len(records)
                    continue
                log.warning("recorder back-fill interrupted, spooling", kind=self.kind, error=str(exc))
                self._health.mark_down()
                return
            await asyncio.to_thread(self.spool.remove, path)
            log.info(
                "recorder back-filled a spool file", kind=self.kind, records=len(records), file=path.name
            )
            await self._mark_progress()

    async def _write_db(self, records: Sequence[T]) -> int:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._cfg.retry_attempts),
            wait=Backoff(self._cfg.retry_wait_s, max(self._cfg.retry_wait_s, 1.0)),
            retry=retry_if_transient,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with asyncio.timeout(self._cfg.write_timeout_s):
                    return await self._write(records)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _reject(self, records: list[T], submitted_at: float, exc: BaseException) -> None:
        # A batch the database refuses for a reason other than reachability would block the spool
        # forever; it is kept aside instead of dropped.
        def put_aside() -> None:
            self.spool.seal()
            self.spool.append(records, submitted_at)
            self.spool.reject(self.spool.files()[-1], repr(exc))

        log.error("recorder database refused a batch", kind=self.kind, records=len(records), error=str(exc))
        await asyncio.to_thread(put_aside)
        self.rows_rejected += len(records)

    def _advance(self, n: int, *, durable: bool) -> None:
        self._handled += n
        self._inflight_t = None
        if durable and not self.spool.dirty:
            self._durable = self._handled

    async def _mark_progress(self) -> None:
        if self._durable < self._handled and (self._flush_waiters or self._closing):
            await asyncio.to_thread(self.spool.sync)
            self._durable = self._handled
        elif not self.spool.dirty:
            self._durable = self._handled
        async with self._progress:
            self._progress.notify_all()
