"""Execution inside the daemon: the parts wired together, started in order, run and stopped.

`open()` (run by the daemon's start-up runner, so a transient failure is retried and a configuration error
ends the process with status 2) takes the account lock, restores the state machines and the live orders
and positions from the database, loads a halt left by the kill switch, reads the instrument rules, starts
the private stream and reconciles once. `run(stop)` then keeps it honest: a reconciliation every
RECONCILE_INTERVAL_S, the lock watched (lost → entries halted; regained → reconcile), expired idempotency
keys purged, and the scripted intent source when SCRIPTED_INTENT_INTERVAL_S asks for it.

The decisions reach execution through `runtime.manager` (`IntentSubmitter`) and read `runtime.account`
(`AccountView`); extra `PreTradeCheck`s (risk) are passed in `checks` and run after the instrument rules.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.repositories import AuditRepository, ExecutionStateRepository, IdempotencyRepository
from infra.settings import ExecutionConfig
from schemas.enums import AuditAction, Side
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPrivateWebSocket
from trading_daemon.execution.account import AccountState
from trading_daemon.execution.account_lock import AccountLock, account_key
from trading_daemon.execution.audit import Auditor
from trading_daemon.execution.contracts import PreTradeCheck
from trading_daemon.execution.idempotency import IdempotencyService
from trading_daemon.execution.instruments import InstrumentCheck, InstrumentRules
from trading_daemon.execution.kill_switch import KillSwitch
from trading_daemon.execution.ledger import Ledger
from trading_daemon.execution.manager import ExecutionManager
from trading_daemon.execution.market_view import MarketView
from trading_daemon.execution.pause import BotPause
from trading_daemon.execution.reconciliation import Reconciler, ReconciliationReport
from trading_daemon.execution.registry import FSMRegistry
from trading_daemon.execution.scripted import ScriptedIntentSource
from trading_daemon.execution.tracking import ExecutionTracker

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
IDEMPOTENCY_PURGE_S = 600.0


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str


class ExecutionRuntime:
    """Everything execution needs in the daemon, built without I/O; `open`, `run`, `close`."""

    def __init__(
        self,
        config: ExecutionConfig,
        *,
        db: Database,
        pool: AsyncConnectionPool,
        rest: BybitRestClient,
        ws_private_url: str,
        credentials: Credentials,
        symbols: Sequence[str],
        market: MarketView | None = None,
        checks: Sequence[PreTradeCheck] = (),
        ws_options: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.rest = rest
        self.symbols = list(symbols)
        self.market = market
        self.account_key = account_key(rest.http.base_url, credentials.api_key)
        self.lock = AccountLock(db, self.account_key)
        self.registry = FSMRegistry()
        self.account = AccountState()
        self.auditor = Auditor(AuditRepository(pool), market=market.context if market is not None else None)
        self.ledger = Ledger(pool, auditor=self.auditor, registry=self.registry, account=self.account)
        self.ledger.restore_history = config.fsm_auto_restore
        self.idempotency = IdempotencyService(IdempotencyRepository(pool), ttl_s=config.idempotency_ttl_s)
        self.rules: dict[str, InstrumentRules] = {}
        self.instrument_check = InstrumentCheck(self.rules, self._reference_price)
        self.manager = ExecutionManager(
            rest,
            self.ledger,
            self.idempotency,
            config,
            checks=[self.instrument_check, *checks],
            market=market,
        )
        self.kill_switch = KillSwitch(
            self.manager, ExecutionStateRepository(pool), account_key=self.account_key
        )
        self.pause = BotPause(self.manager, ExecutionStateRepository(pool), account_key=self.account_key)
        self.reconciler = Reconciler(rest, self.ledger, self.manager, config, account_key=self.account_key)
        ws = BybitPrivateWebSocket(
            ws_private_url, api_key=credentials.api_key, api_secret=credentials.api_secret, clock=rest.http.now_ms,
            **(ws_options or {}),
        )  # fmt: skip
        self.tracker = ExecutionTracker(
            ws, self.ledger, self.reconciler, poll_interval_s=config.order_poll_interval_s
        )
        self.script: ScriptedIntentSource | None = None
        if config.scripted_intent_interval_s > 0:
            self.script = ScriptedIntentSource(
                self.manager, self.account, self.symbols, interval_s=config.scripted_intent_interval_s,
                notional=Decimal(str(config.scripted_intent_notional_usdt)), clock=rest.http.now_ms, market=market,
            )  # fmt: skip
        self.first_reconciliation: ReconciliationReport | None = None
        self._loaded = False
        self._started = False
        self._closed = False

    # --- start-up -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """The start-up steps, each done once (safe to call again after a transient failure)."""
        if not self.lock.held:
            await self.lock.acquire(wait_s=self.config.account_lock_wait_s)
        if not self._loaded:
            restored = (
                await self.registry.restore(self.ledger.orders, self.ledger.positions)
                if self.config.fsm_auto_restore
                else {}
            )
            loaded = await self.ledger.load(since_ms=self.rest.http.now_ms() - DAY_MS)
            halt = await self.kill_switch.load()
            paused = await self.pause.load()
            await self.auditor.record(
                AuditAction.BOT_START, "Daemon", self.account_key, actor="daemon",
                reason="execution started", new={"restored": restored, "loaded": loaded, "halted": halt, "paused": paused},
                context={"config": {k: getattr(self.config, k) for k in self.config.__slots__}},
            )  # fmt: skip
            log.info(
                "FSM RESTORATION", orders=restored.get("orders", 0), positions=restored.get("positions", 0)
            )
            self._loaded = True
        if not self.rules:
            for info in await self.rest.get_instruments():
                if info.symbol in self.symbols:
                    self.rules[info.symbol] = InstrumentRules.from_info(info)
        if not self._started:
            await self.tracker.start()
            self._started = True
        if self.first_reconciliation is None:
            self.first_reconciliation = await self.reconciler.reconcile("start")

    async def _reference_price(self, symbol: str, side: Side) -> Decimal | None:
        """The touch a market order of `side` would take (the market view's, else the ticker's)."""
        touch = self.market.touch(symbol) if self.market is not None else None
        if touch is not None:
            return touch[1] if side is Side.BUY else touch[0]
        tickers = await self.rest.get_tickers(symbol)
        if not tickers:
            return None
        t = tickers[0]
        price = t.ask_price if side is Side.BUY else t.bid_price
        return price or t.last_price or t.mark_price

    # --- running ------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """The background work, until `stop` is set."""
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._reconcile_periodically(stop), name="reconcile-periodic"),
            asyncio.create_task(
                self.lock.watch(stop, on_lost=self._lock_lost, on_regained=self._lock_regained),
                name="account-lock",
            ),
            asyncio.create_task(self._purge_idempotency(stop), name="idempotency-purge"),
        ]
        if self.script is not None:
            tasks.append(asyncio.create_task(self.script.run(stop), name="scripted-intents"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _reconcile_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.reconcile_interval_s)
            if not stop.is_set():
                await self.reconciler.reconcile("interval")

    async def reconcile_now(self) -> ReconciliationReport:
        """On demand (the operator, the API later)."""
        return await self.reconciler.reconcile("demand")

    def _lock_lost(self) -> None:
        self.account.hold("account_lock", "the single-trader lock was lost with its database connection")

    async def _lock_regained(self) -> None:
        report = await self.reconciler.reconcile("lock")
        if report.success:
            self.account.release("account_lock")

    async def _purge_idempotency(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), IDEMPOTENCY_PURGE_S)
            with contextlib.suppress(Exception):
                await self.idempotency.cleanup_expired()

    async def close(self) -> None:
        """Stop tracking, cancel the settling of unknown outcomes (the next start settles them), audit the
        stop, release the lock; once."""
        if self._closed:
            return
        self._closed = True
        for task in list(self.manager.settling.values()):
            task.cancel()
        await self.tracker.close()
        await self.ledger.drain_hooks()
        if not self._loaded:  # never started (e.g. another daemon holds the account): nothing to record
            await self.lock.release()
            return
        with contextlib.suppress(Exception):
            await self.auditor.record(
                AuditAction.BOT_STOP, "Daemon", self.account_key, actor="daemon", reason="execution stopped",
                new=self.summary(),
            )  # fmt: skip
        await self.lock.release()

    def summary(self) -> dict[str, Any]:
        """Counts for the demo's printout and the stop audit row."""
        last = self.reconciler.last
        return {
            "manager": asdict(self.manager.stats),
            "ledger": asdict(self.ledger.stats),
            "fills": asdict(self.ledger.book.stats),
            "script": asdict(self.script.stats) if self.script is not None else None,
            "tracker": {"messages": self.tracker.messages, "polls": self.tracker.polls,
                        "reconnects": self.tracker.reconnects},
            "reconciled": self.account.reconciled(),
            "holds": dict(self.account.holds),
            "last_reconciliation": last.summary() if last is not None else None,
            "registry": self.registry.get_stats(),
        }  # fmt: skip
