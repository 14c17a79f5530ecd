"""The decisions inside the daemon: analyzer, detectors, health, risk, the ML gate, strategies and the engine,
wired together, started in order, run and stopped (the daemon's service builds one when TRADING_ENABLED).

    DecisionsRuntime(...)        builds everything without I/O; `sinks`/`book_sinks` go to the market feed
    runtime.risk                 the pre-trade check execution runs (`PreTradeCheck`)
    attach(submitter, account)   execution's `IntentSubmitter` and `AccountView`: the engine is built
    await open()                 restores the strategies' statistics, loads the production model
    await run(stop)              writers, detectors' store, promotion watcher, engine workers, statistics
                                 persistence, trade outcomes → per-strategy statistics; until `stop`
    await close()                drains the engine, flushes every writer

The feed's sinks must see a row in this order: the arrival stamp first, then the live features and the
analyzer, the detectors and the health tracker, and the engine last (`sinks_around`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.notifications import listen
from infra.db.repositories.audit import AuditRepository
from infra.db.repositories.detections import DetectionRepository
from infra.db.repositories.model_versions import PROMOTION_CHANNEL
from infra.db.repositories.orders import OrderRepository
from infra.db.repositories.positions import PositionRepository
from infra.db.repositories.signals import PredictionRow, SignalRepository
from infra.db.repositories.strategy_statistics import StrategyStatisticsRepository
from infra.settings import (
    AnalyzerConfig,
    DecisionConfig,
    DetectionConfig,
    MLGateConfig,
    RiskConfig,
    StrategyConfig,
)
from ml.registry import ModelRegistry
from schemas.enums import PositionStatus
from schemas.features import FeatureSpec
from schemas.market import Candle
from schemas.trading import AuditEvent, Position, Signal
from trading_daemon.analysis import MarketAnalyzer
from trading_daemon.decisions.engine import DecisionEngine
from trading_daemon.decisions.records import ArrivalStamp
from trading_daemon.decisions.writer import BatchWriter
from trading_daemon.detection.service import DetectionService
from trading_daemon.detection.store import DetectionStore
from trading_daemon.execution.contracts import AccountView, IntentSubmitter
from trading_daemon.features.live import LiveFeatures
from trading_daemon.ml_gate import GatePrediction, MLGate, PromotionWatcher
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.risk import ErrorBurst, RiskManager, TradingHealth
from trading_daemon.risk.health import BreakerStates
from trading_daemon.strategies import StrategyManager, TradeOutcome, entry_context, outcome_from_position

log = structlog.get_logger(__name__)

STATISTICS_PERSIST_S = 30.0
OUTCOME_POLL_S = 5.0


class DecisionsRuntime:
    """Everything the decisions need in the daemon (module docstring)."""

    def __init__(
        self,
        *,
        decisions: DecisionConfig,
        gate: MLGateConfig,
        risk: RiskConfig,
        analyzer: AnalyzerConfig,
        strategies: StrategyConfig,
        detection: DetectionConfig,
        symbols: Sequence[str],
        spec: FeatureSpec,
        db: Database,
        pool: AsyncConnectionPool,
        models_dir: Path,
        features: LiveFeatures,
        candles: Callable[[str], Sequence[Candle]],
        exchange_now_ms: Callable[[], int],
        errors: ErrorBurst | None = None,
        breakers: BreakerStates | None = None,
        metrics: DaemonMetrics | None = None,
    ) -> None:
        self.config = decisions
        self.symbols = list(symbols)
        self.pool = pool
        self.features = features
        self.candles = candles
        self.exchange_now_ms = exchange_now_ms
        self.metrics = metrics
        store = SignalRepository(pool)
        audit_repo = AuditRepository(pool)

        async def append_audit(batch: Sequence[AuditEvent]) -> None:
            await audit_repo.append(batch[0])  # one per batch: a retry never appends a row twice

        self.audit: BatchWriter[AuditEvent] = BatchWriter("audit", append_audit, batch_size=1)
        self.signals: BatchWriter[Signal] = BatchWriter("signals", store.add_many)
        self.predictions: BatchWriter[PredictionRow] = BatchWriter("predictions", store.add_predictions)
        self.analyzer = MarketAnalyzer(analyzer)
        self.detection = DetectionService(
            detection, self.symbols, store=DetectionStore(DetectionRepository(pool)), metrics=metrics
        )
        self.health = TradingHealth(
            self.symbols, book_stale_ms=risk.book_stale_ms, now_ms=exchange_now_ms, errors=errors,
            breakers=breakers, manipulation=self.detection.blocked,
        )  # fmt: skip
        self.risk = RiskManager(
            risk, self.health, metrics=metrics, audit=self.audit.put, clock=exchange_now_ms
        )
        self.registry = ModelRegistry(db, models_dir)
        self.gate = MLGate(
            self.registry, gate, spec_hash=spec.spec_hash, metrics=metrics, audit=self.audit.put
        )

        def listener(on_listening: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
            return listen(db, PROMOTION_CHANNEL, on_listening=on_listening)

        self.watcher = PromotionWatcher(self.gate, listener, poll_interval_s=gate.poll_interval_s)
        self.strategies = StrategyManager(
            strategies, store=StrategyStatisticsRepository(pool), metrics=metrics
        )
        self.engine: DecisionEngine | None = None
        self.account: AccountView | None = None
        self.arrivals = ArrivalStamp()
        self._seen_closed: set[int] = set()
        self.outcomes_recorded = 0

    # -- wiring -------------------------------------------------------------------------------------------

    @property
    def sinks(self) -> list[Any]:
        """The market sinks to run after the live features, in this order; the engine's comes last of all
        the feed's sinks (it takes rows once `attach` built it). `arrivals` goes first of all."""
        return [self.analyzer, self.detection, self.health]

    @property
    def engine_sink(self) -> _EngineSink:
        return _EngineSink(self)

    @property
    def book_sinks(self) -> list[Any]:
        return [self.detection]

    def attach(self, submitter: IntentSubmitter, account: AccountView) -> DecisionEngine:
        """Build the engine over execution's submitter and account view."""
        self.account = account
        self.engine = DecisionEngine(
            self.config, self.symbols, features=self.features, gate=self.gate, risk=self.risk,
            analyzer=self.analyzer, strategies=self.strategies, submitter=submitter, account=account,
            candles=self.candles, exchange_now_ms=self.exchange_now_ms, detections=self.detection,
            store_signal=self.signals.put, store_predictions=self._store_predictions, metrics=self.metrics,
            arrivals=self.arrivals,
        )  # fmt: skip
        return self.engine

    def _store_predictions(self, production: GatePrediction, shadow: GatePrediction) -> None:
        for role, answer in (("production", production), ("shadow", shadow)):
            row = prediction_row(answer, role)
            if row is not None:
                self.predictions.put(row)

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Restore the strategies' statistics and load the production model (a start-up step: retried)."""
        await self.strategies.restore()
        await self.gate.reload("start")
        closed = await PositionRepository(self.pool).find(status=PositionStatus.CLOSED, limit=500)
        self._seen_closed = {p.id for p in closed if p.id is not None}

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then close."""
        if self.engine is None:
            raise RuntimeError("DecisionsRuntime.run: attach() execution's submitter and account first")
        for writer in (self.audit, self.signals, self.predictions):
            writer.start()
        self.detection.start()
        self.engine.start()
        tasks = [
            asyncio.create_task(self.watcher.run(stop), name="ml-gate-watcher"),
            asyncio.create_task(
                self.strategies.persist_every(STATISTICS_PERSIST_S), name="strategy-statistics"
            ),
            asyncio.create_task(self._track_outcomes(stop), name="trade-outcomes"),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.close()

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        await self.gate.close()
        await self.detection.stop()
        with contextlib.suppress(Exception):  # the last closes count too (a storage error is logged above)
            await self.record_closed_positions()
        await self.strategies.flush()
        for writer in (self.signals, self.predictions, self.audit):
            await writer.close()

    # -- trade outcomes → per-strategy statistics ---------------------------------------------------------

    async def _track_outcomes(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), OUTCOME_POLL_S)
            try:
                await self.record_closed_positions()
            except Exception as exc:
                log.warning("trade outcomes not read; next round", error=str(exc))

    async def record_closed_positions(self) -> int:
        """Credit every position closed since the last call to the strategies its entry came from."""
        closed = await PositionRepository(self.pool).find(status=PositionStatus.CLOSED, limit=100)
        n = 0
        for position in reversed(closed):
            if position.id is None or position.id in self._seen_closed:
                continue
            self._seen_closed.add(position.id)
            outcome = await self._outcome(position)
            if outcome is not None:
                await self.strategies.record_outcome(outcome)
                n += 1
        self.outcomes_recorded += n
        return n

    async def _outcome(self, position: Position) -> TradeOutcome | None:
        # Execution closes a position to quantity 0: the size traded is what the entry's orders filled.
        intent_id = entry_context(position.signal_data).get("intent_id")
        if not isinstance(intent_id, str):
            return None  # not an entry of the decisions (an operator's, an imported one)
        orders = await OrderRepository(self.pool).get_by_intent(intent_id)
        quantity = sum((o.filled_quantity for o in orders), Decimal(0))
        return outcome_from_position(
            position, quantity=quantity, known=self.strategies.strategies, closed_ms=self.exchange_now_ms()
        )

    def state(self) -> dict[str, Any]:
        """The decisions' state for the API: gate, risk, engine, writers."""
        return {
            "ml_gate": self.gate.stats(),
            "risk": self.risk.state(self.account),
            "engine": None if self.engine is None else self.engine.state(),
            "watcher": {
                "listening": self.watcher.listening,
                "notifications": self.watcher.notifications,
                "polls": self.watcher.polls,
            },
            "writers": {
                w.name: {"written": w.written, "pending": w.pending, "dropped": w.dropped}
                for w in (self.signals, self.predictions, self.audit)
            },
            "outcomes_recorded": self.outcomes_recorded,
        }


class _EngineSink:
    """The engine as a market sink before it exists: rows before `attach` are not decided."""

    def __init__(self, runtime: DecisionsRuntime) -> None:
        self.runtime = runtime

    def submit_rows(self, rows: Sequence[Any]) -> None:
        if self.runtime.engine is not None:
            self.runtime.engine.submit_rows(rows)

    def submit_trades(self, trades: Sequence[Any]) -> None:
        """The engine reads trades through the analyzer."""

    def submit_candles(self, candles: Sequence[Any]) -> None:
        """The engine reads candles from the candle store."""


def prediction_row(answer: GatePrediction, role: str) -> PredictionRow | None:
    """A served model's prediction of a row, as stored in `model_predictions`."""
    p = answer.prediction
    if p is None or answer.model_version is None:
        return None
    return PredictionRow(
        symbol=answer.symbol,
        ts=answer.ts_ms,
        model_version=answer.model_version,
        role=role,
        horizons_s=list(p.horizons_s),
        direction=list(p.direction),
        probabilities=[float(v) for v in p.probabilities.reshape(-1)],
        confidence=min(1.0, max(0.0, p.confidence)),
        expected_return_bps=[float(v) for v in p.expected_return_bps],
        latency_ms=answer.latency_ms,
    )
