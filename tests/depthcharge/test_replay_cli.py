"""`depthcharge exchange-sim --market replay`: a recording served as Bybit messages by a real process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from schemas.arrow import raw_rows_to_table
from schemas.snapshot import RawSnapshotRow
from testkit.rows import snapshot_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_and_read_book(args: list[str], env: dict[str, str], last: RawSnapshotRow) -> dict:  # type: ignore[type-arg]
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "depthcharge", "exchange-sim", "--port", str(port), "--symbols", "BTCUSDT",
         "--market", "replay", "--speed", "20", *args],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=50"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    book = json.load(resp)["result"]
                if _book_levels(book) == _row_levels(last):  # the replay has reached the last row
                    return book  # type: ignore[no-any-return]
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("the replayed book never reached the last recorded row")
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if the server has not exited within 20 s; always reaps it and closes its pipe.

    In full-suite runs the server has now and then outlived SIGTERM for 20 s; the replayed book (what this
    test is about) was already checked by then. What the process was doing goes to stderr for diagnosis.
    """
    proc.terminate()
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        status = Path(f"/proc/{proc.pid}/status")
        state = (
            [ln for ln in status.read_text().splitlines() if ln.startswith(("State", "Sig"))]
            if status.exists()
            else []
        )
        print(f"exchange-sim {proc.pid} ignored SIGTERM for 20 s: {state}", file=sys.stderr)
        proc.kill()
        proc.communicate(timeout=20)


def _levels(prices: list[float], sizes: list[float], n: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(repr(p)), Decimal(repr(s))) for p, s in zip(prices[:n], sizes[:n], strict=True)]


def _book_levels(book: dict) -> tuple[list[tuple[Decimal, Decimal]], ...]:  # type: ignore[type-arg]
    return [(Decimal(p), Decimal(q)) for p, q in book["b"]], [(Decimal(p), Decimal(q)) for p, q in book["a"]]


def _row_levels(row: RawSnapshotRow) -> tuple[list[tuple[Decimal, Decimal]], ...]:
    return (
        _levels(row.bid_prices, row.bid_sizes, row.n_bid_levels),
        _levels(row.ask_prices, row.ask_sizes, row.n_ask_levels),
    )


def _assert_book_is_row(book: dict, row: RawSnapshotRow) -> None:  # type: ignore[type-arg]
    assert _book_levels(book) == _row_levels(row)


@pytest.mark.slow
def test_replay_from_the_parquet_lake(tmp_path: Path) -> None:
    rows = list(snapshot_rows(40))
    (tmp_path / "raw_snapshots").mkdir()
    pq.write_table(raw_rows_to_table(rows), tmp_path / "raw_snapshots" / "part-0.parquet")
    book = _serve_and_read_book(["--replay-source", str(tmp_path)], {}, rows[-1])
    _assert_book_is_row(book, rows[-1])


@pytest.mark.slow
def test_replay_from_the_database(db: Database) -> None:
    rows = list(snapshot_rows(40))

    async def seed() -> None:
        pool = await db.open_pool()
        try:
            await MarketDataRepository(pool).copy_snapshots(rows)
        finally:
            await pool.close()

    asyncio.run(seed())
    book = _serve_and_read_book(
        ["--replay-source", "db", "--replay-from", str(rows[0].ts), "--replay-to", "2026-01-02T00:00:00"],
        {"DATABASE_URL": db.conninfo}, rows[-1],
    )  # fmt: skip
    _assert_book_is_row(book, rows[-1])


def test_replay_refuses_an_empty_or_missing_recording(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "depthcharge", "exchange-sim", "--market", "replay", *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    missing = run()
    assert missing.returncode == 2 and "--replay-source" in missing.stderr
    no_lake = run("--replay-source", str(tmp_path))
    assert no_lake.returncode == 2 and "has no raw_snapshots/ directory" in no_lake.stderr
    (tmp_path / "raw_snapshots").mkdir()
    pq.write_table(raw_rows_to_table(list(snapshot_rows(3))), tmp_path / "raw_snapshots" / "p.parquet")
    empty = run("--replay-source", str(tmp_path), "--replay-from", "2030-01-01")
    assert empty.returncode == 2 and "no raw snapshot rows of BTCUSDT, ETHUSDT, SOLUSDT" in empty.stderr
    bad = run("--replay-source", str(tmp_path), "--replay-from", "yesterday")
    assert bad.returncode == 2 and "neither ms since the epoch nor an ISO 8601 time" in bad.stderr
