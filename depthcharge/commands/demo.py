"""`depthcharge demo`: the main job on the embedded defaults.

Start the database and apply the migrations; start the paper exchange (synthetic market) in process
and record the three default symbols live for `--seconds`; then record `--train-minutes` of the same
symbols offline on virtual time (`depthcharge record-sim`), build the 110 features and the labels from the
stored rows, train, evaluate and register a first model (`depthcharge train`), and print the test-fold
table. Later issues grow it into trading.

The offline recording ends a day before now: its market is another run of the generator, and its
candle history (docs/exchange_sim_market.md §13) must not overlap the live exchange's history of the same symbol.
"""

from __future__ import annotations

import asyncio

import click

from depthcharge.commands._context import database
from depthcharge.commands.daemon import print_report
from depthcharge.commands.db import print_status
from depthcharge.commands.record_sim import store
from depthcharge.commands.train import print_training
from depthcharge.offline_recording import record_synthetic
from exchange_sim.config import SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from infra.db import migrate as migrations
from infra.db.connection import Database
from infra.settings import Settings, load_settings
from schemas.features import feature_spec
from schemas.times import now_ms
from trading_daemon.observability.logging import configure_logging
from trading_daemon.service import ServiceReport, run_service


async def _record(settings: Settings, seconds: float) -> ServiceReport:
    server = SimServer(
        SimConfig(port=0, symbols=settings.feed.symbols),
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
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        click.echo(
            f"paper exchange on {server.base_url}; recording {', '.join(settings.feed.symbols)} for {seconds:g} s"
        )
        return await run_service(recording, stop)
    finally:
        await server.stop()


@click.command()
@click.option(
    "--seconds", type=click.FloatRange(min=1), default=15, show_default=True, help="How long to record."
)
@click.option(
    "--train-minutes",
    type=click.IntRange(min=0),
    default=40,
    show_default=True,
    help="Minutes of each symbol to record offline and train a first model on (0: skip).",
)
def demo(seconds: float, train_minutes: int) -> None:
    """Run the demo on the embedded defaults."""
    settings = load_settings()
    configure_logging(settings.logging.dir, "WARNING")
    with database(settings) as target:
        click.echo(f"database: {target.redacted} ({target.source})")
        after = migrations.upgrade(target, retention_days=settings.database.retention_days)
        click.echo(f"migrations applied: at revision {after}")
        report = asyncio.run(_record(settings, seconds))
        print_report(report)
        print_status(migrations.schema_status(target))
        if train_minutes:
            _train(target, settings, train_minutes)


DAY_MS = 86_400_000


def _train(target: Database, settings: Settings, minutes: int) -> None:
    from ml.workflow import quick_config, train_from_database  # PyTorch loads only when the demo trains

    end_ms = (now_ms() - DAY_MS) // 60_000 * 60_000
    start_ms = end_ms - minutes * 60_000
    symbols = list(settings.feed.symbols)
    click.echo(f"recording {minutes} min of {', '.join(symbols)} offline (seed 7), ending at {end_ms} ...")
    recording = record_synthetic(
        symbols,
        seconds=minutes * 60,
        seed=7,
        start_ms=start_ms,
        feed=settings.feed,
    )
    added = asyncio.run(store(target, recording))
    click.echo(
        "stored "
        + "; ".join(f"{s}: {a[0]:,} rows, {a[1]:,} trades, {a[2]:,} candles" for s, a in added.items())
        + "; training ..."
    )
    run = train_from_database(
        target,
        symbols,
        start_ms=start_ms,
        end_ms=end_ms,
        models_dir=settings.models_dir,
        spec=feature_spec(settings.snapshot_interval_ms),
        config=quick_config(seed=0),
    )
    print_training(run)
