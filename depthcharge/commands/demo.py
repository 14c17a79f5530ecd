"""`depthcharge demo`: the whole loop on the embedded defaults (depthcharge/demo/loop.py, docs/demo.md)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator

import click

from depthcharge.commands._context import database
from depthcharge.commands.api_login import with_demo_login
from depthcharge.demo.loop import DemoLoop, DemoPlan
from depthcharge.demo.progress import Stages
from infra.db import migrate as migrations
from infra.settings import load_settings
from trading_daemon.observability.logging import configure_logging


@click.command()
@click.option(
    "--history-minutes",
    type=click.IntRange(min=10, max=60),
    default=40,
    show_default=True,
    help="Minutes of market before the regime shift, recorded offline: the first model trains on them.",
)
@click.option(
    "--drift-minutes",
    type=click.IntRange(min=5, max=60),
    default=20,
    show_default=True,
    help="Minutes of market after the regime shift: the drift report judges them.",
)
@click.option(
    "--trade-seconds",
    type=click.FloatRange(min=0),
    default=60,
    show_default=True,
    help="How long the daemon trades with each promoted model before the demo goes on.",
)
@click.option(
    "--sensor-interval",
    type=click.IntRange(min=5, max=600),
    default=15,
    show_default=True,
    help="SENSOR_INTERVAL_S of the demo's Dagster daemon: how soon the drift sensor reacts.",
)
@click.option("--keep-running", is_flag=True, help="After the summary, keep every process up until Ctrl-C.")
def demo(
    history_minutes: int, drift_minutes: int, trade_seconds: float, sensor_interval: int, keep_running: bool
) -> None:
    """Run the whole loop on the embedded defaults: record, train and promote through Dagster, trade with the
    model, catch the regime shift's drift, retrain, and print a summary."""
    plan = DemoPlan(history_minutes, drift_minutes, trade_seconds, sensor_interval, keep_running)
    settings, password = with_demo_login(load_settings())
    configure_logging(settings.logging.dir, "WARNING")
    stages = Stages()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_terminate_as_interrupt())
        with stages.stage("database") as said:
            target = stack.enter_context(database(settings))
            after = migrations.upgrade(target, retention_days=settings.database.retention_days)
            said.append(f"{target.redacted} ({target.source}), at revision {after}")
        loop = DemoLoop(settings, password, target, plan, stages)
        try:
            _run(loop, plan)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: stopping")
        finally:
            for line in loop.services.stop():
                click.echo(f"  {line}")
    click.echo(f"stopped; the database, the lake, the models and the Dagster instance stay in {settings.var_dir}: "
               "a second `make demo` reuses them")  # fmt: skip


def _run(loop: DemoLoop, plan: DemoPlan) -> None:
    loop.start_processes()
    history = loop.record_history()
    first = loop.train_first_model(history)
    loop.hot_swap(first, "the trading daemon hot-swaps to the promoted model")
    loop.trade("trading with the model", plan.trade_seconds)
    reports = loop.judge_shift(history)
    retrained = loop.retrain_on_drift(reports)
    if retrained is not None:
        loop.hot_swap(retrained, "the trading daemon hot-swaps to the retrained model")
        loop.trade("trading with the retrained model", plan.trade_seconds)
    summary = loop.summary(history)
    click.secho("\nsummary", bold=True)
    for line in summary.lines():
        click.echo("  " + line)
    click.secho("\nstage timings", bold=True)
    click.echo(loop.stages.table())
    if plan.keep_running:
        click.echo("\neverything stays up for exploration: " + ", ".join(
            f"{k} {v}" for k, v in loop.urls.items() if k != "paper exchange"
        ) + ". Ctrl-C stops it all.")  # fmt: skip
        while True:
            loop.services.check_alive()
            time.sleep(1)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT both raise KeyboardInterrupt, so that every process is stopped in order, even when
    the demo was started in the background (where SIGINT arrives ignored: Dagster maps SIGTERM onto SIGINT's
    handler while it materialises, which would then ignore SIGTERM too)."""
    previous = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
