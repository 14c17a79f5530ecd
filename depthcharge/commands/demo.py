"""`depthcharge demo`: the main job on the embedded defaults.

Start the database and apply the migrations; start the paper exchange (synthetic market) in process
and record the three default symbols live for `--seconds`; then record `--train-minutes` of the same
symbols offline on virtual time (`depthcharge record-sim`), ending on an hour boundary, and materialise the
Dagster graph for those partitions with `dagster.materialize` (features and labels, a trained, evaluated and
gated model, drift reports; docs/orchestration.md), printing the asset table; then trade: the daemon runs
`--trade-seconds` on a fresh paper exchange with a scripted intent source (execution alone: orders, fills,
positions and reconciliation passes are printed); last, for `--decide-minutes`, the daemon decides and
trades another fresh paper exchange with the strategies, the detectors, the promoted model and risk, and
signals per strategy, the ML gate's agreement, orders, fills, fees and PnL are printed.

The offline recording ends a day before now: its market is another run of the generator, and its
candle history (docs/exchange_sim_market.md §13) must not overlap the live exchange's history of the same symbol.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

import click

from depthcharge.commands._context import database
from depthcharge.commands.api_login import announce_api, with_demo_login
from depthcharge.commands.daemon import print_report
from depthcharge.commands.db import print_status
from depthcharge.commands.record_sim import store
from depthcharge.offline_recording import record_synthetic
from exchange_sim.config import SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from infra.db import migrate as migrations
from infra.db.connection import Database
from infra.settings import Settings, load_settings
from schemas.times import now_ms
from trading_daemon.api.context import DaemonContext
from trading_daemon.observability.logging import configure_logging
from trading_daemon.service import ServiceReport, run_service

OnApi = Callable[[DaemonContext, str], None]


async def _record(settings: Settings, seconds: float, on_api: OnApi | None = None) -> ServiceReport:
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
        return await run_service(recording, stop, on_api=on_api)
    finally:
        await server.stop()


@click.command()
@click.option(
    "--seconds", type=click.FloatRange(min=1), default=15, show_default=True, help="How long to record."
)
@click.option(
    "--trade-seconds",
    type=click.FloatRange(min=0),
    default=60,
    show_default=True,
    help="After training, run the trading daemon this long on a fresh paper exchange with scripted intents "
    "(0: skip).",
)
@click.option(
    "--train-minutes",
    type=click.IntRange(min=0),
    default=40,
    show_default=True,
    help="Minutes of each symbol to record offline and train a first model on (0: skip).",
)
@click.option(
    "--decide-minutes",
    type=click.FloatRange(min=0),
    default=4,
    show_default=True,
    help="Last, the daemon decides and trades this long with the promoted model and the strategies (0: skip).",
)
def demo(seconds: float, train_minutes: int, trade_seconds: float, decide_minutes: float) -> None:
    """Run the demo on the embedded defaults."""
    settings, password = with_demo_login(load_settings())
    on_api = announce_api(settings, password)
    configure_logging(settings.logging.dir, "WARNING")
    with database(settings) as target:
        click.echo(f"database: {target.redacted} ({target.source})")
        after = migrations.upgrade(target, retention_days=settings.database.retention_days)
        click.echo(f"migrations applied: at revision {after}")
        report = asyncio.run(_record(settings, seconds, on_api))
        print_report(report)
        print_status(migrations.schema_status(target))
        if train_minutes:
            _train(target, settings, train_minutes)
        if trade_seconds:
            _trade(target, settings, trade_seconds, on_api)
        if decide_minutes:
            _decide(target, settings, decide_minutes, on_api)


DAY_MS = 86_400_000


HOUR_MS = 3_600_000


def _train(target: Database, settings: Settings, minutes: int) -> None:
    """The ML stage through Dagster: record `minutes` of each symbol offline, ending on an hour boundary a
    day ago, then materialise the graph for those partitions with `dagster.materialize` against the
    demo's instance (the one `depthcharge dagster` opens) and print the asset table."""
    import dagster as dg

    from depthcharge.commands.dagster import dagster_environment

    end_ms = (now_ms() - DAY_MS) // HOUR_MS * HOUR_MS
    start_ms = end_ms - minutes * 60_000
    symbols = list(settings.feed.symbols)
    click.echo(f"recording {minutes} min of {', '.join(symbols)} offline (seed 7), ending at {end_ms} ...")
    recording = record_synthetic(symbols, seconds=minutes * 60, seed=7, start_ms=start_ms, feed=settings.feed)
    added = asyncio.run(store(target, recording))
    click.echo(
        "stored "
        + "; ".join(f"{s}: {a[0]:,} rows, {a[1]:,} trades, {a[2]:,} candles" for s, a in added.items())
    )
    # The resources read their settings from the environment, as under `depthcharge dagster`.
    os.environ.update(dagster_environment(settings, target))
    from orchestration.definitions import defs  # after the environment: the location reads it at import
    from orchestration.materialise import materialise_graph
    from orchestration.partitions import TIME_PARTITIONS

    time_keys = TIME_PARTITIONS.get_partition_keys_in_range(
        dg.PartitionKeyRange(
            *(TIME_PARTITIONS.get_partition_key_for_timestamp(t / 1000) for t in (start_ms, end_ms - 1))
        )
    )
    click.echo(
        f"materialising {len(time_keys)} × {len(symbols)} partitions ({', '.join(time_keys)}), one retraining "
        f"and the drift reports with dagster materialize (instance {os.environ['DAGSTER_HOME']}) ..."
    )
    with dg.DagsterInstance.get() as instance:
        graph = materialise_graph(defs, instance, time_keys, symbols)
    click.echo(graph.table())
    for asset, key in (("model_candidate", "test_fold_metrics"), ("model_evaluation", "gate")):
        if key in graph.metadata.get(asset, {}):
            click.echo(f"{asset} — {key}:\n{graph.metadata[asset][key]}")
    click.echo("open these runs and assets in the Dagster UI: depthcharge dagster  (then the printed URL)")
    if not graph.success:
        raise click.ClickException("the Dagster graph did not materialise: see the table above")


