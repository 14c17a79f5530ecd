"""The recorder: raw snapshot rows, public trades and closed candles into Postgres, off the hot path.

`submit_*` only append to a bounded in-memory queue per kind (never blocking, never dropping: a full
queue spills to the spool). A writer task per kind batches by size and age and writes with the
repository's idempotent `ingest_*` (staged COPY that skips stored keys), retrying transient errors
with tenacity. When the database stays unreachable, batches go to spool files under
`<var_dir>/spool/<kind>/`; a probe notices the database is back, and the spool is back-filled
oldest file first before new batches are written directly again. Spool files left by a previous run
are back-filled at start. Nothing recorded is lost, and because every write de-duplicates on the
table's key, nothing replayed is duplicated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from trading_daemon.recorder.channel import Channel, RecorderConfig, State
from trading_daemon.recorder.health import DatabaseHealth
from trading_daemon.recorder.spool import Spool

Kind = Literal["snapshots", "trades", "candles"]
KINDS: tuple[Kind, ...] = ("snapshots", "trades", "candles")


@dataclass(frozen=True)
class KindStats:
    """Counters of one record kind."""

    state: State
    rows_submitted: int
    rows_written: int
    rows_duplicate: int
    rows_spooled: int
    rows_backfilled: int
    rows_rejected: int
    rows_overflowed: int
    pending: int
    spool_files: int
    spool_bytes: int
    lag_s: float


@dataclass(frozen=True)
class RecorderStats:
    """What the recorder reports (Prometheus gauges and the status endpoint read this)."""

    state: State
    rows_written: int
    rows_spooled: int
    rows_backfilled: int
    rows_rejected: int
    spool_files: int
    spool_bytes: int
    lag_s: float
    db_up: bool
    outages: int
    kinds: dict[str, KindStats]


async def open_recorder_pool(database: Database) -> AsyncConnectionPool:
    """A pool for the recorder that opens even while the database is down, and recovers quickly.

    Sized by the database's DB_POOL_MIN_SIZE and DB_POOL_MAX_SIZE. psycopg_pool retries a lost
    connection with an uncapped exponential backoff, so after a long outage it could sit idle for as
    long again; a short reconnect_timeout makes it give up that attempt, and the recorder's next request
    starts a fresh one at once.
    """
    pool = AsyncConnectionPool(
        database.conninfo,
        min_size=database.pool_min_size,
        max_size=database.pool_max_size,
        open=False,
        reconnect_timeout=2.0,
        kwargs={"connect_timeout": database.connect_timeout_s},
        name=f"recorder-{database.dbname}",
    )
    await pool.open(wait=False)
    return pool


class Recorder:
    """Batched, spooling writer of market data. Use `start()`, `submit_*`, `flush()`, `close()`."""

    def __init__(
        self, pool: AsyncConnectionPool, spool_dir: Path, config: RecorderConfig | None = None
    ) -> None:
        self.config = config or RecorderConfig()
        self.spool_dir = Path(spool_dir)
        repo = MarketDataRepository(pool)
        self._health = DatabaseHealth(
            pool, interval_s=self.config.probe_interval_s, timeout_s=self.config.probe_timeout_s
        )
        seg = self.config.segment_bytes
        self.snapshots: Channel[RawSnapshotRow] = Channel(
            "snapshots",
            repo.ingest_snapshots,
            Spool(self.spool_dir / "snapshots", RawSnapshotRow, segment_bytes=seg),
            self._health,
            self.config,
        )
        self.trades: Channel[PublicTrade] = Channel(
            "trades",
            repo.ingest_trades,
            Spool(self.spool_dir / "trades", PublicTrade, segment_bytes=seg),
            self._health,
            self.config,
        )
        self.candles: Channel[Candle] = Channel(
            "candles",
            repo.ingest_candles,
            Spool(self.spool_dir / "candles", Candle, segment_bytes=seg),
            self._health,
            self.config,
        )
        self._channels: dict[Kind, Channel[Any]] = {
            "snapshots": self.snapshots,
            "trades": self.trades,
            "candles": self.candles,
        }
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Recorder:
        """Start the writer tasks. Spool files of a previous run are back-filled first if the
        database answers, else kept (and new batches appended after them) until it does."""
        if self._tasks:
            return self
        if not await self._health.check():
            self._health.mark_down()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(c.run(), name=f"recorder-{k}") for k, c in self._channels.items()]
        return self

    async def __aenter__(self) -> Recorder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- hot path: append to a deque, set an event; no I/O, no await --------------------------

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        """Queue raw snapshot rows for recording."""
        self.snapshots.submit(rows)

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Queue public trades for recording."""
        self.trades.submit(trades)

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        """Queue closed candles for recording (in-progress ones must not be submitted)."""
        self.candles.submit(candles)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed or fsynced in the spool."""
        self._check_running()
        await asyncio.gather(*(c.flush() for c in self._channels.values()))

    async def close(self) -> None:
        """Stop accepting records; write what is queued (to the DB if reachable, else the spool),
        back-fill the spool if the DB is reachable, fsync, and stop the tasks."""
        for c in self._channels.values():
            c.request_close()
        tasks, self._tasks = self._tasks, []
        try:
            await asyncio.gather(*tasks)
        finally:
            await self._health.close()

    def _check_running(self) -> None:
        if not self._tasks:
            raise RuntimeError("the recorder is not running (call start())")
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise RuntimeError(f"recorder task {t.get_name()} failed") from t.exception()

    # ---- observability -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """`spooling` if any kind spools, else `backfilling` if any back-fills, else `writing`."""
        states = {c.state for c in self._channels.values()}
        order: tuple[State, ...] = ("spooling", "backfilling")
        for s in order:
            if s in states:
                return s
        return "writing"

    def stats(self) -> RecorderStats:
        """A consistent-enough snapshot of the counters (read on the event loop, no I/O)."""
        kinds: dict[str, KindStats] = {
            k: KindStats(
                state=c.state,
                rows_submitted=c.submitted,
                rows_written=c.rows_written,
                rows_duplicate=c.rows_duplicate,
                rows_spooled=c.rows_spooled,
                rows_backfilled=c.rows_backfilled,
                rows_rejected=c.rows_rejected,
                rows_overflowed=c.rows_overflowed,
                pending=c.pending,
                spool_files=c.spool.file_count,
                spool_bytes=c.spool.total_bytes,
                lag_s=c.lag_s(),
            )
            for k, c in self._channels.items()
        }
        return RecorderStats(
            state=self.state,
            rows_written=sum(s.rows_written for s in kinds.values()),
            rows_spooled=sum(s.rows_spooled for s in kinds.values()),
            rows_backfilled=sum(s.rows_backfilled for s in kinds.values()),
            rows_rejected=sum(s.rows_rejected for s in kinds.values()),
            spool_files=sum(s.spool_files for s in kinds.values()),
            spool_bytes=sum(s.spool_bytes for s in kinds.values()),
            lag_s=max(s.lag_s for s in kinds.values()),
            db_up=self._health.up,
            outages=self._health.outages,
            kinds=kinds,
        )
