"""`depthcharge check`: verify the configuration before going live, one line per check (checks.py)."""

from __future__ import annotations

import asyncio

import click
from pydantic import ValidationError

from depthcharge.commands.checks import Check, Status, failed, run_checks
from infra.db.connection import Database, open_database
from infra.db.errors import StorageError
from infra.settings import load_settings

_COLOURS: dict[Status, str] = {"ok": "green", "warn": "yellow", "FAIL": "red", "skip": "bright_black"}


def _echo(check: Check) -> None:
    line = check.line()
    status = check.status
    click.echo(click.style(status, fg=_COLOURS[status], bold=status == "FAIL") + line[len(status) :])


@click.command("check")
@click.pass_context
def check(ctx: click.Context) -> None:
    """Verify the configuration before going live: the database and its migrations, the exchange, the clock,
    the API keys and account, the mainnet opt-in, the API's secrets, disk space. Every check runs; the exit
    status is 1 when any FAILs, else 0. Secrets are never printed."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        # The messages, never the input values (which may be secrets).
        for problem in exc.errors():
            where = ".".join(map(str, problem["loc"])) or "settings"
            _echo(Check("settings", "FAIL", f"{where}: {problem['msg']}"))
        ctx.exit(1)
    db: Database | None = None
    error = ""
    try:
        db = open_database(settings.database)
    except StorageError as exc:
        error = str(exc)
    try:
        checks = asyncio.run(run_checks(settings, db, db_error=error))
    finally:
        if db is not None:
            db.close()  # stops the embedded server if this command started it
    for item in checks:
        _echo(item)
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "FAIL", "skip")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    ctx.exit(1 if failed(checks) else 0)
