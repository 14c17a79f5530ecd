"""`depthcharge daemon` and `depthcharge record`: the trading daemon process."""

from __future__ import annotations

from typing import Any

import click

from infra.settings import load_settings
from trading_daemon.observability.logging import configure_logging
from trading_daemon.service import ServiceReport, run


def _run(duration: float | None, *, record_only: bool = False) -> None:
    # `record` never trades, whatever TRADING_ENABLED says; `daemon` follows it.
    settings = load_settings(TRADING_ENABLED=False) if record_only else load_settings()
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
    if report.execution is not None:
        print_execution(report.execution)
    if report.decisions is not None:
        print_decisions_summary(report.decisions)


def print_decisions_summary(state: dict[str, Any]) -> None:
    """The decisions' counts (trading_daemon.decisions.runtime.DecisionsRuntime.state)."""
    engine, gate, risk = state["engine"], state["ml_gate"], state["risk"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(engine["outcomes"].items(), key=lambda kv: -kv[1]))
    click.echo(
        f"decisions: {engine['rows']:,} rows ({outcomes}); {engine['intents']} entries, {engine['exits']} exits"
    )
    rates = gate["rates"]
    served = gate["production"]["version"] if gate["production"] else "none (the consensus decides alone)"
    click.echo(
        f"ML gate: model {served}; {int(rates['validations'])} validations, agreement "
        f"{rates['agreement_rate']:.0%}, fallback {rates['fallback_rate']:.0%}; risk refusals {risk['refusals'] or 'none'}"
    )


def print_execution(summary: dict[str, Any]) -> None:
    """Execution's counts (trading_daemon.execution.runtime.ExecutionRuntime.summary)."""
    m, fills = summary["manager"], summary["fills"]
    click.echo(
        f"execution: {m['submitted']} intents ({m['repeats']} repeats, {m['refused']} refused), "
        f"{m['sent']} create requests, {m['unknown_outcomes']} unknown outcomes ({m['found_after_unknown']} "
        f"found, {m['confirmed_absent']} confirmed absent, {m['resent']} resent, {m['failed']} failed), "
        f"{m['reprices']} PostOnly re-prices"
    )
    click.echo(
        f"fills: {fills['fills']} ({fills['duplicates']} duplicates ignored), funding payments "
        f"{fills['funding']}, positions opened {fills['positions_opened']}, closed {fills['positions_closed']}; "
        f"reconciled: {summary['reconciled']}"
        + ("" if summary["reconciled"] else f" (holds: {', '.join(summary['holds'])})")
    )
    last = summary.get("last_reconciliation")
    if last is not None:
        click.echo(
            f"last reconciliation ({last['trigger']}): {'ok' if last['success'] else 'FAILED'}, "
            f"{last['discrepancies']} discrepancies, {len(last['order_corrections'])} order corrections, "
            f"{last['fills_imported']} fills imported, {len(last['hanging_orders'])} hanging orders, "
            f"{len(last['position_corrections'])} position corrections"
        )


_duration = click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Stop after this many seconds (default: run until SIGTERM/SIGINT).",
)  # fmt: skip


@click.command()
@_duration
def record(duration: float | None) -> None:
    """Record the market (raw snapshot rows, trades, closed candles) into the database, nothing else."""
    _run(duration, record_only=True)


@click.command()
@_duration
def daemon(duration: float | None) -> None:
    """Run the daemon (systemd-ready): record the market; with TRADING_ENABLED=true also decide and trade."""
    _run(duration)
