"""`depthcharge demo`: the main job on the embedded defaults.

Today: start the database and apply the migrations, start the paper exchange (synthetic market) in
process, record the three default symbols for `--seconds`, and print what was recorded and the schema
status. Later issues grow it into building features, training and trading.
"""

from __future__ import annotations

import asyncio

import click

from depthcharge.commands._context import database
from depthcharge.commands.daemon import print_report
from depthcharge.commands.db import print_status
from exchange_sim.config import SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from infra.db import migrate as migrations
from infra.settings import Settings, load_settings
from trading_daemon.observability.logging import configure_logging
from trading_daemon.service import ServiceReport, run_service


async def _record(settings: Settings, seconds: float) -> ServiceReport:
    server = SimServer(
        SimConfig(port=0, symbols=tuple(settings.symbols)),
        lambda venue: build_market(venue.engine, list(venue.instruments), seed=42),
    )
    await server.start()
    try:
        recording = settings.model_copy(
            update={
                "bybit_rest_url": server.base_url,
                "bybit_ws_public_url": f"{server.ws_url}/v5/public/linear",
            }
        )
        recording.__dict__.pop("venue_urls", None)  # drop the cached URLs of the original settings
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        click.echo(
            f"paper exchange on {server.base_url}; recording {', '.join(settings.symbols)} for {seconds:g} s"
        )
        return await run_service(recording, stop)
    finally:
        await server.stop()


@click.command()
@click.option(
    "--seconds", type=click.FloatRange(min=1), default=15, show_default=True, help="How long to record."
)
def demo(seconds: float) -> None:
    """Run the demo on the embedded defaults."""
    settings = load_settings()
    configure_logging(settings.logs_dir, "WARNING")
    with database(settings) as target:
        click.echo(f"database: {target.redacted} ({target.source})")
        after = migrations.upgrade(target, retention_days=settings.market_data_retention_days)
        click.echo(f"migrations applied: at revision {after}")
        report = asyncio.run(_record(settings, seconds))
        print_report(report)
        print_status(migrations.schema_status(target))