def _trade(target: Database, settings: Settings, seconds: float, on_api: OnApi | None = None) -> None:
    """The trading stage: the daemon on a fresh paper exchange for `seconds`, scripted intents (until
    strategies decide), then its orders, fills, positions and reconciliation summary."""
    from depthcharge.commands.daemon import print_execution

    started = now_ms()
    report = asyncio.run(_trade_on_paper_exchange(settings, seconds, on_api))
    if report.execution is not None:
        print_execution(report.execution)
    with target.connect(dict_rows=True) as conn:
        statuses = conn.execute(
            """SELECT status::text AS status, count(*) AS n FROM orders
               WHERE created_at >= to_timestamp(%s / 1000.0) GROUP BY 1 ORDER BY 1""",
            (started,),
        ).fetchall()
        click.echo("orders: " + ", ".join(f"{r['status']} {r['n']}" for r in statuses))
        for r in conn.execute(
            """SELECT client_order_id, symbol, side::text AS side, order_type::text AS type,
                      time_in_force::text AS tif, quantity, status::text AS status, filled_quantity, avg_fill_price
               FROM orders WHERE created_at >= to_timestamp(%s / 1000.0) ORDER BY id DESC LIMIT 8""",
            (started,),
        ).fetchall():
            click.echo(
                f"  {r['client_order_id']:<36} {r['symbol']:<8} {r['side']:<4} {r['type']:<6} {r['tif']:<8} "
                f"{r['quantity']:>10} {r['status']:<16} filled {r['filled_quantity']} @ {r['avg_fill_price']}"
            )
        fills = conn.execute(
            """SELECT exec_type::text AS t, count(*) AS n, coalesce(sum(fee), 0) AS fees FROM fills
               WHERE executed_at >= to_timestamp(%s / 1000.0) GROUP BY 1""",
            (started,),
        ).fetchall()
        click.echo(
            "fills: " + (", ".join(f"{r['t']} {r['n']} (fees {r['fees']:.4f} USDT)" for r in fills) or "none")
        )
        for r in conn.execute(
            """SELECT symbol, side::text AS side, status::text AS status, quantity, entry_price, realized_pnl,
                      fees_paid, exit_reason
               FROM positions WHERE created_at >= to_timestamp(%s / 1000.0) ORDER BY id""",
            (started,),
        ).fetchall():
            click.echo(
                f"  position {r['symbol']:<8} {r['side']:<4} {r['status']:<8} qty {r['quantity']} entry "
                f"{r['entry_price']:.2f} realised {r['realized_pnl']:.4f} (fees {r['fees_paid']:.4f})"
                + (f" — {r['exit_reason']}" if r["exit_reason"] else "")
            )
        runs = conn.execute(
            """SELECT trigger, success, summary->>'discrepancies' AS d FROM reconciliation_runs
               WHERE started_at >= to_timestamp(%s / 1000.0) ORDER BY id""",
            (started,),
        ).fetchall()
        click.echo(
            f"reconciliation: {len(runs)} passes ("
            + ", ".join(
                f"{r['trigger']} {'ok' if r['success'] else 'FAILED'} {r['d']} discrepancies" for r in runs
            )
            + ")"
        )


