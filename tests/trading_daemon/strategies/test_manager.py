"""The strategy manager: the cost filter and expected edge, consensus on rows, run-time enable/disable, a
failing strategy, exits, and statistics (counted, persisted in Postgres, restored)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from decimal import Decimal

import msgspec
import pytest
import structlog

from infra.db.errors import DatabaseUnavailable
from infra.db.repositories import StrategyStatisticsRepository
from schemas.enums import EntryStyle, PositionStatus, Side, SignalAction
from schemas.market import Candle
from schemas.strategies import StrategyStatistics
from schemas.trading import Position, Signal
from testkit.rows import T0_MS
from testkit.strategies import analysis_of, position, quote, strategy_config
from trading_daemon.analysis import MarketAnalysis
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.strategies import (
    Strategy,
    StrategyManager,
    TradeOutcome,
    outcome_from_position,
)

MEAN_ABS = math.sqrt(2 / math.pi)
BID_HEAVY = ([(100.0, 150.0), (99.9, 50.0)], [(100.1, 20.0), (100.2, 20.0)])  # imbalance 200/240, maker buy


def bid_heavy(ts: int = T0_MS, *, volatility_1m_bps: float = 10.0) -> MarketAnalysis:
    return msgspec.structs.replace(analysis_of(*BID_HEAVY, ts=ts), volatility_1m_bps=volatility_1m_bps)


class Scripted(Strategy):
    """A strategy whose vote and exit the test sets (the manager is tested, not a rule)."""

    def __init__(self, name: str, style: EntryStyle = EntryStyle.TAKER) -> None:
        self.name = name  # type: ignore[misc]
        super().__init__(entry_style=style, max_hold_s=600)
        self.vote: tuple[bool, float] | None = None  # (buy, confidence)
        self.exit_rule: str | None = None
        self.raises = False

    def analyze(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position | None
    ) -> Signal | None:
        if self.raises:
            raise RuntimeError(f"{self.name} broke")
        if self.vote is None:
            return None
        buy, confidence = self.vote
        mid = analysis.mid
        return self.entry(
            analysis,
            buy,
            strength=0.5,
            confidence=confidence,
            stop_loss=mid * (0.99 if buy else 1.01),
            take_profit=mid * (1.02 if buy else 0.98),
            reason="scripted",
            indicators={},
        )

    def exit_signal(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> Signal | None:
        return None if self.exit_rule is None else self.exit(analysis, position, self.exit_rule, "scripted")


def scripted_manager(**changes: object) -> tuple[StrategyManager, dict[str, Scripted]]:
    names = ("imbalance", "momentum", "supertrend")
    scripted = {n: Scripted(n) for n in names}
    config = strategy_config(enabled=names, **changes)
    config = dataclasses.replace(config, costs=dataclasses.replace(config.costs, min_expected_edge_bps=-1e9))
    return StrategyManager(config, strategies=list(scripted.values())), scripted


# -- the cost filter -----------------------------------------------------------------------------------


def test_expected_edge_is_the_documented_model_and_the_filter_counts_what_it_stops() -> None:
    metrics = DaemonMetrics()
    manager = StrategyManager(strategy_config(enabled=("imbalance",), min_strategies=1), metrics=metrics)
    a = bid_heavy()
    result = manager.evaluate("BTCUSDT", a, [], None)
    (vote,) = result.votes
    ctx = vote.signal.context or {}
    p = 0.5 + 0.5 * (200 / 240 - 0.75) / 0.25
    move = MEAN_ABS * 10.0  # σ_1m 10 bps over the 60 s horizon
    prior = p * min(15.0, move) - (1 - p) * min(10.0, move)
    cost = 2.0 + 5.5 + a.spread_bps / 2  # maker in, taker out, half the spread crossed on the way out
    assert ctx["gross_edge_bps"] == pytest.approx(prior, abs=1e-4) and ctx["cost_bps"] == pytest.approx(
        cost, abs=1e-4
    )
    assert ctx["expected_edge_bps"] == pytest.approx(prior - cost, abs=1e-4)
    assert prior - cost < 0
    assert ctx["edge"]["measured_signals"] == 0 and "sqrt(2/pi)" in ctx["edge"]["method"]
    assert not vote.sent and vote.new and result.signal is None and ctx["sent"] is False
    # the same vote on the next rows is the same signal: counted once
    manager.evaluate("BTCUSDT", bid_heavy(T0_MS + 1000), [], None)
    stats = manager.statistics()["imbalance"]
    assert (stats.signals, stats.signals_below_cost) == (0, 1)
    assert (
        metrics.strategy_signals.labels(strategy="imbalance", action="Buy", outcome="below_cost")._value.get()
        == 1
    )
    # a lower bar lets it through: it is sent, and alone (MIN_STRATEGIES 1) it is the consensus
    config = strategy_config(enabled=("imbalance",), min_strategies=1)
    loose = StrategyManager(
        dataclasses.replace(config, costs=dataclasses.replace(config.costs, min_expected_edge_bps=-20))
    )
    result = loose.evaluate("BTCUSDT", bid_heavy(), [], None)
    assert result.votes[0].sent and result.signal is not None and result.is_new
    assert (result.votes[0].signal.context or {})["sent"] is True
    assert result.entry_style is EntryStyle.MAKER and result.signal.source == "consensus"
    assert result.expected_edge_bps == pytest.approx(prior - cost, abs=1e-3)
    assert (result.signal.context or {})["strategies"] == ["imbalance"]
    assert loose.statistics()["imbalance"].signals == 1


def test_measured_outcomes_take_over_the_estimate() -> None:
    manager = StrategyManager(strategy_config(enabled=("imbalance",), min_strategies=1))
    manager.evaluate("BTCUSDT", bid_heavy(), [], None)  # a buy signal: followed from the mid 100.05
    # the mid reaches 100.2, beyond the 100.15 target: the outcome is ln(100.2/100.05) in bps
    manager.evaluate("BTCUSDT", analysis_of([(100.15, 10.0)], [(100.25, 10.0)], ts=T0_MS + 2000), [], None)
    stats = manager.statistics()["imbalance"]
    outcome = math.log(100.2 / 100.05) * 1e4
    assert (stats.measured, stats.measured_hits) == (1, 1) and stats.measured_mean_bps == pytest.approx(
        outcome
    )
    result = manager.evaluate("BTCUSDT", bid_heavy(T0_MS + 3000), [], None)
    ctx = result.votes[0].signal.context or {}
    prior = ctx["edge"]["prior_bps"]
    assert ctx["gross_edge_bps"] == pytest.approx((1 * outcome + 20 * prior) / 21, abs=1e-3)
    # a shadow that runs out of time ends at the mid of its horizon
    manager.evaluate("BTCUSDT", analysis_of([(100.0, 10.0)], [(100.1, 10.0)], ts=T0_MS + 63_000), [], None)
    assert manager.statistics()["imbalance"].measured == 2


# -- consensus on rows, enable/disable, failures ---------------------------------------------------------


def test_consensus_modes_on_rows() -> None:
    manager, s = scripted_manager(min_strategies=2, min_consensus_confidence=0.6)
    s["imbalance"].vote, s["momentum"].vote, s["supertrend"].vote = (True, 0.75), (True, 0.70), (False, 0.6)
    a = quote(100.0, 100.1)
    weighted = manager.evaluate("BTCUSDT", a, [], None)
    assert weighted.signal is None and "MIN_CONSENSUS_CONFIDENCE" in weighted.reason
    assert {v.strategy: v.signal.action for v in weighted.votes} == {
        "imbalance": SignalAction.BUY,
        "momentum": SignalAction.BUY,
        "supertrend": SignalAction.SELL,
    }
    manager.config = dataclasses.replace(manager.config, consensus_mode="majority")
    majority = manager.evaluate("BTCUSDT", a, [], None)
    assert majority.signal is not None and majority.signal.action is SignalAction.BUY and majority.is_new
    assert majority.signal.confidence == pytest.approx(0.725)
    ctx = majority.signal.context or {}
    assert ctx["strategies"] == ["imbalance", "momentum"] and ctx["opposing"] == ["supertrend"]
    assert ctx["stop_loss"] == pytest.approx(a.mid * 0.99) and ctx["take_profit"] == pytest.approx(
        a.mid * 1.02
    )
    assert manager.evaluate("BTCUSDT", a, [], None).is_new is False  # the same consensus, a row later
    manager.config = dataclasses.replace(manager.config, consensus_mode="unanimous")
    assert manager.evaluate("BTCUSDT", a, [], None).signal is None
    manager.disable("supertrend")  # at run time: the dissent is gone from the next row
    unanimous = manager.evaluate("BTCUSDT", a, [], None)
    assert unanimous.signal is not None and [v.strategy for v in unanimous.votes] == ["imbalance", "momentum"]
    manager.enable("supertrend")
    assert manager.evaluate("BTCUSDT", a, [], None).signal is None
    with pytest.raises(KeyError, match="no strategy 'nope'"):
        manager.disable("nope")
    status = manager.status()
    assert [x.name for x in status.strategies if x.enabled] == ["imbalance", "momentum", "supertrend"]
    assert status.consensus.signals == 2 and status.rows_with_consensus == 3


def test_the_entry_style_of_a_consensus_follows_the_weight_of_its_voters() -> None:
    manager, s = scripted_manager(min_strategies=2, consensus_mode="weighted", min_consensus_confidence=0.0)
    s["imbalance"].entry_style = EntryStyle.MAKER
    s["imbalance"].vote, s["momentum"].vote = (True, 0.9), (True, 0.6)
    result = manager.evaluate("BTCUSDT", quote(100.0, 100.1), [], None)
    assert result.entry_style is EntryStyle.MAKER and float(result.signal.price or 0) == 100.0  # type: ignore[union-attr]
    s["momentum"].vote = (True, 1.0)
    s["supertrend"].vote = (True, 0.5)
    result = manager.evaluate("BTCUSDT", quote(100.0, 100.1), [], None)
    assert result.entry_style is EntryStyle.TAKER and float(result.signal.price or 0) == pytest.approx(100.05)  # type: ignore[union-attr]


def test_a_failing_strategy_is_left_out_and_logged_once() -> None:
    manager, s = scripted_manager(min_strategies=1)
    s["imbalance"].vote = (True, 0.8)
    s["momentum"].raises = True
    with structlog.testing.capture_logs() as logs:
        first = manager.evaluate("BTCUSDT", quote(100.0, 100.1), [], None)
        second = manager.evaluate("BTCUSDT", quote(100.0, 100.1, ts=T0_MS + 1000), [], None)
        s["momentum"].raises = False
        manager.evaluate("BTCUSDT", quote(100.0, 100.1, ts=T0_MS + 2000), [], None)
    assert first.failed == second.failed == ("momentum",)
    assert first.signal is not None and first.signal.action is SignalAction.BUY
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "strategy failed; left out of the consensus"
    ]
    assert any(e["event"] == "strategy recovered" for e in logs)
    assert manager.status().strategies[1].failures == 2


# -- exits -------------------------------------------------------------------------------------------


def test_exits_come_from_the_entry_strategies_protective_first() -> None:
    manager, s = scripted_manager()
    s["imbalance"].exit_rule, s["momentum"].exit_rule, s["supertrend"].exit_rule = (
        "max_hold",
        "stop_loss",
        "reversal",
    )
    a = quote(100.0, 100.1)
    named = position(
        Side.BUY, 100.0, signal_data={"source": "consensus", "strategies": ["imbalance", "momentum"]}
    )
    exits = manager.exit_signals("BTCUSDT", a, [], named)
    assert [(x.source, (x.context or {})["rule"]) for x in exits] == [
        ("momentum", "stop_loss"),
        ("imbalance", "max_hold"),
    ]
    assert all(x.action is SignalAction.SELL for x in exits)
    manager.disable("momentum")  # a disabled strategy's exits still guard the positions it opened
    assert len(manager.exit_signals("BTCUSDT", a, [], named)) == 2
    anonymous = position(Side.BUY, 100.0)  # no strategies named: every enabled strategy's exits
    assert [x.source for x in manager.exit_signals("BTCUSDT", a, [], anonymous)] == [
        "supertrend",
        "imbalance",
    ]


# -- statistics ------------------------------------------------------------------------------------


MAKER_WIN = TradeOutcome(
    symbol="BTCUSDT",
    strategies=("imbalance", "momentum"),
    side=Side.BUY,
    entry_style=EntryStyle.MAKER,
    quantity=Decimal("0.01"),
    entry_price=Decimal(64000),
    exit_price=Decimal(64100),
    fees=Decimal("0.5"),
    closed_ms=T0_MS + 60_000,
)
TAKER_LOSS = TradeOutcome(
    symbol="ETHUSDT",
    strategies=("momentum",),
    side=Side.SELL,
    entry_style=EntryStyle.TAKER,
    quantity=Decimal("0.02"),
    entry_price=Decimal(3400),
    exit_price=Decimal(3410),
    fees=Decimal("0.1"),
    closed_ms=T0_MS + 120_000,
    consensus=False,
)


async def test_trade_outcomes_split_by_entry_style() -> None:
    manager = StrategyManager(strategy_config())
    await manager.record_outcome(MAKER_WIN)  # gross 0.01 × 100 = 1, net 0.5
    await manager.record_outcome(TAKER_LOSS)  # short: gross -0.02 × 10 = -0.2, net -0.3
    momentum, imbalance, consensus = (manager.statistics()[n] for n in ("momentum", "imbalance", "consensus"))
    assert (momentum.trades, momentum.wins, momentum.hit_rate) == (2, 1, 0.5)
    assert (momentum.maker_trades, momentum.taker_trades) == (1, 1)
    assert (momentum.gross_pnl, momentum.fees, momentum.net_pnl) == (
        Decimal("0.8"),
        Decimal("0.6"),
        Decimal("0.2"),
    )
    assert (momentum.maker_net_pnl, momentum.taker_net_pnl) == (Decimal("0.5"), Decimal("-0.3"))
    assert (imbalance.trades, imbalance.net_pnl) == (1, Decimal("0.5"))
    assert (consensus.trades, consensus.net_pnl) == (
        1,
        Decimal("0.5"),
    )  # the taker loss was no consensus trade
    with pytest.raises(ValueError, match="unknown strategies"):
        await manager.record_outcome(dataclasses.replace(MAKER_WIN, strategies=("nope",)))


def test_outcome_of_a_closed_position() -> None:
    closed = Position(
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.01"),
        entry_price=Decimal(64000),
        exit_price=Decimal(64100),
        status=PositionStatus.CLOSED,
        fees_paid=Decimal("0.5"),
        closed_ms=T0_MS + 60_000,
        signal_data={"source": "consensus", "strategies": ["imbalance", "momentum"], "entry_style": "maker"},
    )
    assert outcome_from_position(closed) == MAKER_WIN
    assert outcome_from_position(msgspec.structs.replace(closed, status=PositionStatus.OPEN)) is None
    single = msgspec.structs.replace(closed, signal_data={"source": "supertrend"})
    outcome = outcome_from_position(single)
    assert outcome is not None and outcome.strategies == ("supertrend",) and not outcome.consensus
    assert outcome.entry_style is EntryStyle.TAKER


def test_outcome_of_a_position_closed_by_execution() -> None:
    """Execution nests the intent's context under "context" and closes the position to quantity 0."""
    closed = Position(
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal(0),
        entry_price=Decimal(64000),
        exit_price=Decimal(64100),
        status=PositionStatus.CLOSED,
        fees_paid=Decimal("0.5"),
        closed_ms=T0_MS + 60_000,
        signal_data={
            "intent_id": "i-1",
            "source": "decisions",
            "context": {
                "source": "consensus",
                "strategies": ["imbalance", "momentum"],
                "entry_style": "maker",
            },
        },
    )
    assert outcome_from_position(closed) is None  # no size: the caller must say what was traded
    assert outcome_from_position(closed, quantity=Decimal("0.01")) == MAKER_WIN
    only_known = outcome_from_position(closed, quantity=Decimal("0.01"), known={"momentum"})
    assert only_known is not None and only_known.strategies == ("momentum",)
    assert outcome_from_position(closed, quantity=Decimal("0.01"), known={"supertrend"}) is None


