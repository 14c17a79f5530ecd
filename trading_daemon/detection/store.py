"""Detections and support/resistance levels into Postgres, batched and off the market path.

`submit_*` only put the item into memory (never blocking, never raising); a writer task flushes every
`flush_interval_s` through `DetectionRepository`. What a failed write means is the daemon's failure
policy (`trading_daemon.errors.classify`): RETRY (the database is down or interrupted the statement)
keeps the batch and tries again after the daemon's `Backoff`; anything else (the database refuses the
data, or the SQL does not fit the schema) is logged with the batch and dropped, so one bad record does
not block the others. Pending detections are keyed by id (a newer version of an episode replaces the
older one not yet written) and bounded, like level sets (the newest per symbol wins): detections are a
few per hour, and the in-memory service stays the live source for the API meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import structlog

from infra.db.repositories import DetectionRepository
from schemas.detection import Detection, SupportResistanceLevel
from trading_daemon.errors import Backoff, classify

log = structlog.get_logger(__name__)

MAX_PENDING_DETECTIONS = 10_000


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the writer reports in the detection status."""

    detections_written: int
    level_sets_written: int
    pending: int
    dropped: int
    write_failures: int
    db_up: bool


class DetectionStore:
    """The batched writer of detections and level sets (see the module docstring)."""

    def __init__(
        self,
        repository: DetectionRepository,
        *,
        flush_interval_s: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        self.repository = repository
        self.flush_interval_s = flush_interval_s
        self.backoff = backoff or Backoff(0.5, 30.0)
        self._detections: dict[str, Detection] = {}
        self._levels: dict[str, tuple[int, list[SupportResistanceLevel]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._failures_in_row = 0
        self.detections_written = 0
        self.level_sets_written = 0
        self.dropped = 0
        self.write_failures = 0

    # -- input (never blocks, never raises) ----------------------------------------------------------

    def submit_detection(self, detection: Detection) -> None:
        held = self._detections.get(detection.detection_id)
        if held is not None and held.updated_ms > detection.updated_ms:
            return
        if held is None and len(self._detections) >= MAX_PENDING_DETECTIONS:
            self.dropped += 1
            log.error("detection store full, detection not persisted", detection_id=detection.detection_id)
            return
        self._detections[detection.detection_id] = detection

    def submit_levels(self, symbol: str, computed_ms: int, levels: Sequence[SupportResistanceLevel]) -> None:
        self._levels[symbol] = (computed_ms, list(levels))

    # -- the writer ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="detection-store")

    async def stop(self) -> None:
        """Stop the writer after one last flush attempt (what the database cannot take now is logged)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        if self._detections or self._levels:
            log.warning(
                "detection store stopped with unwritten records",
                detections=len(self._detections),
                level_sets=len(self._levels),
            )

    async def _run(self) -> None:
        while True:
            delay = self.flush_interval_s
            try:
                await self.flush()
                self._failures_in_row = 0
            except Exception as exc:  # classified in flush; here only transient failures remain
                self._failures_in_row += 1
                delay = max(delay, classify(exc).wait_s(self.backoff.delay(self._failures_in_row - 1)))
                log.warning(
                    "detection store write failed, retrying", error=str(exc), retry_in_s=round(delay, 2)
                )
            await asyncio.sleep(delay)

    async def flush(self) -> None:
        """Write what is pending. Transient failures raise (the batch stays); others drop the batch, logged."""
        if self._detections:
            batch = list(self._detections.values())
            if await self._written(self.repository.upsert_detections(batch), "detections", len(batch)):
                self.detections_written += len(batch)
            for detection in batch:  # keep what was resubmitted meanwhile in a newer version
                if self._detections.get(detection.detection_id) is detection:
                    del self._detections[detection.detection_id]
        for symbol, (computed_ms, levels) in list(self._levels.items()):
            if await self._written(
                self.repository.add_levels(symbol, computed_ms, levels), "sr_levels", len(levels)
            ):
                self.level_sets_written += 1
            if self._levels.get(symbol, (None, None))[0] == computed_ms:
                del self._levels[symbol]

    async def _written(self, write: Awaitable[int], what: str, n: int) -> bool:
        """Await one write: True if written, False if refused for good (logged); transient failures raise."""
        try:
            await write
        except Exception as exc:
            self.write_failures += 1
            if classify(exc).retry:
                raise
            # Refused data or a schema that does not fit: retrying the same batch cannot help.
            self.dropped += n
            log.error("detection store refused a batch, dropped", what=what, records=n, error=str(exc))
            return False
        return True

    def stats(self) -> StoreStats:
        return StoreStats(
            detections_written=self.detections_written,
            level_sets_written=self.level_sets_written,
            pending=len(self._detections) + len(self._levels),
            dropped=self.dropped,
            write_failures=self.write_failures,
            db_up=self._failures_in_row == 0,
        )
