"""`depthcharge demo`: the main job on the embedded defaults.

Today: start the database, apply the migrations and print the schema status. Later issues grow it
into recording from the paper exchange, building features, training and trading.
"""

from __future__ import annotations

import click

from depthcharge.commands._context import database
from depthcharge.commands.db import print_status
from infra.db import migrate as migrations
from infra.settings import load_settings


@click.command()
def demo() -> None:
    """Run the demo on the embedded defaults."""
    settings = load_settings()
    with database(settings) as target:
        click.echo(f"database: {target.redacted} ({target.source})")
        after = migrations.upgrade(target, retention_days=settings.market_data_retention_days)
        click.echo(f"migrations applied: at revision {after}")
        print_status(migrations.schema_status(target))