class FlakyStore:
    """A statistics store that is down until told otherwise, then keeps what it is given."""

    def __init__(self) -> None:
        self.down = True
        self.saved: dict[str, StrategyStatistics] = {}

    async def load(self) -> dict[str, StrategyStatistics]:
        return dict(self.saved)

    async def save(self, records: Sequence[StrategyStatistics]) -> None:
        if self.down:
            raise DatabaseUnavailable("the statistics database is down")
        self.saved.update({r.strategy: r for r in records})


async def test_statistics_not_saved_are_kept_for_the_next_flush() -> None:
    store = FlakyStore()
    manager = StrategyManager(strategy_config(), store=store)
    await manager.record_outcome(MAKER_WIN)  # saving fails: logged, kept
    assert store.saved == {}
    store.down = False
    await manager.flush()
    assert set(store.saved) == {"imbalance", "momentum", "consensus"}
    assert store.saved["momentum"] == manager.statistics()["momentum"]


async def test_statistics_persist_in_postgres_and_are_restored(pool) -> None:  # type: ignore[no-untyped-def]
    repository = StrategyStatisticsRepository(pool)
    config = strategy_config(enabled=("imbalance", "momentum"), min_strategies=1)
    first = StrategyManager(config, store=repository)
    await first.restore()  # nothing stored yet
    first.evaluate("BTCUSDT", bid_heavy(), [], None)  # a below-cost imbalance signal, followed...
    first.evaluate("BTCUSDT", analysis_of([(100.15, 10.0)], [(100.25, 10.0)], ts=T0_MS + 2000), [], None)
    first.disable("momentum")
    await first.record_outcome(MAKER_WIN)
    await first.record_outcome(TAKER_LOSS)
    stored = await repository.load()
    assert stored == first.statistics()
    assert stored["momentum"].enabled is False and stored["imbalance"].measured == 1
    assert stored["momentum"].gross_pnl == Decimal("0.8")

    second = StrategyManager(config, store=repository)  # a restart
    await second.restore()
    restored = second.statistics()
    for name in ("imbalance", "consensus"):
        assert restored[name] == stored[name]
    # counters continue; which strategies vote is the settings' again (momentum back on)
    assert restored["momentum"].trades == 2 and restored["momentum"].enabled is True
    # the positions the first run counted, read again after the restart, are not counted twice
    assert await second.record_outcome(MAKER_WIN) is False
    assert second.statistics()["imbalance"].trades == 1
    later = dataclasses.replace(MAKER_WIN, closed_ms=TAKER_LOSS.closed_ms + 1)
    assert await second.record_outcome(later) is True
    again = await repository.load()
    assert again["imbalance"].trades == 2 and again["imbalance"].net_pnl == Decimal("1.0")
    assert again["momentum"].enabled is True and again["momentum"].last_trade_ms == later.closed_ms
