"""`depthcharge` — one entry point with a subcommand group per process or concern."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from depthcharge.commands.audit import audit
from depthcharge.commands.check import check
from depthcharge.commands.daemon import daemon, record
from depthcharge.commands.dagster import dagster
from depthcharge.commands.db import db
from depthcharge.commands.demo import demo
from depthcharge.commands.evaluate import evaluate
from depthcharge.commands.exchange_sim import exchange_sim
from depthcharge.commands.record_sim import record_sim
from depthcharge.commands.soak import soak
from depthcharge.commands.train import train
from infra.db.errors import StorageError
from trading_daemon.errors import Kind, classify
from trading_daemon.lifecycle.startup import StartupError
from trading_daemon.observability.logging import configure_console_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO instead of WARNING.")
def cli(verbose: bool) -> None:
    """Depthcharge: order-book ML trading for Bybit USDT perpetuals."""
    configure_console_logging("INFO" if verbose else "WARNING")


cli.add_command(db)
cli.add_command(audit)
cli.add_command(demo)
cli.add_command(record)
cli.add_command(daemon)
cli.add_command(exchange_sim)
cli.add_command(record_sim)
cli.add_command(train)
cli.add_command(evaluate)
cli.add_command(dagster)
cli.add_command(check)
cli.add_command(soak)


def exit_status(exc: BaseException) -> int:
    """2 when retrying cannot help (a configuration error: the unit's RestartPreventExitStatus=2 stops
    restarts), 1 when the failure is transient (a database that is down: systemd restarts the daemon)."""
    return 1 if classify(exc).kind is Kind.RETRY else 2


def main() -> None:
    """Run the CLI; known failures print one clear line and exit 2 instead of a traceback."""
    try:
        # Without standalone mode click hands back the status of `ctx.exit(code)` instead of exiting.
        status = cli.main(standalone_mode=False)
        if isinstance(status, int) and not isinstance(status, bool) and status != 0:
            sys.exit(status)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (StorageError, StartupError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exit_status(exc))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        click.echo(f"error: invalid settings: {problems}", err=True)
        sys.exit(2)
