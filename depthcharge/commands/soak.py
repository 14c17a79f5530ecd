"""`depthcharge soak`: the fault soak (docs/soak.md) — the daemon against the paper exchange with faults on,
then a summary; exit status 1 when a figure that must be zero is not."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from depthcharge.soak import SoakConfig, run_soak
from depthcharge.soak.schedule import MIN_SECONDS, plan


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()  # progress shows as it happens when the output goes to a file


@click.command()
@click.option(
    "--seconds", type=click.FloatRange(min=MIN_SECONDS), default=600.0, show_default=True,
    help="How long the faults run, counted from the first daemon's READY=1.",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed of the fault schedule and the market."
)
@click.option(
    "--pgdata", type=click.Path(file_okay=False, path_type=Path), default=Path("var/soak/pg"), show_default=True,
    help="Data directory of the soak's own embedded PostgreSQL (created if missing; the soak restarts this "
    "server mid-run, so it cannot be DATABASE_URL's). Each run creates a fresh database on it.",
)  # fmt: skip
@click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var/soak/runs"),
    show_default=True, help="Where each run's directory (daemon logs, outputs, spool, models) goes.",
)  # fmt: skip
@click.option(
    "--keep-database", is_flag=True, help="Keep the run's database for inspection (default: drop it)."
)
@click.option("--plan-only", is_flag=True, help="Print the fault schedule and exit.")
def soak(
    seconds: float, seed: int, pgdata: Path, runs_dir: Path, keep_database: bool, plan_only: bool
) -> None:
    """Run the daemon against the paper exchange with faults on, then print the summary."""
    if plan_only:
        for event in plan(seconds, seed):
            click.echo(event.describe())
        return
    config = SoakConfig(
        seconds=seconds, seed=seed, pgdata=pgdata, runs_dir=runs_dir, keep_database=keep_database
    )
    try:
        summary = asyncio.run(run_soak(config, echo=_echo))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo("")
    click.echo(summary.render())
    failed = summary.failures()
    if failed:
        raise click.exceptions.Exit(1)
