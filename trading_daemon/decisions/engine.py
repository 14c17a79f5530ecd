"""The decision engine: every row of a symbol → analysis, strategies, detectors, the ML gate, risk → an intent.

A market sink placed after the live features, the market analyzer, the detectors and the health tracker
in the feed's sinks, so that when it takes a row all of them have seen it. Taking a row is synchronous and
cheap: it captures the row's model window and analysis and queues them for the symbol's worker task; the
rest is asynchronous, one row at a time per symbol, symbols side by side:

    row ──▶ window (LiveFeatures) + analysis (MarketAnalyzer) captured at arrival
        ──▶ ML gate prediction (worker thread; fallback reason when there is none)   [every row]
        ──▶ shadow prediction (stored beside production's, never traded)               [every row]
        ──▶ strategies: exit signals of the open position → reduce-only intents
        ──▶ strategies: consensus ──▶ detectors' block (highest priority)
                                 ──▶ ML validation (agree / disagree / neutral / fallback)
                                 ──▶ expected edge after fees > 0, row still fresh
                                 ──▶ risk sizing + pre-trade check ──▶ TradeIntent ──▶ submitter
        ──▶ every strategy signal and the decision signal stored, with the model version that shaped it

Priorities follow the original spec: a manipulation block outranks the model, the model outranks the
consensus, the consensus outranks single strategies. The outcome of every row that had a consensus
signal is stored in the decision signal's context (`outcome`: blocked, vetoed, not_confident,
below_cost, stale_row, holding, risk_refused, sent, submit_refused). Exits are never stopped by the
gate, the detectors or the health rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
import structlog

from infra.settings import DecisionConfig
from schemas.enums import EntryStyle, OrderType, Side, SignalAction, TimeInForce
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from schemas.trading import Position, Signal, TradeIntent
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.decisions.records import (
    ArrivalStamp,
    Decision,
    EngineStats,
    RowTicket,
    describe,
    edge_bps,
    position_of,
    protection,
    signal_json,
)
from trading_daemon.execution.contracts import AccountView, IntentSubmitter
from trading_daemon.features.live import LiveFeatures
from trading_daemon.ml_gate.gate import MLGate
from trading_daemon.ml_gate.prediction import FallbackReason, GatePrediction
from trading_daemon.ml_gate.validator import Validation, Verdict
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.observability.trace import new_trace_id
from trading_daemon.risk.manager import RiskManager, RiskRefused
from trading_daemon.strategies import ConsensusResult, entry_context

log = structlog.get_logger(__name__)

DECISION_SOURCE = "decision"  # the stored signal that records what became of a consensus signal
MAX_QUEUED_ROWS = 30  # per symbol: past this the oldest queued rows are decided without trading


class AnalysisSource(Protocol):
    """The market analyzer (`trading_daemon.analysis.MarketAnalyzer`)."""

    def latest(self, symbol: str) -> MarketAnalysis | None: ...


class StrategySource(Protocol):
    """The strategy manager (`trading_daemon.strategies.manager.StrategyManager`)."""

    def evaluate(
        self, symbol: str, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position | None
    ) -> ConsensusResult: ...

    def exit_signals(
        self, symbol: str, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> list[Signal]: ...


class ManipulationSource(Protocol):
    """The detection service (`trading_daemon.detection.DetectionService`)."""

    def blocked(self, symbol: str, now_ms: int) -> Any | None: ...


class DecisionEngine:
    """Per-row decisions for `symbols` (module docstring); a market sink."""

    def __init__(
        self,
        config: DecisionConfig,
        symbols: Sequence[str],
        *,
        features: LiveFeatures,
        gate: MLGate,
        risk: RiskManager,
        analyzer: AnalysisSource,
        strategies: StrategySource,
        submitter: IntentSubmitter,
        account: AccountView,
        candles: Callable[[str], Sequence[Candle]],
        exchange_now_ms: Callable[[], int],
        detections: ManipulationSource | None = None,
        store_signal: Callable[[Signal], None] | None = None,
        store_predictions: Callable[[GatePrediction, GatePrediction], None] | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        metrics: DaemonMetrics | None = None,
        arrivals: ArrivalStamp | None = None,
    ) -> None:
        self.config = config
        self.symbols = list(symbols)
        self.features = features
        self.gate = gate
        self.risk = risk
        self.strategies = strategies
        self.submitter = submitter
        self.account = account
        self.candles = candles
        self.exchange_now_ms = exchange_now_ms
        self.analyzer = analyzer
        self.detections = detections
        self.store_signal = store_signal
        self.store_predictions = store_predictions
        self.on_decision = on_decision
        self.metrics = metrics
        self.stats = EngineStats()
        self._queues: dict[str, asyncio.Queue[RowTicket]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._exits_in_flight: set[str] = set()
        self._last_outcome: dict[str, tuple[str, str | None, str | None]] = {}
        self.arrivals = arrivals if arrivals is not None else ArrivalStamp()
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    # -- MarketSink ---------------------------------------------------------------------------------------

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        now = time.perf_counter_ns()
        for row in rows:
            arrived = self.arrivals.take(row.symbol, row.ts, now)
            queue = self._queues.get(row.symbol)
            if queue is None:
                continue
            # Captured now: the next row replaces the window and the analysis.
            ticket = RowTicket(
                symbol=row.symbol,
                ts_ms=row.ts,
                arrived_ns=arrived,
                window=self.features.window(row.symbol),
                analysis=self.analyzer.latest(row.symbol),
            )
            queue.put_nowait(ticket)

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Trades reach the decisions through the analyzer and the rows."""

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        """Candles reach the decisions through the candle store."""

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Take rows from now on, one worker per symbol."""
        loop = asyncio.get_running_loop()
        for symbol in self.symbols:
            queue: asyncio.Queue[RowTicket] = asyncio.Queue()
            self._queues[symbol] = queue
            self._workers.append(loop.create_task(self._work(symbol, queue), name=f"decisions-{symbol}"))

    async def idle(self) -> None:
        """Return once every row taken so far has been decided."""
        await asyncio.gather(*(q.join() for q in self._queues.values()))

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking rows, decide what is queued (for at most `timeout_s`), stop the workers."""
        queues, self._queues = self._queues, {}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in queues.values())), timeout_s)
        for task in self._workers:
            task.cancel()
        for task in [*self._workers, *self._shadow_tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()

    async def _work(self, symbol: str, queue: asyncio.Queue[RowTicket]) -> None:
        while True:
            ticket = await queue.get()
            trade = True
            if queue.qsize() >= MAX_QUEUED_ROWS:
                trade = False  # far behind: catch up (every row still predicted and stored), send nothing
                self.stats.rows_skipped += 1
            try:
                await self.decide(ticket, trade=trade)
            except Exception:
                self.stats.errors += 1
                log.exception("decision failed", symbol=symbol, ts=ticket.ts_ms)
                if self.metrics is not None:
                    self.metrics.decisions.labels(outcome="error").inc()
            finally:
                queue.task_done()

    # -- the decision -------------------------------------------------------------------------------------

    async def decide(self, ticket: RowTicket, *, trade: bool = True) -> Decision:
        """Decide one row (module docstring)."""
        symbol, ts = ticket.symbol, ticket.ts_ms
        self.stats.rows += 1
        prediction = await self.gate.predict(symbol, ts, ticket.window)
        if self.gate.shadow is not None and ticket.window is not None:
            self._predict_shadow(ticket, prediction)
        decision = Decision(symbol=symbol, ts_ms=ts, prediction=prediction)
        analysis = ticket.analysis
        if analysis is None or analysis.symbol != symbol:
            return self._finish(decision, "no_analysis", ticket)
        position = position_of(self.account.open_positions(), symbol)
        candles = self.candles(symbol)

        if position is not None and trade:
            await self._exits(ticket, analysis, position, candles, decision)

        result = self.strategies.evaluate(symbol, analysis, candles, position)
        decision.strategy_signals = [v.signal for v in result.votes if v.sent]
        for vote in result.votes:
            if vote.new:  # a vote is stored on the row it appeared, not on every row it holds
                self.stats.by_strategy[vote.strategy] = self.stats.by_strategy.get(vote.strategy, 0) + 1
                self._store(vote.signal)
        decision.consensus = result.signal
        consensus = result.signal
        if consensus is None or consensus.action is SignalAction.HOLD:
            self._last_outcome.pop(symbol, None)
            return self._finish(decision, "no_signal", ticket)
        if result.is_new:
            self._store(consensus)
        await self._enter(ticket, decision, consensus, position, result, trade=trade)
        return decision

    async def _enter(
        self, ticket: RowTicket, decision: Decision, consensus: Signal, position: Position | None,
        result: ConsensusResult, *, trade: bool,
    ) -> None:  # fmt: skip
        symbol, ts = ticket.symbol, ticket.ts_ms
        side = Side.BUY if consensus.action is SignalAction.BUY else Side.SELL
        edge = result.expected_edge_bps if result.expected_edge_bps is not None else edge_bps(consensus)
        if self.detections is not None:
            block = self.detections.blocked(symbol, self.exchange_now_ms())
            if block is not None:
                if self._last_outcome.get(symbol, (None,))[0] != "blocked":  # once per block, not per row
                    self.risk.refuse_manipulation(
                        entry_intent_id(symbol, ts, side), symbol, side, block, trace_id=new_trace_id()
                    )
                self._decided(
                    decision, consensus, None, "blocked", ticket, detail={"detection": describe(block)}
                )
                return
        validation = self.gate.validate(consensus, decision.prediction)
        decision.validation = validation
        if not validation.approved:
            outcome = "vetoed" if validation.verdict is Verdict.DISAGREE else "not_confident"
            self._decided(decision, consensus, validation, outcome, ticket)
            return
        if edge is not None and edge <= 0:
            self._decided(
                decision, consensus, validation, "below_cost", ticket, detail={"expected_edge_bps": edge}
            )
            return
        lag = self.exchange_now_ms() - ts
        if not trade or lag > self.config.max_lag_ms:
            self._decided(decision, consensus, validation, "stale_row", ticket, detail={"lag_ms": lag})
            return
        if position is not None:
            self._decided(decision, consensus, validation, "holding", ticket)
            return
        style = result.entry_style or EntryStyle.TAKER
        touch = self.risk.health.touch(symbol)
        if touch is None:
            self._decided(
                decision, consensus, validation, "risk_refused", ticket, detail={"rule": "no_price"}
            )
            return
        bid, ask = touch
        reference = ask if side is Side.BUY else bid  # what a taker pays
        limit = bid if side is Side.BUY else ask  # where a maker rests (PostOnly at the touch)
        entry_price = limit if style is EntryStyle.MAKER else reference
        trace_id = new_trace_id()
        intent_id = entry_intent_id(symbol, ts, side)
        take_profit, stop_loss = protection(consensus, side, entry_price)
        try:
            sizing = self.risk.size_entry(symbol, side, entry_price, stop_loss, self.account)
        except RiskRefused as refused:
            self.risk.refuse_sizing(intent_id, symbol, side, refused, trace_id=trace_id)
            self._decided(decision, consensus, validation, "risk_refused", ticket,
                          detail={"rule": str(refused.rule), "reason": refused.reason})  # fmt: skip
            return
        intent = TradeIntent(
            intent_id=intent_id,
            symbol=symbol,
            side=side,
            order_type=OrderType.LIMIT if style is EntryStyle.MAKER else OrderType.MARKET,
            ts=self.exchange_now_ms(),
            notional=sizing.notional,
            price=limit if style is EntryStyle.MAKER else None,
            time_in_force=TimeInForce.POST_ONLY if style is EntryStyle.MAKER else TimeInForce.GTC,
            take_profit=take_profit,
            stop_loss=sizing.stop_loss,
            source=consensus.source,
            reason=validation.reason,
            context={
                "row_ts": ts,
                # when the row left the feed, on the exchange clock (as execution's sent_ms): the latency
                # from the snapshot to the order on the wire is sent_ms − arrived_ms
                "arrived_ms": self.exchange_now_ms()
                - (time.perf_counter_ns() - ticket.arrived_ns) // 1_000_000,
                "entry_style": str(style),
                "reference_price": str(reference),
                "expected_edge_bps": edge,
                "confidence": validation.confidence,
                "model_version": validation.model_version,
                "validation": validation.to_dict(),
                # execution keeps this as the position's signal_data: the exit rules read "strategies"
                "source": consensus.source,
                "strategies": list((consensus.context or {}).get("strategies", [])),
                "sizing": sizing.details,
            },
            trace_id=trace_id,
        )
        verdict = self.risk.evaluate(intent, self.account)
        decision.signal_ms = (time.perf_counter_ns() - ticket.arrived_ns) / 1e6
        if verdict.approved and verdict.intent.context is not None:
            # when risk approved it, on the exchange clock: execution's part is sent_ms − decided_ms
            verdict = dataclasses.replace(
                verdict,
                intent=msgspec.structs.replace(
                    verdict.intent, context={**verdict.intent.context, "decided_ms": self.exchange_now_ms()}
                ),
            )
        if not verdict.approved:
            self._decided(decision, consensus, validation, "risk_refused", ticket,
                          detail={"reason": verdict.reason}, intent=intent)  # fmt: skip
            return
        decision.intent = verdict.intent
        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            try:
                submitted = await self.submitter.submit(verdict.intent)
            finally:
                self.risk.release(intent_id)  # the order is visible in the account now, or never will be
            decision.submitted_ms = (time.perf_counter_ns() - ticket.arrived_ns) / 1e6
            decision.result = submitted
            self.stats.intents += 1
            log.info("entry submitted", symbol=symbol, side=str(side), notional=str(verdict.intent.notional),
                     style=str(style), accepted=submitted.accepted, reason=submitted.reason,
                     model_version=validation.model_version, verdict=validation.verdict.value)  # fmt: skip
        outcome = "sent" if submitted.accepted else "submit_refused"
        self._decided(decision, consensus, validation, outcome, ticket, intent=verdict.intent,
                      detail={"client_order_id": submitted.client_order_id, "reason": submitted.reason})  # fmt: skip

    async def _exits(
        self, ticket: RowTicket, analysis: MarketAnalysis, position: Position, candles: Sequence[Candle],
        decision: Decision,
    ) -> None:  # fmt: skip
        symbol = ticket.symbol
        if symbol in self._exits_in_flight or any(
            o.symbol == symbol and o.reduce_only for o in self.account.open_orders()
        ):
            return  # one exit at a time: the last one is still working
        view = msgspec.structs.replace(position, signal_data=entry_context(position.signal_data))
        signals = self.strategies.exit_signals(symbol, analysis, candles, view)
        if not signals:
            return
        first = signals[0]
        for s in signals:
            self._store(s)
        intent = TradeIntent(
            intent_id=f"{symbol}-{ticket.ts_ms}-X",
            symbol=symbol,
            side=position.side.opposite(),
            order_type=OrderType.MARKET,
            ts=self.exchange_now_ms(),
            quantity=position.quantity,
            reduce_only=True,
            source=first.source,
            reason=first.reason or "exit rule",
            context={"row_ts": ticket.ts_ms, "exit_signals": [signal_json(s) for s in signals]},
            trace_id=position.trace_id or new_trace_id(),
        )
        verdict = self.risk.evaluate(intent, self.account)
        if not verdict.approved:
            return
        self._exits_in_flight.add(symbol)
        try:
            with structlog.contextvars.bound_contextvars(trace_id=intent.trace_id):
                submitted = await self.submitter.submit(verdict.intent)
                log.info("exit submitted", symbol=symbol, quantity=str(verdict.intent.quantity),
                         reason=intent.reason, accepted=submitted.accepted)  # fmt: skip
        finally:
            self._exits_in_flight.discard(symbol)
        self.stats.exits += 1
        decision.exits.append(verdict.intent)

    # -- shadow, storage, bookkeeping ---------------------------------------------------------------------

    def _predict_shadow(self, ticket: RowTicket, production: GatePrediction) -> None:
        async def run() -> None:
            shadow = await self.gate.predict_shadow(ticket.symbol, ticket.ts_ms, ticket.window)
            if shadow is not None and shadow.prediction is not None and self.store_predictions is not None:
                self.store_predictions(production, shadow)

        task = asyncio.get_running_loop().create_task(run(), name=f"shadow-{ticket.symbol}")
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    def _store(self, signal: Signal) -> None:
        if self.store_signal is not None:
            self.store_signal(signal)

    def _decided(
        self, decision: Decision, consensus: Signal, validation: Validation | None, outcome: str,
        ticket: RowTicket, *, detail: dict[str, Any] | None = None, intent: TradeIntent | None = None,
    ) -> None:  # fmt: skip
        """Store the decision signal (the consensus as validated, with the model version) and count.

        A consensus holds row after row: its decision is stored on the row it appeared, whenever what
        became of it, the model's verdict or the model version changes, and whenever an intent was made.
        """
        key = (
            outcome,
            None if validation is None else validation.verdict.value,
            decision.prediction.model_version,
        )
        previous = self._last_outcome.get(decision.symbol)
        self._last_outcome[decision.symbol] = key
        if previous != key or intent is not None:
            context: dict[str, Any] = {
                "outcome": outcome,
                "consensus": signal_json(consensus),
                "prediction": decision.prediction.to_dict(),
                **({"validation": validation.to_dict()} if validation is not None else {}),
                **(detail or {}),
            }
            if intent is not None:
                context["intent_id"] = intent.intent_id
                context["notional"] = None if intent.notional is None else str(intent.notional)
            self._store(
                Signal(
                    symbol=decision.symbol,
                    ts=decision.ts_ms,
                    source=DECISION_SOURCE,
                    action=consensus.action,
                    strength=consensus.strength,
                    confidence=validation.confidence if validation is not None else consensus.confidence,
                    price=consensus.price,
                    model_version=decision.prediction.model_version,
                    reason=validation.reason if validation is not None else outcome,
                    context=context,
                    trace_id=intent.trace_id if intent is not None else None,
                )
            )
        self._finish(decision, outcome, ticket)

    def _finish(self, decision: Decision, outcome: str, ticket: RowTicket) -> Decision:
        decision.outcome = outcome
        if decision.signal_ms is None:  # decided without an intent: the whole path took this long
            decision.signal_ms = (time.perf_counter_ns() - ticket.arrived_ns) / 1e6
        if outcome != "no_analysis" and decision.prediction.fallback is not FallbackReason.NO_WINDOW:
            # rows decided by the whole path (the first WINDOW rows of a symbol skip the model)
            self.stats.signal_ms.append(decision.signal_ms)
        if decision.submitted_ms is not None:
            self.stats.submitted_ms.append(decision.submitted_ms)
        self.stats.count(outcome)
        if self.metrics is not None:
            self.metrics.decisions.labels(outcome=outcome).inc()
            if decision.signal_ms is not None:
                self.metrics.decision_latency_seconds.labels(stage="signal").observe(
                    decision.signal_ms / 1000
                )
            if decision.submitted_ms is not None:
                self.metrics.decision_latency_seconds.labels(stage="submitted").observe(
                    decision.submitted_ms / 1000
                )
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def state(self) -> dict[str, Any]:
        """Counters for the API."""
        s = self.stats
        return {
            "rows": s.rows,
            "rows_skipped": s.rows_skipped,
            "errors": s.errors,
            "outcomes": dict(s.outcomes),
            "intents": s.intents,
            "exits": s.exits,
            "strategy_signals": dict(s.by_strategy),
            "queued": {sym: q.qsize() for sym, q in self._queues.items()},
            "latency": s.latency(),
        }


def entry_intent_id(symbol: str, row_ts_ms: int, side: Side) -> str:
    """The id of the entry decided on a row: one per symbol, row and side, so a repeat is recognised."""
    return f"{symbol}-{row_ts_ms}-{'B' if side is Side.BUY else 'S'}"
