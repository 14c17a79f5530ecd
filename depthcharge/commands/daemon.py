"""`depthcharge daemon` and `depthcharge record`: the trading daemon process."""

from __future__ import annotations

import click

from infra.settings import load_settings
from trading_daemon.observability.logging import configure_logging
from trading_daemon.service import ServiceReport, run


def _run(duration: float | None) -> None:
    settings = load_settings()
    logs = settings.logging
    configure_logging(logs.dir, logs.level, retention_days=logs.retention_days)
    report = run(settings, duration_s=duration)
    print_report(report)


def print_report(report: ServiceReport) -> None:
    feed, rec = report.feed, report.recorder
    per_symbol = ", ".join(f"{s} {n:,}" for s, n in feed.by_symbol_rows.items())
    click.echo(f"rows built: {feed.rows:,} ({per_symbol}); trades {feed.trades:,}; candles {feed.candles:,}; "
               f"book resyncs {feed.resyncs}")  # fmt: skip
    click.echo(
        f"recorded: {rec.rows_written:,} rows written, {rec.rows_spooled:,} spooled, "
        f"{rec.rows_backfilled:,} back-filled, {rec.spool_files} spool files left, outages {rec.outages}"
    )


_duration = click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Stop after this many seconds (default: run until SIGTERM/SIGINT).",
)  # fmt: skip


@click.command()
@_duration
def record(duration: float | None) -> None:
    """Record the market (raw snapshot rows, trades, closed candles) into the database, nothing else."""
    _run(duration)


@click.command()
@_duration
def daemon(duration: float | None) -> None:
    """Run the daemon (systemd-ready). Today it streams and records the market; trading joins it later."""
    _run(duration)
