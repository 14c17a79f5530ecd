"""The strategy manager: every enabled strategy's vote on each row, the cost filter, the consensus, exits,
and per-strategy statistics persisted in Postgres (docs/strategies.md §3–5).

On each row of a symbol (:meth:`StrategyManager.evaluate`):

1. the open shadows of earlier signals are resolved against the row's mid (their outcomes are the measured
   half of the expected edge, `trading_daemon.strategies.statistics`);
2. each enabled strategy votes (`Strategy.analyze`); a strategy that raises is logged, counted and left out
   of this row's consensus (original spec, "Failover");
3. each vote gets its expected edge after fees (`trading_daemon.strategies.costs`) in its context; a vote
   whose edge does not reach MIN_EXPECTED_EDGE_BPS is not sent: it does not vote, it is counted
   (`signals_below_cost`) and logged at debug when it appears;
4. the sent votes are combined (`trading_daemon.strategies.consensus`); the consensus gets its own expected
   edge (the agreeing votes' gross edges, weighted by weight × confidence, blended with the consensus's
   measured outcomes, less the cost of its entry style) and is sent only if that covers the cost too.

A vote or consensus lasts as long as its rule holds, so the same signal comes back row after row:
`StrategyVote.new` and `ConsensusResult.is_new` mark the row it appeared on, and only those rows count as
signals in the statistics and open a shadow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from infra.settings import StrategyConfig
from schemas.enums import EntryStyle, SignalAction
from schemas.market import Candle
from schemas.strategies import CONSENSUS_SOURCE, StrategyStatistics
from schemas.times import now_ms
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.errors import classify
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.strategies.base import Strategy, bps, to_price
from trading_daemon.strategies.consensus import Agreement, Vote, combine
from trading_daemon.strategies.costs import CostModel, EdgeEstimate
from trading_daemon.strategies.imbalance import ImbalanceStrategy
from trading_daemon.strategies.momentum import MomentumStrategy
from trading_daemon.strategies.results import (
    ConsensusResult,
    ManagerStatus,
    StatisticsStore,
    StrategyStatus,
    StrategyVote,
)
from trading_daemon.strategies.sar_wave import SarWaveStrategy
from trading_daemon.strategies.statistics import ShadowBook, StatisticsBook, TradeOutcome, open_shadow
from trading_daemon.strategies.supertrend import SuperTrendStrategy
from trading_daemon.strategies.volume_profile import VolumeProfileStrategy

__all__ = [  # the result types are re-exported: the decision engine imports them from here
    "EXIT_PRIORITY",
    "ConsensusResult",
    "ManagerStatus",
    "StatisticsStore",
    "StrategyManager",
    "StrategyStatus",
    "StrategyVote",
    "build_strategies",
]

log = structlog.get_logger(__name__)

# Exits of several strategies at once: protective ones first (docs/strategies.md §3.2).
EXIT_PRIORITY = {
    "stop_loss": 0,
    "trailing_stop": 0,
    "adaptive_stop": 0,
    "reversal": 1,
    "sar_flip": 1,
    "take_profit": 2,
    "max_hold": 3,
}


def build_strategies(config: StrategyConfig) -> list[Strategy]:
    """The five strategies with their settings."""
    return [
        ImbalanceStrategy(config.imbalance),
        MomentumStrategy(config.momentum),
        SarWaveStrategy(config.sar_wave),
        SuperTrendStrategy(config.supertrend),
        VolumeProfileStrategy(config.volume_profile),
    ]


@dataclass
class _SymbolState:
    raw: dict[str, SignalAction] = field(default_factory=dict)  # last vote per strategy, sent or not
    sent: dict[str, bool] = field(default_factory=dict)
    consensus_raw: SignalAction | None = None  # the last agreement, before the cost filter
    consensus: SignalAction | None = None  # the last consensus sent
    failing: set[str] = field(default_factory=set)
    shadows: ShadowBook = field(default_factory=ShadowBook)


class StrategyManager:
    """Runs the strategies, filters by cost, forms the consensus and keeps their statistics."""

    def __init__(
        self,
        config: StrategyConfig,
        *,
        store: StatisticsStore | None = None,
        metrics: DaemonMetrics | None = None,
        strategies: Sequence[Strategy] | None = None,
    ) -> None:
        self.config = config
        self.costs = CostModel(config.costs)
        self.store = store
        self.metrics = metrics
        self.strategies = {
            s.name: s for s in (strategies if strategies is not None else build_strategies(config))
        }
        self.enabled = {n for n in config.enabled if n in self.strategies}
        unknown = set(config.enabled) - set(self.strategies)
        if unknown:
            raise ValueError(
                f"ENABLED_STRATEGIES names strategies the manager does not run: {sorted(unknown)}"
            )
        self.stats = StatisticsBook((*self.strategies, CONSENSUS_SOURCE))
        for name in self.strategies:
            self.stats.set_enabled(name, name in self.enabled, 0)
        self.stats.dirty.clear()
        self.failures = dict.fromkeys(self.strategies, 0)
        self.rows_with_votes = 0
        self.rows_with_consensus = 0
        self._symbols: dict[str, _SymbolState] = {}
        self._counted_until_ms = 0  # trades closed up to then were counted by a previous run (restore)

    # -- run-time control ----------------------------------------------------------------------------

    def enable(self, name: str) -> None:
        """Let `name` vote from the next row on."""
        self._set_enabled(name, True)

    def disable(self, name: str) -> None:
        """Stop `name` voting from the next row on (its exits still apply to positions it opened)."""
        self._set_enabled(name, False)

    def _set_enabled(self, name: str, enabled: bool) -> None:
        if name not in self.strategies:
            raise KeyError(f"no strategy {name!r}; the strategies are {sorted(self.strategies)}")
        if (name in self.enabled) == enabled:
            return
        (self.enabled.add if enabled else self.enabled.discard)(name)
        for state in self._symbols.values():
            state.raw.pop(name, None)
            state.sent.pop(name, None)
        self.stats.set_enabled(name, enabled, now_ms())
        log.info("strategy enabled" if enabled else "strategy disabled", strategy=name)

    # -- the decision ----------------------------------------------------------------------------------

    def evaluate(
        self, symbol: str, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position | None
    ) -> ConsensusResult:
        """Every enabled strategy's vote on this row, and their consensus (see the module docstring)."""
        if analysis.symbol != symbol:
            raise ValueError(f"evaluate({symbol!r}) got the analysis of {analysis.symbol!r}")
        state = self._symbols.setdefault(symbol, _SymbolState())
        for name, outcome in state.shadows.update(analysis):
            self.stats.measured(name, outcome, analysis.ts)
        votes: list[StrategyVote] = []
        failed: list[str] = []
        for name in sorted(self.enabled):
            signal, ok = self._analyze(name, state, analysis, candles, position)
            if not ok:
                failed.append(name)
            elif signal is None:
                state.raw.pop(name, None)
                state.sent.pop(name, None)
            else:
                try:
                    votes.append(self._vote(name, state, signal, analysis))
                except Exception as exc:  # a signal without the levels its edge is estimated from
                    self._failed(name, state, analysis, exc)
                    failed.append(name)
        result = self._consensus(symbol, state, analysis, votes)
        return result if not failed else _with_failed(result, tuple(failed))

    def _analyze(
        self,
        name: str,
        state: _SymbolState,
        analysis: MarketAnalysis,
        candles: Sequence[Candle],
        position: Position | None,
    ) -> tuple[Signal | None, bool]:
        """The strategy's signal or None, and False when it raised."""
        try:
            signal = self.strategies[name].analyze(analysis, candles, position)
        except Exception as exc:
            self._failed(name, state, analysis, exc)
            return None, False
        if name in state.failing:
            state.failing.discard(name)
            log.info("strategy recovered", strategy=name, symbol=analysis.symbol, ts=analysis.ts)
        return signal, True

    def _failed(self, name: str, state: _SymbolState, analysis: MarketAnalysis, exc: Exception) -> None:
        self.failures[name] += 1
        state.raw.pop(name, None)
        state.sent.pop(name, None)
        if self.metrics is not None:
            self.metrics.strategy_errors.labels(strategy=name).inc()
        if name not in state.failing:  # once per streak: the next rows would repeat it every second
            state.failing.add(name)
            log.error(
                "strategy failed; left out of the consensus",
                strategy=name,
                symbol=analysis.symbol,
                ts=analysis.ts,
                error=repr(exc),
                exc_info=exc,
            )

    def _vote(self, name: str, state: _SymbolState, signal: Signal, analysis: MarketAnalysis) -> StrategyVote:
        strategy = self.strategies[name]
        estimate = self._estimate(name, signal, analysis, strategy.entry_style)
        sent = self.costs.covers(estimate)
        # `sent` is stored with the vote: what a reader of the signals table cannot recompute without the
        # daemon's MIN_EXPECTED_EDGE_BPS (the demo's summary counts the votes below cost from it).
        signal = _with_context(signal, {**estimate.context(), "sent": sent})
        new = state.raw.get(name) is not signal.action  # the vote appeared (or turned) at this row
        newly_sent = sent and (new or not state.sent.get(name, False))
        if new:
            shadow = open_shadow(name, signal, analysis)
            if shadow is not None:
                state.shadows.add(shadow)
        if newly_sent or (new and not sent):
            self._count_signal(name, signal, sent, estimate)
        state.raw[name] = signal.action
        state.sent[name] = sent
        return StrategyVote(name, signal, sent, newly_sent if sent else new)

    def _estimate(
        self, name: str, signal: Signal, analysis: MarketAnalysis, style: EntryStyle
    ) -> EdgeEstimate:
        context = signal.context or {}
        price = float(signal.price) if signal.price is not None else analysis.mid
        stats = self.stats[name]
        return self.costs.estimate(
            analysis=analysis,
            style=style,
            confidence=signal.confidence if signal.confidence is not None else 0.5,
            take_profit_bps=abs(bps(float(context["take_profit"]) - price, price)),
            stop_loss_bps=abs(bps(float(context["stop_loss"]) - price, price)),
            horizon_s=float(context["horizon_s"]),
            measured_mean=stats.measured_mean_bps,
            measured_n=stats.measured,
        )

    def _count_signal(self, name: str, signal: Signal, sent: bool, estimate: EdgeEstimate) -> None:
        self.stats.signal(name, sent=sent, now_ms=signal.ts)
        if self.metrics is not None:
            self.metrics.strategy_signals.labels(
                strategy=name, action=str(signal.action), outcome="sent" if sent else "below_cost"
            ).inc()
        if sent:
            log.info(
                "strategy signal",
                strategy=name,
                symbol=signal.symbol,
                action=str(signal.action),
                confidence=signal.confidence,
                expected_edge_bps=round(estimate.net_bps, 2),
                reason=signal.reason,
            )
        else:
            log.debug(
                "strategy signal below cost, not sent",
                strategy=name,
                symbol=signal.symbol,
                action=str(signal.action),
                expected_edge_bps=round(estimate.net_bps, 2),
                gross_edge_bps=round(estimate.gross_bps, 2),
                cost_bps=round(estimate.cost_bps, 2),
                min_expected_edge_bps=self.config.costs.min_expected_edge_bps,
            )

    def _consensus(
        self, symbol: str, state: _SymbolState, analysis: MarketAnalysis, votes: list[StrategyVote]
    ) -> ConsensusResult:
        c = self.config
        sent = [v for v in votes if v.sent]
        agreement = combine(
            [
                Vote(
                    v.strategy,
                    v.signal.action,
                    v.signal.confidence or 0.0,
                    v.signal.strength,
                    c.weight(v.strategy),
                )
                for v in sent
            ],
            mode=c.consensus_mode,
            min_strategies=c.min_strategies,
            min_confidence=c.min_consensus_confidence,
        )
        if sent:
            self.rows_with_votes += 1

        def none(reason: str) -> ConsensusResult:
            state.consensus = None
            if self.metrics is not None:
                self.metrics.consensus_evaluations.labels(outcome="none" if sent else "no_votes").inc()
            return ConsensusResult(symbol, analysis.ts, tuple(votes), None, None, None, False, reason)

        if agreement.action is None:
            state.consensus_raw = None
            return none(agreement.reason)
        agreeing = [v for v in sent if v.strategy in agreement.agreeing]
        built = self._consensus_signal(analysis, agreement.action, agreement, agreeing)
        if built is None:
            state.consensus_raw = None
            return none(
                f"the stops and targets of {', '.join(agreement.agreeing)} do not bracket the entry price"
            )
        signal, estimate, style = built
        new_raw = state.consensus_raw is not agreement.action
        state.consensus_raw = agreement.action
        if new_raw:
            shadow = open_shadow(CONSENSUS_SOURCE, signal, analysis)
            if shadow is not None:
                state.shadows.add(shadow)
        covered = self.costs.covers(estimate)
        if new_raw or (covered and state.consensus is not agreement.action):
            self._count_signal(CONSENSUS_SOURCE, signal, covered, estimate)
        if not covered:
            if self.metrics is not None:
                self.metrics.consensus_evaluations.labels(outcome="below_cost").inc()
            state.consensus = None
            return ConsensusResult(
                symbol,
                analysis.ts,
                tuple(votes),
                None,
                None,
                None,
                False,
                f"consensus {agreement.action} expects {estimate.net_bps:.2f} bps after "
                f"{estimate.cost_bps:.2f} bps of costs, below MIN_EXPECTED_EDGE_BPS "
                f"{c.costs.min_expected_edge_bps}",
            )
        is_new = state.consensus is not agreement.action
        state.consensus = agreement.action
        self.rows_with_consensus += 1
        if self.metrics is not None:
            self.metrics.consensus_evaluations.labels(outcome="signal").inc()
        return ConsensusResult(
            symbol,
            analysis.ts,
            tuple(votes),
            signal,
            style,
            round(estimate.net_bps, 4),
            is_new,
            agreement.reason,
        )

    def _consensus_signal(
        self,
        analysis: MarketAnalysis,
        action: SignalAction,
        agreement: Agreement,
        agreeing: list[StrategyVote],
    ) -> tuple[Signal, EdgeEstimate, EntryStyle] | None:
        c = self.config
        buy = action is SignalAction.BUY
        weights = [c.weight(v.strategy) * (v.signal.confidence or 0.0) for v in agreeing]
        total = sum(weights) or 1.0
        maker = sum(
            w
            for w, v in zip(weights, agreeing, strict=True)
            if self.strategies[v.strategy].entry_style is EntryStyle.MAKER
        )
        style = EntryStyle.MAKER if maker >= total - maker else EntryStyle.TAKER
        price = analysis.touch(buy) if style is EntryStyle.MAKER else analysis.mid
        contexts = [v.signal.context or {} for v in agreeing]
        stops = [float(x["stop_loss"]) for x in contexts]
        targets = [float(x["take_profit"]) for x in contexts]
        # the nearest stop and the nearest target of the agreeing strategies: the most cautious levels
        stop = max(stops) if buy else min(stops)
        target = min(targets) if buy else max(targets)
        horizon = min(float(x["horizon_s"]) for x in contexts)
        prior = sum(w * float(x["gross_edge_bps"]) for w, x in zip(weights, contexts, strict=True)) / total
        stats = self.stats[CONSENSUS_SOURCE]
        gross = self.costs.blend(prior, stats.measured_mean_bps, stats.measured)
        cost = self.costs.round_trip_bps(style, analysis.spread_bps)
        estimate = EdgeEstimate(
            gross - cost,
            gross,
            cost,
            prior,
            stats.measured_mean_bps,
            stats.measured,
            self.costs.typical_move_bps(analysis, horizon),
        )
        context = {
            "kind": "entry",
            "mode": c.consensus_mode,
            "strategies": list(agreement.agreeing),
            "opposing": list(agreement.opposing),
            "votes": {v.strategy: str(v.signal.action) for v in agreeing},
            "entry_style": str(style),
            "stop_loss": stop,
            "take_profit": target,
            "horizon_s": horizon,
            **estimate.context(),
        }
        if not (stop < price < target if buy else target < price < stop):
            return None  # a maker touch beyond one of the agreeing levels
        signal = Signal(
            symbol=analysis.symbol,
            ts=analysis.ts,
            source=CONSENSUS_SOURCE,
            action=action,
            strength=min(1.0, max(0.0, agreement.strength)),
            confidence=min(1.0, max(0.0, agreement.confidence)),
            price=to_price(price),
            reason=agreement.reason,
            context=context,
        )
        return signal, estimate, style

    # -- exits ---------------------------------------------------------------------------------------

    def exit_signals(
        self, symbol: str, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> list[Signal]:
        """The exit signals of the strategies the position's entry came from, protective ones first.

        The strategies are those named in `position.signal_data["strategies"]` (the consensus signal's
        context), or the one in `signal_data["source"]`; without either, every enabled strategy. A named
        strategy's exits apply even after it was disabled. Any one of them is reason enough to close.
        """
        if analysis.symbol != symbol or position.symbol != symbol:
            raise ValueError(
                f"exit_signals({symbol!r}) got the analysis of {analysis.symbol!r} and a position in "
                f"{position.symbol!r}"
            )
        out: list[Signal] = []
        for name in self._position_strategies(position):
            try:
                signal = self.strategies[name].exit_signal(analysis, candles, position)
            except Exception as exc:
                self.failures[name] += 1
                log.error(
                    "strategy exit rule failed", strategy=name, symbol=symbol, error=repr(exc), exc_info=exc
                )
                continue
            if signal is not None:
                out.append(signal)
        return sorted(out, key=lambda s: EXIT_PRIORITY.get(str((s.context or {}).get("rule")), 9))

    def _position_strategies(self, position: Position) -> list[str]:
        data = position.signal_data or {}
        named = data.get("strategies")
        if isinstance(named, list):
            known = [n for n in named if n in self.strategies]
            if known:
                return known
        source = data.get("source")
        if isinstance(source, str) and source in self.strategies:
            return [source]
        return sorted(self.enabled)

    # -- statistics ------------------------------------------------------------------------------------

    async def record_outcome(self, outcome: TradeOutcome) -> bool:
        """Count a closed trade for the strategies its entry came from (and the consensus), then persist.

        A trade that closed at or before the newest trade counted before the last `restore()` was counted
        by the previous run and is skipped (False), so re-reading recently closed positions after a restart
        counts none twice. Within one run, each position must be reported once.
        """
        unknown = [n for n in outcome.strategies if n not in self.strategies]
        if unknown:
            raise ValueError(
                f"TradeOutcome names unknown strategies {unknown}; known: {sorted(self.strategies)}"
            )
        if outcome.closed_ms <= self._counted_until_ms:
            log.debug(
                "trade outcome counted before the restart; skipped",
                symbol=outcome.symbol,
                closed_ms=outcome.closed_ms,
                counted_until_ms=self._counted_until_ms,
            )
            return False
        for name in outcome.strategies:
            self.stats.trade(name, outcome)
        if outcome.consensus:
            self.stats.trade(CONSENSUS_SOURCE, outcome)
        log.info(
            "strategy trade recorded",
            symbol=outcome.symbol,
            strategies=list(outcome.strategies),
            entry_style=str(outcome.entry_style),
            net_pnl=str(outcome.net_pnl),
            fees=str(outcome.fees),
        )
        await self.flush()
        return True

    def statistics(self) -> dict[str, StrategyStatistics]:
        """Every strategy's counters and the consensus's (under "consensus")."""
        return self.stats.all()

    async def restore(self) -> None:
        """Continue from the persisted statistics (at start). Which strategies are enabled is the settings'."""
        if self.store is None:
            return
        stored = await self.store.load()
        self.stats.restore(stored)
        self._counted_until_ms = max((r.last_trade_ms for r in stored.values()), default=0)
        for name in self.strategies:
            if self.stats[name].enabled != (name in self.enabled):
                self.stats.set_enabled(name, name in self.enabled, now_ms())
        self.stats.mark_dirty(
            list(self.stats.all().values())
        )  # every strategy gets its row at the next flush
        log.info("strategy statistics restored", strategies=sorted(stored))

    async def flush(self) -> None:
        """Persist the statistics changed since the last flush; on a storage error they stay pending."""
        if self.store is None:
            return
        records = self.stats.take_dirty()
        if not records:
            return
        try:
            await self.store.save(records)
        except Exception as exc:
            self.stats.mark_dirty(records)
            decision = classify(exc)
            log.warning(
                "strategy statistics not saved; kept for the next flush",
                error=repr(exc),
                decision=decision.kind.value,
                strategies=[r.strategy for r in records],
            )

    async def persist_every(self, interval_s: float) -> None:
        """Flush every `interval_s` seconds until cancelled, then once more (a task of the daemon)."""
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        try:
            while True:
                await asyncio.sleep(interval_s)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())

    def status(self) -> ManagerStatus:
        """Settings, every strategy with its statistics, and the consensus's counters."""
        c = self.config
        return ManagerStatus(
            consensus_mode=c.consensus_mode,
            min_strategies=c.min_strategies,
            min_consensus_confidence=c.min_consensus_confidence,
            taker_fee_bps=c.costs.taker_fee_bps,
            maker_fee_bps=c.costs.maker_fee_bps,
            min_expected_edge_bps=c.costs.min_expected_edge_bps,
            strategies=[
                StrategyStatus(
                    name=name,
                    enabled=name in self.enabled,
                    weight=c.weight(name),
                    entry_style=str(s.entry_style),
                    max_hold_s=s.max_hold_s,
                    statistics=self.stats[name],
                    hit_rate=self.stats[name].hit_rate,
                    measured_mean_bps=self.stats[name].measured_mean_bps,
                    failures=self.failures[name],
                )
                for name, s in self.strategies.items()
            ],
            consensus=self.stats[CONSENSUS_SOURCE],
            rows_with_votes=self.rows_with_votes,
            rows_with_consensus=self.rows_with_consensus,
        )


def _with_context(signal: Signal, extra: dict[str, Any]) -> Signal:
    return msgspec.structs.replace(signal, context={**(signal.context or {}), **extra})


def _with_failed(result: ConsensusResult, failed: tuple[str, ...]) -> ConsensusResult:
    return ConsensusResult(
        result.symbol,
        result.ts,
        result.votes,
        result.signal,
        result.entry_style,
        result.expected_edge_bps,
        result.is_new,
        result.reason,
        failed,
    )
