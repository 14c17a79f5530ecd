"""`depthcharge audit ...`: check the audit log's hash chain."""

from __future__ import annotations

import sys

import click

from depthcharge.commands._context import database
from infra.db.repositories.audit import verify_chain


@click.group()
def audit() -> None:
    """The append-only audit log."""


@audit.command("verify")
@click.option("--limit", default=20, show_default=True, help="Problems to print at most.")
def verify_cmd(limit: int) -> None:
    """Recompute the hash chain; exit 1 and name the rows if any was edited, removed or inserted."""
    with database() as target, target.connect() as conn:
        report = verify_chain(conn)
    if report.ok:
        click.echo(f"audit log intact: {report.rows_checked:,} rows, head {report.last_hash[:16]}")
        return
    click.echo(
        f"audit log TAMPERED: {len(report.problems)} problem(s) in {report.rows_checked:,} rows", err=True
    )
    for p in report.problems[:limit]:
        click.echo(f"  row {p.id}: {p.kind}: {p.detail}", err=True)
    sys.exit(1)
