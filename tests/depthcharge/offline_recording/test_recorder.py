"""The offline recorder (depthcharge/offline_recording/) and `depthcharge record-sim`."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from depthcharge.cli import cli
from depthcharge.offline_recording import (
    DEFAULT_START_MS,
    SimRecording,
    record_synthetic,
    record_synthetic_async,
)
from exchange_sim.config import SimConfig
from exchange_sim.market import build_market
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import read_candles, read_snapshots, read_trades
from infra.settings import code_defaults, load_settings
from schemas.arrow import table_to_raw_rows
from schemas.market import CANDLE_INTERVAL_MS
from schemas.snapshot import RawSnapshotRow, validate_row
from schemas.times import now_ms
from tests.fixtures import recorded
from trading_daemon.service import run_service

SYMBOLS = ("BTCUSDT", "SOLUSDT")
SECONDS = 130  # crosses two minute boundaries


@pytest.fixture(scope="module")
def recording() -> SimRecording:
    return record_synthetic(SYMBOLS, seconds=SECONDS, seed=11)


def test_rows_validate_one_second_apart_first_one_a_book_reset(recording: SimRecording) -> None:
    for symbol in SYMBOLS:
        rows = recording.rows[symbol]
        assert [r.ts for r in rows] == [DEFAULT_START_MS + 1000 * k for k in range(1, SECONDS + 1)]
        for row in rows:
            validate_row(row)
        assert rows[0].book_reset and not any(r.book_reset for r in rows[1:])
        assert rows[0].interval_ms == 990 and {r.interval_ms for r in rows[1:]} == {1000}
        assert all(r.n_bid_levels == r.n_ask_levels == 50 for r in rows)
        assert all(r.bid_prices[0] < r.ask_prices[0] for r in rows)
        assert statistics.mean(r.n_book_msgs for r in rows) > 5
        # Every trade the feed recorded is counted in exactly one row.
        assert sum(r.n_buy_trades + r.n_sell_trades for r in rows) == len(recording.trades[symbol]) > 0
        assert all(t.ts <= recording.end_ms for t in recording.trades[symbol])
        assert len(recording.truth.regimes[symbol]) == len(recording.truth.fair_values[symbol]) == len(rows)
        assert set(recording.truth.regimes[symbol]) <= {"calm", "trending", "volatile"}
    assert recording.messages > SECONDS * 20


def test_last_row_holds_the_exchanges_true_top_50(recording: SimRecording) -> None:
    for symbol in SYMBOLS:
        last = recording.rows[symbol][-1]
        bids, asks = recording.truth.final_books[symbol]
        assert list(zip(last.bid_prices, last.bid_sizes, strict=True)) == bids
        assert list(zip(last.ask_prices, last.ask_sizes, strict=True)) == asks


def test_candle_pins_advance_once_per_minute(recording: SimRecording) -> None:
    for symbol in SYMBOLS:
        rows = recording.rows[symbol]
        # The history loads at start, so a row never lacks a pin; a minute's confirm arrives at its end.
        for row in rows:
            assert row.last_candle_start_ms + CANDLE_INTERVAL_MS <= row.ts
            assert (
                row.last_candle_start_ms
                == row.ts // CANDLE_INTERVAL_MS * CANDLE_INTERVAL_MS - CANDLE_INTERVAL_MS
            )
        pins = sorted({r.last_candle_start_ms for r in rows})
        assert len(pins) == 3 and all(b - a == CANDLE_INTERVAL_MS for a, b in itertools.pairwise(pins))
        candles = recording.candles[symbol]
        starts = [c.start_ms for c in candles]
        assert len(candles) == 200 + 2  # the REST history load, then the two live minutes that closed
        assert all(b - a == CANDLE_INTERVAL_MS for a, b in itertools.pairwise(starts))
        assert starts[-1] == pins[-1] and all(c.confirmed for c in candles)
        assert candles[200].open == candles[199].close  # the live market opened at the history's close


def test_deterministic_for_a_seed() -> None:
    first = record_synthetic(["ETHUSDT"], seconds=15, seed=5, manipulation=False)
    again = record_synthetic(["ETHUSDT"], seconds=15, seed=5, manipulation=False)
    other = record_synthetic(["ETHUSDT"], seconds=15, seed=6, manipulation=False)
    assert first.rows == again.rows and first.trades == again.trades and first.candles == again.candles
    assert first.truth == again.truth
    assert first.rows != other.rows


async def test_async_variant_and_bad_arguments() -> None:
    rec = await record_synthetic_async(["SOLUSDT"], seconds=3, seed=1, shift_at_ms=DEFAULT_START_MS + 1_000)
    assert len(rec.rows["SOLUSDT"]) == 3 and rec.truth.shift_at_ms == DEFAULT_START_MS + 1_000
    with pytest.raises(RuntimeError, match="record_synthetic_async"):
        record_synthetic(["SOLUSDT"], seconds=3)
    for kwargs, message in (
        ({"symbols": ["DOGEUSDT"]}, "unknown symbols"),
        ({"symbols": "BTCUSDT"}, "sequence"),
        ({"symbols": []}, "at least one"),
        ({"seconds": 0}, "seconds"),
        ({"seed": -1}, "seed"),
        ({"start_ms": DEFAULT_START_MS + 5}, "start_ms"),
        ({"feed": replace(code_defaults().feed, snapshot_interval_ms=15)}, "interval_ms"),
        ({"feed": {"snapshot_interval_ms": 500}}, "feed must be a FeedConfig"),
    ):
        args = {"symbols": ["BTCUSDT"], "seconds": 3, **kwargs}
        with pytest.raises(ValueError, match=message):
            await record_synthetic_async(**args)  # type: ignore[arg-type]


def test_record_sim_command_stores_rows_trades_and_candles(db: Database) -> None:
    runner = CliRunner()
    args = ["record-sim", "--seconds", "20", "--symbols", "BTCUSDT,SOLUSDT", "--seed", "3",
            "--start", "2026-01-01T00:00:00", "--shift-at-s", "10"]  # fmt: skip
    env = {"DATABASE_URL": db.conninfo}
    result = runner.invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "BTCUSDT: stored 20 of 20 rows" in result.output and "x real time" in result.output
    expected = record_synthetic(
        ["BTCUSDT", "SOLUSDT"], seconds=20, seed=3, shift_at_ms=DEFAULT_START_MS + 10_000
    )
    with db.connect() as conn:
        for symbol in ("BTCUSDT", "SOLUSDT"):
            rows = table_to_raw_rows(read_snapshots(conn, symbol, 0, DEFAULT_START_MS + 60_000))
            assert rows == expected.rows[symbol]
            trades = read_trades(conn, symbol, 0, DEFAULT_START_MS + 60_000)
            assert trades.num_rows == len(expected.trades[symbol]) > 0
            candles = read_candles(conn, symbol, 0, DEFAULT_START_MS + 60_000)
            assert candles.num_rows == len(expected.candles[symbol]) == 200
    again = runner.invoke(cli, args, env=env)  # idempotent: nothing is stored twice
    assert again.exit_code == 0 and "BTCUSDT: stored 0 of 20 rows, 0 of" in again.output, again.output
    bad = runner.invoke(cli, ["record-sim", "--seconds", "5", "--symbols", "XRPUSDT"], env=env)
    assert bad.exit_code != 0 and "XRPUSDT" in bad.output


@pytest.mark.slow
async def test_same_row_statistics_as_the_live_service(db: Database, tmp_path: Path) -> None:
    """A short recording through the running service (sockets, wall clock) looks like the offline one."""
    server = SimServer(
        SimConfig(port=0, symbols=("BTCUSDT",)),
        lambda venue: build_market(venue.engine, ["BTCUSDT"], seed=11),
    )
    await server.start()
    started = now_ms()
    settings = load_settings(
        DATABASE_URL=db.conninfo, VAR_DIR=str(tmp_path), TRADING_PAIRS="BTCUSDT",
        BYBIT_REST_URL=server.base_url, BYBIT_WS_PUBLIC_URL=f"{server.ws_url}/v5/public/linear",
    )  # fmt: skip
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(run_service(settings, stop, install_signal_handlers=False))
        await asyncio.sleep(7.5)
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        await server.stop()
    with db.connect() as conn:
        live = table_to_raw_rows(read_snapshots(conn, "BTCUSDT", started - 2_000, now_ms() + 1_000))
    assert len(live) >= 5
    assert all(r.last_candle_start_ms != -1 and r.last_candle_start_ms + 60_000 <= r.ts for r in live)
    offline = (await record_synthetic_async(["BTCUSDT"], seconds=60, seed=11)).rows["BTCUSDT"]

    def stats(rows: list[RawSnapshotRow]) -> dict[str, float]:
        rows = rows[1:]  # the first row of a process covers part of an interval
        return {
            "depth": statistics.mean(r.n_bid_levels + r.n_ask_levels for r in rows),
            "messages": statistics.mean(r.n_book_msgs for r in rows),
            "trades": statistics.mean(r.n_buy_trades + r.n_sell_trades for r in rows),
        }

    got, want = stats(live), stats(offline)
    assert got["depth"] == want["depth"] == 100, (got, want)
    assert 0.3 * want["messages"] <= got["messages"] <= 2.0 * want["messages"], (got, want)
    assert 0.15 * want["trades"] <= got["trades"] <= 6.0 * want["trades"], (got, want)


def test_recorded_fixture_caches_per_parameters_in_memory_and_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(recorded.CACHE_ENV, str(tmp_path))
    rec = recorded.recorded_market(seconds=5, symbols=("ETHUSDT",), seed=123, fixed_regime="volatile")
    (cached,) = tmp_path.glob("*.pickle")
    assert "ETHUSDT_5s_seed123" in cached.name and recorded.code_hash() in cached.name
    assert recorded.recorded_market(seconds=5, symbols=("ETHUSDT",), seed=123, fixed_regime="volatile") is rec
    recorded._recorded.cache_clear()  # a new session: loaded from the file, not recorded again
    again = recorded.recorded_market(seconds=5, symbols=("ETHUSDT",), seed=123, fixed_regime="volatile")
    assert again is not rec and again.rows == rec.rows and again.truth == rec.truth
    assert set(rec.truth.regimes["ETHUSDT"]) == {"volatile"}
    tables = recorded.recorded_arrow(seconds=5, symbol="ETHUSDT", seed=123, fixed_regime="volatile")
    assert tables.rows.num_rows == 5 and tables.candles.num_rows == 200
    assert tables.rows.column("ts").to_pylist() == [r.ts for r in rec.rows["ETHUSDT"]]
    assert tables.trades.num_rows == len(rec.trades["ETHUSDT"])
