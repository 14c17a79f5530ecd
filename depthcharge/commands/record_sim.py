"""`depthcharge record-sim`: record the paper exchange's synthetic market offline, into the database.

The recording runs on virtual time (`depthcharge.offline_recording`), many times faster than the daemon's
live `record`, and its rows, trades and closed candles (the 200-candle history included) are stored
through the market-data repository's `ingest_*`, which skip what is already stored: recording the same
start, seed and symbols again adds nothing.
"""

from __future__ import annotations

import asyncio
import time

import click

from depthcharge.commands._context import database
from depthcharge.commands.recording import parse_time_ms
from depthcharge.offline_recording import SimRecording, record_synthetic
from infra.db import migrate as migrations
from infra.db.connection import Database
from infra.db.repositories import MarketDataRepository
from infra.settings import load_settings
from schemas.times import now_ms

MINUTE_MS = 60_000
BATCH = 5_000  # records per ingest transaction


async def store(db: Database, recording: SimRecording) -> dict[str, tuple[int, int, int]]:
    """Ingest every symbol's rows, trades and candles; returns what was added per symbol."""
    pool = await db.open_pool()
    repo = MarketDataRepository(pool)
    added: dict[str, tuple[int, int, int]] = {}
    try:
        for symbol in recording.symbols:
            rows = trades = candles = 0
            series = recording.rows[symbol]
            for i in range(0, len(series), BATCH):
                rows += await repo.ingest_snapshots(series[i : i + BATCH])
            executed = recording.trades[symbol]
            for i in range(0, len(executed), BATCH):
                trades += await repo.ingest_trades(executed[i : i + BATCH])
            candles += await repo.ingest_candles(recording.candles[symbol])
            added[symbol] = (rows, trades, candles)
    finally:
        await pool.close()
    return added


@click.command("record-sim")
@click.option("--seconds", type=click.IntRange(min=1), required=True, help="Exchange seconds to record.")
@click.option("--symbols", default=None, help="Comma-separated symbols (default: TRADING_PAIRS).")
@click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True, help="Market seed.")
@click.option(
    "--shift-at-s",
    type=click.IntRange(min=0),
    default=None,
    help="Seconds after the start at which the market's regime shift applies (default: none).",
)
@click.option(
    "--start",
    default=None,
    help="Start time, ms since the epoch or ISO 8601 (default: so that the recording ends at the "
    "current minute). A whole second.",
)
@click.option("--no-manipulation", is_flag=True, help="Leave out spoofing and layering episodes.")
def record_sim(
    seconds: int,
    symbols: str | None,
    seed: int,
    shift_at_s: int | None,
    start: str | None,
    no_manipulation: bool,
) -> None:
    """Record the synthetic market on virtual time and store rows, trades and candles."""
    settings = load_settings()
    chosen = (
        [s.strip().upper() for s in symbols.split(",") if s.strip()]
        if symbols
        else list(settings.feed.symbols)
    )
    if not chosen:
        raise click.BadParameter("name at least one symbol", param_hint="--symbols")
    if start is None:
        start_ms = now_ms() // MINUTE_MS * MINUTE_MS - seconds * 1000
    else:
        start_ms = parse_time_ms(start, "--start")
        if start_ms % 1000:
            raise click.BadParameter(f"{start!r} is not a whole second", param_hint="--start")
    shift_at_ms = None if shift_at_s is None else start_ms + shift_at_s * 1000
    with database(settings) as target:
        current, head = migrations.current_revision(target), migrations.head_revision()
        if current != head:
            raise click.ClickException(
                f"{target.redacted} is at revision {current or 'base'}, not {head}: run `depthcharge db migrate`"
            )
        began = time.perf_counter()
        try:
            recording = record_synthetic(
                chosen,
                seconds=seconds,
                seed=seed,
                start_ms=start_ms,
                shift_at_ms=shift_at_ms,
                manipulation=not no_manipulation,
                feed=settings.feed,
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        took = time.perf_counter() - began
        click.echo(
            f"recorded {seconds:,} s of {', '.join(chosen)} (seed {seed}) from {start_ms} in {took:.1f} s "
            f"({seconds / took:.0f}x real time); shift {'none' if shift_at_ms is None else f'at {shift_at_ms}'}"
        )
        added = asyncio.run(store(target, recording))
    for symbol in recording.symbols:
        rows, trades, candles = added[symbol]
        click.echo(
            f"{symbol}: stored {rows:,} of {len(recording.rows[symbol]):,} rows, "
            f"{trades:,} of {len(recording.trades[symbol]):,} trades, "
            f"{candles:,} of {len(recording.candles[symbol]):,} candles "
            f"(ts {recording.rows[symbol][0].ts} .. {recording.end_ms})"
        )
