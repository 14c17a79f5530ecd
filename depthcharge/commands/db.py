"""`depthcharge db ...`: migrations, status, connection URL, retention."""

from __future__ import annotations

import signal
import threading

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from depthcharge.commands._context import database
from infra.db import migrate as migrations
from infra.db.connection import dagster_postgres_url
from infra.db.retention import enforce_retention
from infra.settings import load_settings
from schemas.times import now_ms


@click.group()
def db() -> None:
    """The database: migrations, status, URL, retention."""


@db.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def migrate_cmd(revision: str) -> None:
    """Apply the migrations up to REVISION."""
    settings = load_settings()
    with database(settings) as target:
        before = migrations.current_revision(target)
        after = migrations.upgrade(target, revision, retention_days=settings.database.retention_days)
        click.echo(f"{target.redacted}: {before or 'base'} -> {after or 'base'}")


@db.command("downgrade")
@click.argument("revision")
def downgrade_cmd(revision: str) -> None:
    """Revert the migrations down to REVISION ("base" reverts all of them)."""
    with database() as target:
        before = migrations.current_revision(target)
        after = migrations.downgrade(target, revision)
        click.echo(f"{target.redacted}: {before or 'base'} -> {after or 'base'}")


@db.command("status")
def status_cmd() -> None:
    """Print the schema revision, the storage mode and every table."""
    with database() as target:
        print_status(migrations.schema_status(target))


def print_status(status: migrations.SchemaStatus, console: Console | None = None) -> None:
    console = console or Console()
    version = f" {status.timescaledb_version}" if status.timescaledb_version else ""
    mode = f"TimescaleDB{version} hypertables" if status.timescaledb else "plain PostgreSQL (BRIN on time)"
    state = "up to date" if status.up_to_date else f"behind head {status.head}: run `depthcharge db migrate`"
    console.print(f"[bold]database[/] {status.target} (PostgreSQL {status.server_version})")
    console.print(f"[bold]revision[/] {status.current or 'base'} ({state})")
    console.print(f"[bold]market data[/] {mode}, retention {status.retention_days or '-'} days")
    if status.plain_reason:
        console.print(f"[bold]why plain[/] {escape(status.plain_reason)}")
    table = Table(show_header=True, header_style="bold")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("size", justify="right")
    table.add_column("kind")
    for t in status.tables:
        if not t.exists:
            table.add_row(t.name, "-", "-", "[red]missing[/]")
            continue
        kind = "hypertable" if t.hypertable else "table"
        if t.compressed_chunks:
            kind += (
                f", {t.compressed_chunks}/{t.total_chunks} chunks compressed "
                f"{_kb(t.before_compression_bytes)} -> {_kb(t.after_compression_bytes)}"
            )
        table.add_row(t.name, f"{t.rows:,}", _kb(t.size_bytes), kind)
    console.print(table)


def _kb(size_bytes: int | None) -> str:
    return f"{(size_bytes or 0) / 1024:,.0f} kB"


@db.command("url")
@click.option(
    "--dagster", is_flag=True, help="The URL dagster-postgres uses (psycopg2 scheme, dagster database)."
)
def url_cmd(dagster: bool) -> None:
    """Print the connection URL (with the password, for psql and tools)."""
    with database() as target:
        click.echo(dagster_postgres_url(target) if dagster else target.conninfo)
        if target.embedded is not None:
            click.echo(
                "note: the embedded server runs while a Depthcharge process holds it; "
                "`depthcharge db serve` keeps it up for other tools.",
                err=True,
            )


@db.command("serve")
def serve_cmd() -> None:
    """Keep the database up (the embedded server) until interrupted."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with database() as target:
        click.echo(f"serving {target.conninfo}; Ctrl+C to stop")
        stop.wait()


@db.command("retention")
@click.option("--days", type=click.IntRange(min=1), default=None, help="Override MARKET_DATA_RETENTION_DAYS.")
def retention_cmd(days: int | None) -> None:
    """Delete market data older than the retention window (plain mode); refresh the policy (Timescale)."""
    settings = load_settings()
    with database(settings) as target, target.connect(autocommit=True) as conn:
        result = enforce_retention(
            conn, retention_days=days or settings.database.retention_days, now_ms=now_ms()
        )
    unit = "chunks" if result.mode == "timescaledb" else "rows"
    deleted = ", ".join(f"{table} {n:,}" for table, n in result.deleted.items())
    click.echo(f"retention {result.retention_days} days ({result.mode}): deleted {unit}: {deleted}")
