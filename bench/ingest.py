"""Raw snapshot ingest: binary COPY (and staged, de-duplicating COPY) against executemany of the
same rows, on the embedded PostgreSQL, in the same run.

executemany is the baseline because it is what a plain psycopg writer does, row by row; the three
methods are interleaved so that the machine's drift hits them alike.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from bench.report import Figure, Section
from infra.db import migrate
from infra.db.connection import Database
from infra.db.embedded import EmbeddedPostgres
from infra.db.repositories import MarketDataRepository
from schemas.snapshot import RawSnapshotRow
from testkit.rows import snapshot_rows

ROWS = 5_000
REPEATS = 3


async def _measure(db: Database, rows: list[RawSnapshotRow], repeats: int) -> dict[str, Any]:
    pool = await db.open_pool(min_size=1, max_size=2)
    repo = MarketDataRepository(pool)
    methods: dict[str, Callable[[list[RawSnapshotRow]], Awaitable[int]]] = {
        "executemany": repo.insert_snapshots_executemany,
        "copy": repo.copy_snapshots,
        "copy_staged_dedupe": repo.ingest_snapshots,
    }
    timings: dict[str, list[float]] = {name: [] for name in methods}
    try:
        for _ in range(repeats):
            for name, insert in methods.items():  # interleaved, so drift hits all methods alike
                async with pool.connection() as conn:
                    await conn.execute("TRUNCATE market_snapshots")
                start = time.perf_counter()
                stored = await insert(rows)
                timings[name].append(time.perf_counter() - start)
                assert stored == len(rows), f"{name} stored {stored} of {len(rows)} rows"
    finally:
        await pool.close()
    median = {name: statistics.median(t) for name, t in timings.items()}
    return {
        "rows": len(rows),
        "repeats": repeats,
        "rows_per_s": {name: round(len(rows) / s) for name, s in median.items()},
        "seconds_median": {name: round(s, 4) for name, s in median.items()},
        "ratio_vs_executemany": {
            name: round(median["executemany"] / s, 2) for name, s in median.items() if name != "executemany"
        },
    }


def run(quick: bool = False) -> dict[str, Any]:
    n_rows, repeats = (500, 1) if quick else (ROWS, REPEATS)
    root = Path(tempfile.mkdtemp(prefix="dc-bench-"))
    server = EmbeddedPostgres(root / "pg").start()
    try:
        admin = Database(server.uri("postgres"), "embedded", server)
        with admin.connect(autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        db = admin.with_dbname("bench")
        migrate.upgrade(db)
        rows = list(snapshot_rows(n_rows))
        result = asyncio.run(_measure(db, rows, repeats))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    rps, ratio = result["rows_per_s"], result["ratio_vs_executemany"]
    print(f"raw snapshot ingest, {n_rows} rows x {repeats} (median):")
    for name in rps:
        extra = f"  {ratio[name]}x executemany" if name in ratio else "  (baseline)"
        print(f"  {name:<20} {rps[name]:>9,} rows/s{extra}")
    return result


def section(result: Mapping[str, Any]) -> Section:
    rps = result["rows_per_s"]
    return Section(
        title="Raw snapshot ingest",
        summary=(
            f"Storing {result['rows']:,} raw snapshot rows (100 book levels each) in the embedded PostgreSQL, "
            f"median of {result['repeats']}, against executemany of the same rows"
        ),
        figures=[
            Figure("binary COPY", rps["copy"], "rows/s", "executemany", rps["executemany"]),
            Figure("staged COPY with de-duplication (the recorder's path)", rps["copy_staged_dedupe"], "rows/s",
                   "executemany", rps["executemany"]),
        ],
        details=result,
    )  # fmt: skip
