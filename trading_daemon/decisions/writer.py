"""A background batch writer: the decision path hands records over without waiting for the database.

Signals, model predictions and audit rows are written off the decision path, in order, in batches. A
batch that fails with a transient error (the database is down) is retried with the daemon's backoff until
it is written — each store is keyed, so a replay of a batch whose commit was not seen adds nothing — and
records keep queueing meanwhile, up to `max_pending`, past which the oldest are dropped, counted and
logged (the process must not run out of memory during a long outage). A batch the database refuses for
good (a bug, a constraint) is logged with its size and dropped, so one bad record does not stop the rest.
`recent` keeps the last records handed over, for the API and for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from trading_daemon.errors import Backoff, classify

log = structlog.get_logger(__name__)

T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Queue records with `put` (never blocks); a task writes them with `flush(batch)`."""

    def __init__(
        self,
        name: str,
        flush: Callable[[Sequence[T]], Awaitable[object]] | None,
        *,
        batch_size: int = 200,
        interval_s: float = 0.5,
        max_pending: int = 100_000,
        keep_recent: int = 1000,
    ) -> None:
        self.name = name
        self.flush = flush
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._pending: deque[T] = deque()
        self.recent: deque[T] = deque(maxlen=keep_recent)
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def put(self, record: T) -> None:
        """Hand a record over (written soon; kept in `recent` at once)."""
        self.recent.append(record)
        if self.flush is None:
            return
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("writer queue full: oldest records dropped", writer=self.name, dropped=self.dropped)
        self._pending.append(record)
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self.flush is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"writer-{self.name}")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (for at most `timeout_s`), then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.error("writer could not flush before stopping", writer=self.name, left=len(self._pending))
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        backoff = Backoff(0.5, 30.0)
        failures = 0
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
                continue
            batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
            assert self.flush is not None
            try:
                await self.flush(batch)
            except Exception as exc:
                decision = classify(exc)
                self.failures += 1
                if decision.retry and not (self._closing and failures >= 3):
                    self._pending.extendleft(reversed(batch))  # first in line again, order kept
                    wait = decision.wait_s(backoff.delay(failures))
                    failures += 1
                    log.warning("writer batch failed, retrying", writer=self.name, size=len(batch),
                                error=str(exc), retry_in_s=round(wait, 2))  # fmt: skip
                    await asyncio.sleep(wait)
                    continue
                log.error("writer batch refused, dropped", writer=self.name, size=len(batch),
                          kind=decision.kind.value, error=str(exc))  # fmt: skip
                self.dropped += len(batch)
            else:
                self.written += len(batch)
            failures = 0
