"""The daemon in record mode against the paper exchange: three symbols recorded into Postgres."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from exchange_sim.config import SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import read_candles, read_snapshots, read_trades
from infra.settings import load_settings
from schemas.arrow import table_to_raw_rows
from schemas.times import now_ms
from trading_daemon.service import run_service

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.mark.slow
async def test_record_three_symbols_from_the_paper_exchange(db: Database, tmp_path: Path) -> None:
    server = SimServer(
        SimConfig(port=0, symbols=SYMBOLS),
        lambda venue: LadderMarket(venue.engine, seed=3, events_per_second=40, trade_share=0.2),
    )
    await server.start()
    started = now_ms()
    settings = load_settings(
        DATABASE_URL=db.conninfo, VAR_DIR=str(tmp_path), TRADING_PAIRS=",".join(SYMBOLS),
        BYBIT_REST_URL=server.base_url, BYBIT_WS_PUBLIC_URL=f"{server.ws_url}/v5/public/linear",
    )  # fmt: skip
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(run_service(settings, stop, install_signal_handlers=False))
        await asyncio.sleep(4.5)
        stop.set()
        report = await asyncio.wait_for(task, 30)
    finally:
        await server.stop()
    assert set(report.feed.by_symbol_rows) == set(SYMBOLS)
    assert all(n >= 3 for n in report.feed.by_symbol_rows.values()), report.feed
    with db.connect() as conn:
        for symbol in SYMBOLS:
            rows = table_to_raw_rows(read_snapshots(conn, symbol, started - 2_000, now_ms() + 1_000))
            assert len(rows) == report.feed.by_symbol_rows[symbol]  # every row built was recorded, once
            assert [b.ts - a.ts for a, b in itertools.pairwise(rows)] == [1000] * (len(rows) - 1)
            assert rows[0].book_reset and not any(r.book_reset for r in rows[1:])
            assert all(r.n_bid_levels > 0 and r.n_ask_levels > 0 for r in rows)
            assert all(r.last_candle_start_ms == -1 or r.last_candle_start_ms + 60_000 <= r.ts for r in rows)
        trades = sum(read_trades(conn, s, started - 60_000, now_ms() + 1_000).num_rows for s in SYMBOLS)
        assert trades == report.feed.trades > 0
        candles = sum(read_candles(conn, s, 0, now_ms()).num_rows for s in SYMBOLS)
        assert candles == report.feed.candles
    assert report.recorder.rows_spooled == 0 and report.recorder.spool_files == 0
    assert report.recorder.rows_written == report.feed.rows + report.feed.trades + report.feed.candles
