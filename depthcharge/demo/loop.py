"""The whole loop of `depthcharge demo` (docs/demo.md), stage by stage.

1. the embedded database, migrated;
2. the processes: Dagster (webserver and daemon: schedules, sensors, the run queue), the paper exchange and
   the trading daemon (recording, deciding, trading, serving the API and the dashboard);
3. market history: the paper exchange's synthetic market recorded offline on virtual time (about 40× real
   time), with its scheduled regime shift at an hour boundary: the hour before it trains the first model,
   the minutes after it are what the drift report judges. It ends a day before now, so that its candles
   never overlap the live exchange's history of the same symbols;
4. Dagster materialises the graph for the training hour: features and labels, a trained and evaluated
   candidate, the gate, the drift reports; the gate promotes through the registry, which NOTIFYs;
5. the trading daemon hot-swaps to the promoted model (its `model_load` audit row) and trades with it;
6. the hour after the shift is exported and judged: drift reports against the production model;
7. the drift sensor, in the Dagster daemon, sees the report and launches `retraining_job`; the gate
   promotes the retrained candidate or keeps production, and a promotion is hot-swapped again;
8. the summary.

A second run finds what the first left (the database, the lake, the registry, the Dagster instance and
`$VAR_DIR/demo/state.json`) and skips the recording and the Dagster stages it finds done.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from depthcharge.demo.progress import StageFailed, Stages, pause, wait_for
from depthcharge.demo.services import Services, depthcharge_command
from depthcharge.demo.summary import Summary, read_decisions, read_summary
from infra.db.connection import Database
from infra.settings import Settings
from schemas.times import now_ms

if TYPE_CHECKING:
    import dagster as dg

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
HISTORY_SEED = 7
EXCHANGE_SEED = 44


@dataclass(frozen=True)
class DemoPlan:
    history_minutes: int
    drift_minutes: int
    trade_seconds: float
    sensor_interval_s: int
    keep_running: bool
    swap_timeout_s: float = 180.0
    retrain_timeout_s: float = 900.0


@dataclass(frozen=True)
class History:
    """The offline recording's window: [start_ms, shift_ms) trains, [shift_ms, end_ms) is judged."""

    start_ms: int
    shift_ms: int
    end_ms: int
    symbols: tuple[str, ...]

    @classmethod
    def plan(cls, plan: DemoPlan, symbols: tuple[str, ...]) -> History:
        shift = (now_ms() - DAY_MS) // HOUR_MS * HOUR_MS
        return cls(shift - plan.history_minutes * 60_000, shift, shift + plan.drift_minutes * 60_000, symbols)

    def time_key(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d-%H:00")


def _state_path(settings: Settings) -> Path:
    return settings.var_dir / "demo" / "state.json"


def _load_history(settings: Settings, plan: DemoPlan) -> History | None:
    """The first run's window, when its settings match (same symbols and lengths)."""
    try:
        saved = json.loads(_state_path(settings).read_text())
        history = History(
            int(saved["start_ms"]), int(saved["shift_ms"]), int(saved["end_ms"]), tuple(saved["symbols"])
        )
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        return None
    same = (
        history.symbols == settings.feed.symbols
        and history.shift_ms - history.start_ms == plan.history_minutes * 60_000
        and history.end_ms - history.shift_ms == plan.drift_minutes * 60_000
    )
    return history if same else None


def _save_history(settings: Settings, history: History) -> None:
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**history.__dict__, "symbols": list(history.symbols)}, indent=2) + "\n")


