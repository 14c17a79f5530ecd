"""The soak runner: the daemon as a real process against an in-process paper exchange and the soak's own
PostgreSQL, faults on the schedule of `schedule.plan`, then the measurements of `measures` over the evidence.

Processes: the paper exchange runs in the soak's event loop (so the book tap sees every publication and the
admin API is at hand); the daemon is `python -m depthcharge daemon`, one process per incarnation, pointed at
the exchange and the database by environment variables; PostgreSQL is the soak's own embedded server.

The daemon's incarnations: first it decides (strategies and the ML gate, production model v1: the
promotion of v2 must be followed by a hot swap); then it trades a scripted intent source — with
SCRIPTED_INTENT_INTERVAL_S set the daemon builds no decisions (trading_daemon/service.py), so a daemon
cannot both follow promotions and trade the script, and the soak switches with a SIGTERM and a restart; the
SIGKILL later kills the trading daemon and a new one is started at once. The schedule's clock starts when
the first daemon is ready.

Nothing is accelerated: the daemon cuts rows, measures its clock offset and paces its requests on the wall
clock, and an exchange clock running faster would put its rows and signatures out of step; what a soak
compresses is the density of faults and the rate of trading (an intent every second).

At the end every fault is off; the runner notes the exchange time, waits for a reconciliation pass that
started later (so every order and fill before that moment must be in the database), stops the daemon with
SIGTERM, and measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from depthcharge.soak import evidence as ev
from depthcharge.soak import measures
from depthcharge.soak.booktap import BookTap, instrument_steps
from depthcharge.soak.model import promote, register_tiny
from depthcharge.soak.processes import DaemonProcess, SoakDatabase, daemon_environment
from depthcharge.soak.schedule import (
    DB_RESTART,
    DELTA_DROP,
    HTTP_5XX,
    KILL,
    PROMOTE,
    QUIET,
    RATE_LIMIT,
    REST_OUTAGE,
    SWITCH,
    WS_DISCONNECT,
    FaultEvent,
    plan,
)
from depthcharge.soak.summary import EventRecord, SoakSummary
from exchange_sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_SYMBOLS, SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from ml.registry import ModelRegistry
from schemas.features import feature_spec

SNAPSHOT_INTERVAL_MS = 1000
SETTLE_TIMEOUT_S = 60.0  # for the closing reconciliation pass


@dataclass(frozen=True)
class SoakConfig:
    """What to soak and where. `pgdata` is the soak's own server (restarted mid-run); each run creates a
    fresh database on it (dropped at the end unless `keep_database`) and a directory under `runs_dir`."""

    seconds: float = 600.0
    seed: int = 7
    pgdata: Path = Path("var/soak/pg")
    runs_dir: Path = Path("var/soak/runs")
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    keep_database: bool = False
    script_interval_s: float = 1.0
    reconcile_interval_s: float = 5.0


Echo = Callable[[str], None]


@dataclass
class _State:
    daemon: DaemonProcess | None = None
    incarnation: int = 0
    expected_exit: bool = False
    down: list[tuple[int, int]] = field(default_factory=list)  # exchange ms the daemon was down
    unexpected_exits: list[str] = field(default_factory=list)
    promoted_version: str | None = None
    promoted_at_ms: int | None = None
    window_tasks: set[asyncio.Task[None]] = field(default_factory=set)


class SoakRunner:
    """Runs one soak (`await run()`) and returns its summary."""

    def __init__(self, config: SoakConfig, echo: Echo = print) -> None:
        if config.seconds <= 0 or config.script_interval_s <= 0 or config.reconcile_interval_s <= 0:
            raise ValueError("seconds, script_interval_s and reconcile_interval_s must be positive")
        if not config.symbols:
            raise ValueError("the soak needs at least one symbol")
        self.config = config
        self.schedule = plan(config.seconds, config.seed)  # raises for too short a run
        self.echo = echo
        stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        self.name = f"soak_{stamp}_s{config.seed}"
        self.run_dir = (config.runs_dir / self.name).resolve()
        self.state = _State()
        self.sock_dir = Path(tempfile.gettempdir())
        self.rest_faults: dict[str, int] = {"http_503": 0, "retcode_10016": 0, "retcode_10006": 0}

    async def run(self) -> SoakSummary:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sock_dir = Path(tempfile.mkdtemp(prefix="dc-soak-"))
        pg = SoakDatabase(cfg.pgdata)
        summary = SoakSummary(cfg.seconds, cfg.seed, f"{pg.pgdata} (database {self.name})", str(self.run_dir))
        self.echo(f"soak {self.name}: {cfg.seconds:g} s, seed {cfg.seed}; database server {pg.pgdata}")
        db = await asyncio.to_thread(pg.start, self.name)
        server = SimServer(
            SimConfig(port=0, symbols=cfg.symbols, seed=cfg.seed),
            lambda venue: build_market(venue.engine, list(venue.instruments), seed=cfg.seed),
        )
        server.app.middlewares.insert(0, self._count_rest_faults(server))
        try:
            await self._soak(pg, db, server, summary)
        finally:
            await self._close_daemon()
            await server.stop()
            if not cfg.keep_database:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(pg.drop)
            await asyncio.to_thread(pg.close)
            shutil.rmtree(self.sock_dir, ignore_errors=True)
        return summary

    async def _soak(self, pg: SoakDatabase, db: Database, server: SimServer, summary: SoakSummary) -> None:
        cfg, state = self.config, self.state
        var_dir = self.run_dir / "var"
        registry = ModelRegistry(db, var_dir / "models")
        spec = feature_spec(SNAPSHOT_INTERVAL_MS)
        symbols = list(cfg.symbols)
        v1 = await asyncio.to_thread(register_tiny, registry, spec, seed=cfg.seed * 2 + 1, symbols=symbols)
        v2 = await asyncio.to_thread(register_tiny, registry, spec, seed=cfg.seed * 2 + 2, symbols=symbols)
        await asyncio.to_thread(promote, db, v1.version)
        await server.start()
        tap = BookTap(server)
        env = {
            **daemon_environment(),
            "DATABASE_URL": db.conninfo, "VAR_DIR": str(var_dir), "LOG_LEVEL": "INFO", "API_ENABLED": "false",
            "TRADING_PAIRS": ",".join(symbols), "SNAPSHOT_INTERVAL_MS": str(SNAPSHOT_INTERVAL_MS),
            "BYBIT_REST_URL": server.base_url, "BYBIT_WS_PUBLIC_URL": f"{server.ws_url}/v5/public/linear",
            "BYBIT_WS_PRIVATE_URL": f"{server.ws_url}/v5/private", "BYBIT_API_KEY": DEFAULT_API_KEY,
            "BYBIT_API_SECRET": DEFAULT_API_SECRET, "TRADING_ENABLED": "true",
            "RECONCILE_INTERVAL_S": str(cfg.reconcile_interval_s), "STARTUP_RETRY_MAX_S": "2",
            "DB_CONNECT_TIMEOUT_S": "3",
            # An open breaker lets a trial call through after this; the default minute is a tenth of a soak.
            "CIRCUIT_BREAKER_COOLDOWN_S": "5",
            # Promotions reach the daemon by NOTIFY only: a hot swap by polling would hide a lost notification.
            "ML_POLL_INTERVAL_S": "3600",
        }  # fmt: skip
        decide_env = {**env, "SCRIPTED_INTENT_INTERVAL_S": "0"}
        trade_env = {**env, "SCRIPTED_INTENT_INTERVAL_S": str(cfg.script_interval_s)}
        self.echo(f"paper exchange on {server.base_url}; models {v1.version} (production), {v2.version}")
        async with aiohttp.ClientSession() as session:

            async def admin(path: str, body: dict[str, Any]) -> Any:
                async with session.post(f"{server.base_url}{path}", json=body) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"paper exchange admin {path} refused {body}: {await resp.text()}")
                    return await resp.json()

            await self._start_daemon("decide", decide_env, server)
            t0 = time.monotonic()
            self.echo(f"daemon ready (deciding, model {v1.version}); the schedule starts")
            handlers = self._handlers(pg, db, server, admin, summary, v2.version, trade_env)
            for event in self.schedule:
                await self._until(t0 + event.at_s, server, trade_env)
                actual = time.monotonic() - t0
                note = await handlers[event.kind](event)
                summary.events.append(EventRecord(event.at_s, actual, event.kind, note))
                self.echo(f"{actual:7.1f} s  {event.kind}" + (f": {note}" if note else ""))
            await self._until(t0 + cfg.seconds, server, trade_env)
            cutoff_wall_ms, cutoff_exchange_ms = int(time.time() * 1000), server.venue.clock.now()
            settled = await self._settle(db, cutoff_wall_ms)
            self.echo(
                "closing reconciliation " + ("done" if settled else "NOT seen: unknown orders may be late")
            )
            state.expected_exit = True
            assert state.daemon is not None
            code = await state.daemon.stop()
            self.echo(f"daemon stopped (exit {code})")
        tap.close()
        await self._measure(db, server, tap, summary, cutoff_exchange_ms, var_dir)
        summary.db_restarts = pg.restarts

    # --- the fault handlers ---------------------------------------------------------------------------

    def _handlers(
        self,
        pg: SoakDatabase,
        db: Database,
        server: SimServer,
        admin: Callable[[str, dict[str, Any]], Awaitable[Any]],
        summary: SoakSummary,
        version: str,
        trade_env: dict[str, str],
    ) -> dict[str, Callable[[FaultEvent], Awaitable[str]]]:
        state = self.state

        async def promotion(event: FaultEvent) -> str:
            state.promoted_at_ms = int(time.time() * 1000)
            await asyncio.to_thread(promote, db, version)
            state.promoted_version = version
            return f"{version} is production"

        async def switch(event: FaultEvent) -> str:
            down_from = server.venue.clock.now()
            exit_code = await self._stop_daemon()
            ready_s = await self._start_daemon("trade", trade_env, server, down_from=down_from)
            return f"deciding daemon stopped (exit {exit_code}); trading daemon ready after {ready_s:.1f} s"

        async def db_restart(event: FaultEvent) -> str:
            began = time.monotonic()
            await asyncio.to_thread(pg.restart, event.duration_s)
            return (
                f"server down {event.duration_s:.1f} s, serving again after {time.monotonic() - began:.1f} s"
            )

        async def kill(event: FaultEvent) -> str:
            daemon = state.daemon
            assert daemon is not None
            down_from = server.venue.clock.now()
            state.expected_exit = True
            daemon.kill()
            code = await daemon.wait_exit()
            summary.sigkills += code == -9
            daemon.close()
            ready_s = await self._start_daemon("trade-after-kill", trade_env, server, down_from=down_from)
            return f"pid {daemon.pid} exit {code}; restarted, ready after {ready_s:.1f} s"

        async def disconnect(event: FaultEvent) -> str:
            closed = (await admin("/sim/ws/disconnect", {"scope": event.params["scope"]}))["closed"]
            summary.ws_disconnects += 1
            return f"{event.params['scope']}: {closed} connection(s) closed"

        async def window(event: FaultEvent) -> str:
            await admin("/sim/faults", event.params)
            off = {"delta_drop_rate": 0.0} if event.kind == DELTA_DROP else {"error_rate": 0.0}
            self._later(event.duration_s, lambda: admin("/sim/faults", off))
            return ", ".join(f"{k} {v}" for k, v in event.params.items()) + f" for {event.duration_s:.1f} s"

        async def quiet(event: FaultEvent) -> str:
            for task in state.window_tasks:
                task.cancel()
            await admin("/sim/faults/reset", {})
            return "every fault off"

        return {
            PROMOTE: promotion, SWITCH: switch, DB_RESTART: db_restart, KILL: kill, WS_DISCONNECT: disconnect,
            DELTA_DROP: window, HTTP_5XX: window, RATE_LIMIT: window, REST_OUTAGE: window, QUIET: quiet,
        }  # fmt: skip

    def _later(self, delay_s: float, action: Callable[[], Awaitable[Any]]) -> None:
        async def after() -> None:
            await asyncio.sleep(delay_s)
            await action()

        task = asyncio.create_task(after())
        self.state.window_tasks.add(task)
        task.add_done_callback(self.state.window_tasks.discard)

    # --- the daemon's incarnations --------------------------------------------------------------------

    async def _start_daemon(
        self, mode: str, env: dict[str, str], server: SimServer, *, down_from: int | None = None
    ) -> float:
        """Start an incarnation and wait for READY=1; the time from `down_from` to ready is a down window."""
        state = self.state
        state.incarnation += 1
        daemon = DaemonProcess(f"{state.incarnation}-{mode}", env, self.run_dir, self.sock_dir)
        state.daemon, state.expected_exit = daemon, False
        await daemon.wait_ready()
        if down_from is not None:
            state.down.append((down_from, server.venue.clock.now()))
        return daemon.ready_after_s or 0.0

    async def _stop_daemon(self) -> int:
        """SIGTERM the current incarnation (a planned stop) and wait for its exit."""
        daemon = self.state.daemon
        assert daemon is not None
        self.state.expected_exit = True
        code = await daemon.stop()
        daemon.close()
        return code

    async def _close_daemon(self) -> None:
        daemon = self.state.daemon
        if daemon is not None:
            self.state.expected_exit = True
            daemon.close()
            self.state.daemon = None

    async def _until(self, deadline: float, server: SimServer, trade_env: dict[str, str]) -> None:
        """Sleep until `deadline` (monotonic), restarting a daemon that died on its own (and noting it)."""
        state = self.state
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(0.5, left))
            daemon = state.daemon
            if daemon is not None and not state.expected_exit and daemon.proc.poll() is not None:
                down_from = server.venue.clock.now()
                state.unexpected_exits.append(f"{daemon.name} exited {daemon.proc.returncode}")
                self.echo(
                    f"daemon {daemon.name} exited {daemon.proc.returncode} on its own:\n{daemon.tail(1500)}"
                )
                daemon.close()
                await self._start_daemon("trade-after-exit", trade_env, server, down_from=down_from)

    async def _settle(self, db: Database, after_wall_ms: int) -> bool:
        """Wait for a successful reconciliation pass that started after `after_wall_ms`."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                last = await asyncio.to_thread(ev.last_reconciliation_ms, db)
                if last is not None and last > after_wall_ms:
                    return True
            await asyncio.sleep(0.5)
        return False

    def _count_rest_faults(self, server: SimServer) -> Any:
        """Count the REST failures the exchange injected (what the daemon met, from the exchange's side)."""
        counts = self.rest_faults

        @web.middleware
        async def count(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
            response = await handler(request)
            if request.path.startswith("/v5/") and server.state.faults.config.error_rate > 0:
                if response.status == 503:
                    counts["http_503"] += 1
                elif isinstance(response, web.Response) and response.text is not None:
                    for code in ("10016", "10006"):
                        if f'"retCode":{code}' in response.text.replace(" ", ""):
                            counts[f"retcode_{code}"] += 1
            return response

        return count

    # --- measuring ------------------------------------------------------------------------------------

    async def _measure(
        self,
        db: Database,
        server: SimServer,
        tap: BookTap,
        summary: SoakSummary,
        cutoff_ms: int,
        var_dir: Path,
    ) -> None:
        cfg, state = self.config, self.state
        symbols = list(cfg.symbols)
        exchange = await ev.read_exchange(server.base_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, symbols)
        stored = await asyncio.to_thread(ev.read_database, db, symbols)
        logs = await asyncio.to_thread(ev.read_logs, var_dir / "logs")

        summary.incarnations = state.incarnation
        summary.restarts_ready = state.incarnation - 1
        summary.ws_reconnects = logs.count(ev.WS_RECONNECTED)
        summary.resyncs = logs.count(ev.RESYNC)
        summary.breaker_trips = logs.count(ev.BREAKER_OPENED)
        summary.spool_outages = logs.count(ev.SPOOLING)
        summary.spool_backfills = logs.count(ev.BACKFILLED)
        summary.daemon_errors = logs.errors + [f"unexpected exit: {e}" for e in state.unexpected_exits]
        summary.unexpected_exits = len(state.unexpected_exits)
        summary.rest_faults = dict(self.rest_faults)
        summary.promoted = state.promoted_version
        swap = next(
            (s for s in logs.swaps if s.get("version") == state.promoted_version
             and str(s.get("trigger", "")).startswith("model_promoted")),
            None,
        )  # fmt: skip
        if swap is not None and state.promoted_at_ms is not None:
            summary.swapped = True
            at = ev.log_time_ms(swap)
            summary.swap_latency_ms = None if at is None else at - state.promoted_at_ms

        summary.orders = len(stored.order_ids)
        summary.orders_by_status = stored.orders_by_status
        summary.exchange_orders = len(exchange.orders)
        summary.fills = len(stored.fills)
        summary.exchange_fills = len(exchange.fills)
        summary.reconciliations = stored.reconciliations
        summary.reconciliations_failed = stored.reconciliations_failed

        summary.duplicates = measures.duplicate_orders(exchange.orders)
        summary.unknown_orders = measures.unknown_orders(exchange.orders, stored.order_ids, cutoff_ms)
        summary.missing_fills = measures.missing_fills(exchange.fills, stored.fills, cutoff_ms)
        known = [o.link_id for o in exchange.orders if o.link_id in stored.order_ids]
        summary.audit = measures.lost_audit_rows(
            stored.order_events, stored.audited_statuses, stored.fills, stored.audited_fills, known,
            stored.audited_orders, stored.chain_problems,
        )  # fmt: skip
        summary.audit_rows = stored.chain_rows
        summary.snapshots = measures.snapshot_gaps(stored.snapshot_ts, SNAPSHOT_INTERVAL_MS, state.down)
        summary.book = measures.book_mismatches(stored.book_rows, tap.digests, instrument_steps(server))


async def run_soak(config: SoakConfig, echo: Echo = print) -> SoakSummary:
    """Run one soak and return its summary."""
    return await SoakRunner(config, echo).run()