async def _trade_on_paper_exchange(
    settings: Settings, seconds: float, on_api: OnApi | None = None
) -> ServiceReport:
    interval = settings.scripted_intent_interval_s or 2.0
    changes = {
        "trading_enabled": True,
        "scripted_intent_interval_s": interval,
        "reconcile_interval_s": min(settings.reconcile_interval_s, 20.0),
    }
    return await _run_on_paper_exchange(
        settings, seconds, seed=43, changes=changes,
        announce=lambda url: f"paper exchange on {url}; trading {', '.join(settings.feed.symbols)} for "
        f"{seconds:g} s with a scripted intent every {interval:g} s ...", on_api=on_api,
    )  # fmt: skip


async def _run_on_paper_exchange(
    settings: Settings,
    seconds: float,
    *,
    seed: int,
    changes: Mapping[str, object],
    announce: Callable[[str], str] | None = None,
    on_api: OnApi | None = None,
) -> ServiceReport:
    """The daemon (`changes` applied to the settings) for `seconds` against a fresh in-process paper
    exchange whose synthetic market runs on `seed`, with the paper exchange's own credentials."""
    from pydantic import SecretStr

    from exchange_sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET

    server = SimServer(
        SimConfig(port=0, symbols=settings.feed.symbols),
        lambda venue: build_market(venue.engine, list(venue.instruments), seed=seed),
    )
    await server.start()
    try:
        daemon_settings = settings.model_copy(
            update={
                "bybit_rest_url": server.base_url,
                "bybit_ws_public_url": f"{server.ws_url}/v5/public/linear",
                "bybit_ws_private_url": f"{server.ws_url}/v5/private",
                "bybit_api_key": SecretStr(DEFAULT_API_KEY),
                "bybit_api_secret": SecretStr(DEFAULT_API_SECRET),
                **changes,
            }
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        if announce is not None:
            click.echo(announce(server.base_url))
        return await run_service(daemon_settings, stop, on_api=on_api)
    finally:
        await server.stop()


# ---- the decisions stage (issue 12): strategies, detectors, the ML gate, risk, execution ----------------

# A few minutes of a 1 s market see few trades at the production thresholds: the demo lets one strategy form
# a consensus (the costs, the detectors, the model's veto and risk still apply) and says so.
DEMO_DECISIONS: dict[str, object] = {"trading_enabled": True, "min_strategies": 1}


def _decide(target: Database, settings: Settings, minutes: float, on_api: OnApi | None = None) -> None:
    """The daemon decides and trades a fresh paper exchange; print signals per strategy, the ML gate's
    agreement, orders, fills, fees and PnL (depthcharge/commands/trading_report.py)."""
    from depthcharge.commands.trading_report import print_decisions, production_note, snapshot

    click.echo(
        f"deciding and trading {', '.join(settings.feed.symbols)} for {minutes:g} min: "
        f"{production_note(target, settings)}; demo settings MIN_STRATEGIES=1 ..."
    )
    before = asyncio.run(snapshot(target))
    report = asyncio.run(_decide_on_paper_exchange(settings, minutes * 60, on_api))
    after = asyncio.run(snapshot(target))
    print_decisions(report, before, after)


async def _decide_on_paper_exchange(
    settings: Settings, seconds: float, on_api: OnApi | None = None
) -> ServiceReport:
    return await _run_on_paper_exchange(
        settings, seconds, seed=44, changes=dict(DEMO_DECISIONS), on_api=on_api
    )