def _scalar(db: Database, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with db.connect() as conn:
        row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


class DemoLoop:
    """Runs the stages against one database and one set of processes."""

    def __init__(
        self, settings: Settings, password: str, target: Database, plan: DemoPlan, stages: Stages
    ) -> None:
        self.settings = settings
        self.password = password
        self.db = target
        self.plan = plan
        self.stages = stages
        self.services = Services(settings.var_dir / "demo" / "logs")
        self.started_ms = now_ms()
        self.urls: dict[str, str] = {}

    # -- stage 2: the processes ---------------------------------------------------------------------------

    def start_processes(self) -> None:
        from depthcharge.commands.dagster import dagster_environment, free_port, serve_commands
        from exchange_sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET

        with self.stages.stage("processes: Dagster, the paper exchange, the trading daemon") as said:
            env = {
                **os.environ,
                **dagster_environment(self.settings, self.db),
                "SENSOR_INTERVAL_S": str(self.plan.sensor_interval_s),
            }
            os.environ.update(env)  # this process materialises on the same instance and location
            config = self.settings.orchestration
            ui_port = _port_or_free(config.ui_host, config.ui_port)
            for name, command in serve_commands(config.ui_host, ui_port).items():
                self.services.start(name, command, env)
            exchange_port = free_port("127.0.0.1")
            symbols = ",".join(self.settings.feed.symbols)
            exchange = self.services.start(
                "paper-exchange",
                depthcharge_command(
                    "exchange-sim", "--port", str(exchange_port), "--seed", str(EXCHANGE_SEED),
                    "--symbols", symbols,
                ),
                env,
            )  # fmt: skip
            exchange_url = f"http://127.0.0.1:{exchange_port}"
            self.services.wait_ready(exchange, f"{exchange_url}/v5/market/time", timeout_s=60)
            api = self.settings.api
            api_port = _port_or_free(api.host, api.port)
            daemon_env = {
                **env,
                "BYBIT_REST_URL": exchange_url,
                "BYBIT_WS_PUBLIC_URL": f"ws://127.0.0.1:{exchange_port}/v5/public/linear",
                "BYBIT_WS_PRIVATE_URL": f"ws://127.0.0.1:{exchange_port}/v5/private",
                "BYBIT_API_KEY": DEFAULT_API_KEY,
                "BYBIT_API_SECRET": DEFAULT_API_SECRET,
                "TRADING_ENABLED": "true",
                # A few minutes of a 1 s market see few trades at the production threshold: one strategy
                # may form the consensus (costs, detectors, the model's veto and risk still apply).
                "MIN_STRATEGIES": "1",
                "API_ENABLED": "true",
                "API_PORT": str(api_port),
                "APP_PASSWORD": self.password,
            }
            daemon = self.services.start("trading-daemon", depthcharge_command("daemon"), daemon_env)
            api_url = f"http://{api.host}:{api_port}"
            self.services.wait_ready(daemon, f"{api_url}/health", timeout_s=120)
            dagster_url = f"http://{config.ui_host}:{ui_port}"
            webserver = self.services.children[0]
            self.services.wait_ready(webserver, f"{dagster_url}/server_info", timeout_s=120)
            self.urls = {
                "dashboard": f"{api_url}/",
                "API docs": f"{api_url}/docs",
                "Dagster UI": dagster_url,
                "paper exchange": exchange_url,
            }
            for name, url in self.urls.items():
                click.echo(f"    {name + ':':<16}{url}")
            click.echo(f"    {'login:':<16}{self.settings.app_username} / {self.password}")
            click.echo(f"    {'logs:':<16}{self.services.log_dir}")
            said.append(f"{len(self.services.children)} processes up")

    # -- stage 3: market history --------------------------------------------------------------------------

    def record_history(self) -> History:
        with self.stages.stage("market history: the synthetic market offline, regime shift included") as said:
            saved = _load_history(self.settings, self.plan)
            stored = 0 if saved is None else self._stored_rows(saved)
            if saved is not None and stored >= self._expected_rows(saved):
                said.append(f"reused the first run's recording ({stored:,} rows)")
                return saved
            history = History.plan(self.plan, self.settings.feed.symbols)
            recording = _record_with_progress(self.settings, history)
            from depthcharge.commands.record_sim import store

            added = asyncio.run(store(self.db, recording))
            _save_history(self.settings, history)
            said.append(
                "stored "
                + "; ".join(f"{s}: {a[0]:,} rows, {a[1]:,} trades" for s, a in added.items())
                + f"; regime shift at {_iso(history.shift_ms)}"
            )
            return history

    def _expected_rows(self, history: History) -> int:
        return (
            (history.end_ms - history.start_ms)
            // self.settings.feed.snapshot_interval_ms
            * len(history.symbols)
        )

    def _stored_rows(self, history: History) -> int:
        return int(
            _scalar(
                self.db,
                # A row's ts closes its interval: the window's rows are (start, end].
                "SELECT count(*) FROM market_snapshots WHERE ts > to_timestamp(%s / 1000.0) "
                "AND ts <= to_timestamp(%s / 1000.0)",
                (history.start_ms, history.end_ms),
            )
            or 0
        )

    # -- stage 4: the first model through Dagster ---------------------------------------------------------

    def train_first_model(self, history: History) -> str | None:
        import dagster as dg

        from orchestration.definitions import defs  # after the environment: the location reads it at import
        from orchestration.materialise import materialise_graph

        symbols = list(history.symbols)
        key = history.time_key(history.start_ms)
        with self.stages.stage(
            f"train and promote through Dagster (partition {key} × {len(symbols)})"
        ) as said:
            production = self._production()
            if production is not None and self._materialised("model_evaluation"):
                said.append(f"reused: {production} is in production")
                return production
            with dg.DagsterInstance.get() as instance:
                click.echo("    features and labels, training, evaluation, the gate, drift reports ...")
                graph = materialise_graph(defs, instance, [key], symbols)
            click.echo(_indent(graph.table()))
            for asset, meta in (("model_candidate", "test_fold_metrics"), ("model_evaluation", "gate")):
                if meta in graph.metadata.get(asset, {}):
                    click.echo(_indent(f"{asset} — {meta}:\n{graph.metadata[asset][meta]}"))
            if not graph.success:
                raise StageFailed("the Dagster graph did not materialise: see the table above")
            production = self._production()
            said.append(f"in production: {production or 'nothing (the gate refused every model)'}")
            return production

    # -- stage 5 / 9: hot swap and trading ----------------------------------------------------------------

    def hot_swap(self, version: str | None, title: str) -> None:
        with self.stages.stage(title) as said:
            if version is None:
                said.append("no model in production: the ML gate falls back to the strategies' consensus")
                return

            def swapped() -> bool:
                self.services.check_alive()
                return bool(
                    _scalar(
                        self.db,
                        """SELECT count(*) FROM audit_log WHERE action = 'model_load' AND success
                           AND entity_id = %s AND ts >= to_timestamp(%s / 1000.0)""",
                        (version, self.started_ms),
                    )
                )

            wait_for(f"the daemon loads {version}", swapped, timeout_s=self.plan.swap_timeout_s)
            said.append(f"the trading daemon serves {version}")

    def trade(self, title: str, seconds: float) -> None:
        with self.stages.stage(title) as said:
            if seconds <= 0:
                said.append("skipped (--trade-seconds 0)")
                return
            since = now_ms()
            pause(f"trading {seconds:g} s", seconds, every=lambda: self._activity(since))
            self.services.check_alive()
            said.append(self._activity(since))

    def _activity(self, since_ms: int) -> str:
        with self.db.connect() as conn:
            signals, orders, fills = conn.execute(
                """SELECT (SELECT count(*) FROM signals WHERE created_at >= to_timestamp(%(t)s / 1000.0)),
                          (SELECT count(*) FROM orders WHERE created_at >= to_timestamp(%(t)s / 1000.0)),
                          (SELECT count(*) FROM fills WHERE executed_at >= to_timestamp(%(t)s / 1000.0))""",
                {"t": since_ms},
            ).fetchone() or (0, 0, 0)
            decisions = read_decisions(conn, since_ms)
        return f"{signals} signals, {orders} orders, {fills} fills; {decisions.describe()}"

    # -- stage 6: the regime shift judged -----------------------------------------------------------------

    def judge_shift(self, history: History) -> list[int]:
        """Export and judge the hour after the shift; returns the ids of its drift reports."""
        import dagster as dg

        from orchestration.definitions import defs
        from orchestration.materialise import materialise_partitions

        key = history.time_key(history.shift_ms)
        symbols = list(history.symbols)
        with self.stages.stage(f"the regime shift: drift reports for partition {key}") as said:
            existing = self._drift(history)
            if existing:
                said.append("reused: " + ", ".join(f"{s} {sev}" for s, sev, _ in existing))
                return [i for _, _, i in existing]
            with (
                dg.DagsterInstance.get() as instance,
                click.progressbar(length=len(symbols), label="    export, features, drift report") as bar,
            ):
                graph = materialise_partitions(
                    defs, instance, [key], symbols, on_partition=lambda _k: bar.update(1)
                )
            click.echo(_indent(graph.table()))
            if not graph.success:
                raise StageFailed("the drift partitions did not materialise: see the table above")
            reports = self._drift(history)
            if not reports:
                said.append("no drift report: there is no production model to judge the shift against")
                return []
            said.append("severity " + ", ".join(f"{s} {sev}" for s, sev, _ in reports))
            return [i for _, _, i in reports]

    def _drift(self, history: History) -> list[tuple[str, str, int]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                """SELECT DISTINCT ON (symbol) symbol, severity, id FROM drift_reports
                   WHERE window_start = to_timestamp(%s / 1000.0) ORDER BY symbol, id DESC""",
                (history.shift_ms,),
            ).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    # -- stage 7: the drift sensor launches retraining ---------------------------------------------------

    def retrain_on_drift(self, report_ids: list[int]) -> str | None:
        """Wait for the sensor's retraining run and its gate; returns the version to hot-swap to, if
        promoted."""
        with self.stages.stage("the drift sensor launches retraining; the gate decides") as said:
            threshold = self.settings.orchestration.retrain_drift_severity
            if not report_ids:
                said.append("no drift report, no retraining")
                return None
            done = self._retraining_after(report_ids)
            if done is None:
                worst = _scalar(
                    self.db,
                    "SELECT max(array_position(ARRAY['none','low','medium','high'], severity)) "
                    "FROM drift_reports WHERE id = ANY (%s)",
                    (report_ids,),
                )
                if worst is None or worst - 1 < ("none", "low", "medium", "high").index(threshold):
                    said.append(f"no drift report reached RETRAIN_DRIFT_SEVERITY={threshold}: no retraining")
                    return None
                import dagster as dg

                # One instance for the whole wait: opening one per poll costs a database connection each time.
                with dg.DagsterInstance.get() as instance:
                    run_id = wait_for(
                        f"the sensor (every {self.plan.sensor_interval_s} s) launches retraining_job",
                        lambda: self._drift_run_id(instance),
                        timeout_s=self.plan.sensor_interval_s * 4 + 60,
                    )
                    click.echo(f"    Dagster run {run_id}: training, evaluation, the gate ...")
                    done = wait_for(  # type: ignore[assignment]
                        "retraining_job",
                        lambda: (
                            self._finished_run(instance, str(run_id)) and self._retraining_after(report_ids)
                        ),
                        timeout_s=self.plan.retrain_timeout_s,
                        poll_s=2.0,
                    )
            assert done is not None  # wait_for returns only a truthy value
            status, candidate, metric, cand_value, prod_value, reason = done
            said.append(
                f"{candidate}: {status} ({metric} {_fmt(cand_value)} vs production {_fmt(prod_value)}; {reason})"
            )
            return str(candidate) if status == "promoted" else None

    def _retraining_after(self, report_ids: list[int]) -> tuple[Any, ...] | None:
        """The retraining the sensor launched for any of these reports (the sensor may see the first
        symbol's report before the others are written: one run per window, whichever report it saw)."""
        with self.db.connect() as conn:
            row = conn.execute(
                """SELECT status, candidate_version, metric, candidate_value, production_value, reason
                   FROM retraining_runs WHERE trigger = 'drift' AND drift_report_ids && %s::bigint[]
                   ORDER BY id DESC LIMIT 1""",
                (report_ids,),
            ).fetchone()
        return None if row is None else tuple(row)

    def _drift_run_id(self, instance: dg.DagsterInstance) -> str | None:
        import dagster as dg

        from orchestration.retraining import TRIGGER_TAG

        self.services.check_alive()
        runs = instance.get_runs(
            filters=dg.RunsFilter(
                job_name="retraining_job",
                tags={TRIGGER_TAG: "drift"},
                created_after=datetime.fromtimestamp(self.started_ms / 1000, UTC),
            ),
            limit=1,
        )
        return runs[0].run_id if runs else None

    def _finished_run(self, instance: dg.DagsterInstance, run_id: str) -> bool:
        import dagster as dg

        self.services.check_alive()
        run = instance.get_run_by_id(run_id)
        if run is None:
            return False
        if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            raise StageFailed(f"retraining run {run_id} ended {run.status.value}: open it in the Dagster UI")
        return run.status is dg.DagsterRunStatus.SUCCESS

    # -- helpers ------------------------------------------------------------------------------------------

    def _production(self) -> str | None:
        value = _scalar(self.db, "SELECT version FROM model_versions WHERE status = 'production'")
        return None if value is None else str(value)

    def _materialised(self, asset: str) -> bool:
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            return instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None

    def summary(self, history: History | None) -> Summary:
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            partitions = {
                name: len(instance.get_materialized_partitions(dg.AssetKey(name)))
                for name in ("raw_snapshots", "labelled_features", "drift_report")
            }
        return read_summary(
            self.db,
            since_ms=self.started_ms,
            drift_window_ms=None if history is None else history.shift_ms,
            partitions=partitions,
        )


def _record_with_progress(settings: Settings, history: History) -> Any:
    from depthcharge.offline_recording import record_synthetic

    seconds = (history.end_ms - history.start_ms) // 1000
    total = seconds * len(history.symbols) * 1000 // settings.feed.snapshot_interval_ms

    class Progress:
        """A MarketSink that only moves the bar."""

        def __init__(self, bar: Any) -> None:
            self.bar = bar

        def submit_rows(self, rows: Any) -> None:
            self.bar.update(len(rows))

        def submit_trades(self, trades: Any) -> None:
            pass

        def submit_candles(self, candles: Any) -> None:
            pass

    label = (
        f"    {seconds // 60} min of {', '.join(history.symbols)} (seed {HISTORY_SEED}, "
        f"shift at minute {(history.shift_ms - history.start_ms) // 60_000})"
    )
    with click.progressbar(length=total, label=label) as bar:
        return record_synthetic(
            list(history.symbols),
            seconds=seconds,
            seed=HISTORY_SEED,
            start_ms=history.start_ms,
            shift_at_ms=history.shift_ms,
            feed=settings.feed,
            sinks=[Progress(bar)],
        )


def _port_or_free(host: str, port: int) -> int:
    """`port` when it can be bound on `host`, else any free one (0 means any)."""
    import socket

    from depthcharge.commands.dagster import free_port

    if port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
                return port
            except OSError:
                click.echo(f"    port {port} on {host} is taken: using a free one")
    return int(free_port(host))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
