"""The decision engine between the market feed's sinks and execution's submitter.

Scripted consensus results stand in for the strategies where a test needs a given signal (the strategy
manager has its own tests); everything else is real: the live features and the analyzer fed by a
recording of the paper exchange's market, the ML gate serving registered models, risk, the signal store.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.notifications import listen
from infra.db.repositories.model_versions import PROMOTION_CHANNEL
from infra.db.repositories.signals import SignalRepository
from infra.settings import code_defaults
from ml.registry import ModelRegistry
from schemas.enums import AuditAction, EntryStyle, OrderType, PositionStatus, Side, SignalAction, TimeInForce
from schemas.market import Candle
from schemas.snapshot import RawSnapshotRow
from schemas.trading import AuditEvent, Position, Signal
from testkit.decisions import LedgerAccount, RecordingSubmitter
from tests.fixtures.recorded import recorded_market
from tests.trading_daemon.ml_gate.models import SPEC, promote, register
from tests.trading_daemon.ml_gate.test_gate import wait_for
from trading_daemon.analysis import MarketAnalysis, MarketAnalyzer
from trading_daemon.decisions import BatchWriter, Decision, DecisionEngine
from trading_daemon.features.live import LiveFeatures
from trading_daemon.ml_gate import MLGate, PromotionWatcher
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.risk import RiskManager, TradingHealth
from trading_daemon.strategies import ConsensusResult, StrategyVote

SYMBOL = "BTCUSDT"
SECONDS = 150


@pytest.fixture(scope="module")
def market() -> tuple[list[RawSnapshotRow], list[Candle]]:
    rec = recorded_market(seconds=SECONDS, symbols=(SYMBOL,), seed=11)
    return rec.rows[SYMBOL], rec.candles[SYMBOL]


class ScriptedStrategies:
    """Returns the consensus `script(analysis)` says, with one vote of a strategy named "scripted"."""

    def __init__(self, script: Callable[[MarketAnalysis], Signal | None], style: EntryStyle = EntryStyle.TAKER,
                 edge_bps: float = 3.0, exits: bool = False) -> None:  # fmt: skip
        self.script = script
        self.style = style
        self.edge_bps = edge_bps
        self.exits = exits
        self.evaluated = 0

    def evaluate(
        self, symbol: str, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position | None
    ) -> ConsensusResult:
        self.evaluated += 1
        signal = self.script(analysis)
        votes = () if signal is None else (StrategyVote("scripted", msgspec.structs.replace(signal, source="scripted"),
                                                        True, self.evaluated == 1),)  # fmt: skip
        return ConsensusResult(symbol, analysis.ts, votes, signal, self.style if signal else None,
                               self.edge_bps if signal else None, self.evaluated == 1, "scripted")  # fmt: skip

    def exit_signals(
        self, symbol: str, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> list[Signal]:
        if not self.exits:
            return []
        return [Signal(symbol=symbol, ts=analysis.ts, source="scripted", action=SignalAction.SELL, strength=1.0,
                       reason="take_profit", context={"rule": "take_profit"})]  # fmt: skip


def buy(analysis: MarketAnalysis) -> Signal:
    mid = analysis.mid
    return Signal(
        symbol=analysis.symbol, ts=analysis.ts, source="consensus", action=SignalAction.BUY, strength=0.8,
        confidence=0.8, price=Decimal(repr(mid)),
        context={"strategies": ["scripted"], "stop_loss": mid * 0.995, "take_profit": mid * 1.01,
                 "expected_edge_bps": 3.0},
    )  # fmt: skip


@dataclasses.dataclass
class Rig:
    engine: DecisionEngine
    gate: MLGate
    features: LiveFeatures
    analyzer: MarketAnalyzer
    health: TradingHealth
    submitter: RecordingSubmitter
    ledger: LedgerAccount
    decisions: list[Decision]
    signals: BatchWriter[Signal]
    clock: list[int]

    def sinks(self) -> list[object]:
        return [self.engine.arrivals, self.features, self.analyzer, self.health, self.engine]

    async def feed(self, rows: Sequence[RawSnapshotRow], candles: Sequence[Candle], fed: int) -> int:
        """Rows one at a time, each candle once closed, as the market feed hands them over; each row decided
        before the next arrives (the exchange clock just past its row)."""
        for row in rows:
            closed = [c for c in candles[fed:] if c.start_ms + 60_000 <= row.ts]
            if closed:
                self.features.submit_candles(closed)
                self.analyzer.submit_candles(closed)
                fed += len(closed)
            self.clock[0] = row.ts + 300
            for sink in self.sinks():
                sink.submit_rows([row])  # type: ignore[attr-defined]
            await self.engine.idle()
        return fed


def rig(
    gate: MLGate, strategies: ScriptedStrategies, *, signal_store: SignalRepository | None = None,
    ledger: LedgerAccount | None = None, detections: object = None, audit: list[AuditEvent] | None = None,
) -> Rig:  # fmt: skip
    settings = code_defaults()
    clock = [0]
    health = TradingHealth([SYMBOL], book_stale_ms=3000, now_ms=lambda: clock[0])
    risk = RiskManager(
        settings.risk, health, clock=lambda: clock[0], audit=None if audit is None else audit.append
    )
    ledger = ledger or LedgerAccount()
    submitter = RecordingSubmitter(checks=[risk], account=ledger)
    features = LiveFeatures([SYMBOL], spec=SPEC)
    analyzer = MarketAnalyzer(dataclasses.replace(settings.analyzer, symbols=(SYMBOL,)))
    decisions: list[Decision] = []
    writer: BatchWriter[Signal] = BatchWriter(
        "signals", None if signal_store is None else signal_store.add_many, interval_s=0.05
    )
    engine = DecisionEngine(
        settings.decisions, [SYMBOL], features=features, gate=gate, risk=risk, analyzer=analyzer,
        strategies=strategies, submitter=submitter, account=ledger, candles=lambda s: [],
        exchange_now_ms=lambda: clock[0], detections=detections,  # type: ignore[arg-type]
        store_signal=writer.put, on_decision=decisions.append, metrics=DaemonMetrics(),
    )  # fmt: skip
    return Rig(engine, gate, features, analyzer, health, submitter, ledger, decisions, writer, clock)


def no_model_gate(tmp_path: Path) -> MLGate:
    class Empty:
        def production(self) -> None:
            return None

        def list(self, *a: object, **k: object) -> list[object]:
            return []

    return MLGate(Empty(), code_defaults().ml_gate, spec_hash=SPEC.spec_hash)  # type: ignore[arg-type]


async def drain(r: Rig) -> None:
    await r.engine.stop(timeout_s=30)


async def test_a_consensus_becomes_a_sized_protected_intent(
    market: tuple[list[RawSnapshotRow], list[Candle]], tmp_path: Path
) -> None:
    rows, candles = market
    fired = []

    def once(analysis: MarketAnalysis) -> Signal | None:
        if analysis.ts == rows[100].ts and analysis.valid:
            fired.append(analysis)
            return buy(analysis)
        return None

    r = rig(no_model_gate(tmp_path), ScriptedStrategies(once))
    r.engine.start()
    await r.feed(rows[:120], candles, 0)
    await drain(r)
    assert len(fired) == 1
    (intent,) = r.submitter.intents
    analysis = fired[0]
    assert (intent.symbol, intent.side, intent.order_type, intent.price) == (
        SYMBOL,
        Side.BUY,
        OrderType.MARKET,
        None,
    )
    assert intent.stop_loss == Decimal(repr(analysis.mid * 0.995)) and intent.take_profit == Decimal(
        repr(analysis.mid * 1.01)
    )
    assert intent.notional is not None and Decimal(5) <= intent.notional <= Decimal(2500)
    assert intent.context is not None and intent.context["strategies"] == ["scripted"]
    assert intent.context["validation"]["verdict"] == "fallback"  # no model: the consensus decides alone
    decided = [d for d in r.decisions if d.consensus is not None]
    assert [d.outcome for d in decided] == ["sent"] and decided[0].signal_ms is not None
    assert all(d.prediction.fallback is not None for d in r.decisions)
    stored = [s for s in r.signals.recent if s.source == "decision"]
    assert len(stored) == 1 and stored[0].context and stored[0].context["outcome"] == "sent"
    assert stored[0].model_version is None


async def test_maker_entries_rest_post_only_at_the_touch(
    market: tuple[list[RawSnapshotRow], list[Candle]], tmp_path: Path
) -> None:
    rows, candles = market
    r = rig(no_model_gate(tmp_path), ScriptedStrategies(
        lambda a: buy(a) if a.ts == rows[100].ts else None, style=EntryStyle.MAKER))  # fmt: skip
    r.engine.start()
    await r.feed(rows[:101], candles, 0)
    await drain(r)
    (intent,) = r.submitter.intents
    touch = r.health.touch(SYMBOL)
    assert touch is not None
    assert (intent.order_type, intent.time_in_force, intent.price) == (
        OrderType.LIMIT,
        TimeInForce.POST_ONLY,
        touch[0],
    )


async def test_a_manipulation_blocks_entries_first_and_exits_still_go(
    market: tuple[list[RawSnapshotRow], list[Candle]], tmp_path: Path
) -> None:
    rows, candles = market

    class Detections:
        def blocked(self, symbol: str, now_ms: int) -> str | None:
            return "spoofing on the bid"

    ledger = LedgerAccount(positions=[Position(symbol=SYMBOL, side=Side.BUY, quantity=Decimal("0.01"),
                                               entry_price=Decimal(60000), status=PositionStatus.OPEN)])  # fmt: skip
    audit: list[AuditEvent] = []
    r = rig(
        no_model_gate(tmp_path), ScriptedStrategies(buy, exits=True), ledger=ledger, detections=Detections(),
        audit=audit,
    )  # fmt: skip
    r.engine.start()
    await r.feed(rows[90:95], candles, 0)
    await drain(r)
    outcomes = {d.outcome for d in r.decisions if d.consensus is not None}
    assert outcomes == {"blocked"} and r.engine.gate.verdicts_total == {}
    # The refusal is a risk_reject audit row naming the rule: one for the block, not one per row.
    (refusal,) = [e for e in audit if e.action is AuditAction.RISK_REJECT]
    assert refusal.reason == "manipulation" and "spoofing on the bid" in (refusal.error_message or "")
    assert r.engine.risk.refusals["manipulation"] == 1
    exits = [i for i in r.submitter.intents if i.reduce_only]
    assert exits and all(i.side is Side.SELL and i.quantity == Decimal("0.01") for i in exits)
    assert not [i for i in r.submitter.intents if not i.reduce_only]


async def test_a_model_promoted_mid_run_shapes_every_later_signal(
    market: tuple[list[RawSnapshotRow], list[Candle]], db: Database, pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    rows, candles = market
    registry = ModelRegistry(db, root=tmp_path / "models")
    v1, v2 = register(registry, 1), register(registry, 2)
    promote(db, v1.version)
    gate = MLGate(registry, dataclasses.replace(code_defaults().ml_gate, shadow_enabled=False),
                  spec_hash=SPEC.spec_hash)  # fmt: skip
    store = SignalRepository(pool)
    # Every row has a buy consensus whose expected edge does not cover the cost: validated and stored, never sent.
    r = rig(gate, ScriptedStrategies(buy, edge_bps=-1.0), signal_store=store)

    def listener(on_listening: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
        return listen(db, PROMOTION_CHANNEL, on_listening=on_listening)

    watcher = PromotionWatcher(gate, listener, poll_interval_s=3600)
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop))
    await wait_for(lambda: watcher.listening and gate.production is not None)
    r.signals.start()
    r.engine.start()
    fed, half = 0, len(rows) // 2
    for i, row in enumerate(rows):
        fed = await r.feed([row], candles, fed)
        if i == half:
            await asyncio.to_thread(promote, db, v2.version)
        await asyncio.sleep(0.01)
    await drain(r)
    stop.set()
    await watching
    await r.signals.close()

    assert len(r.decisions) == len(rows) and [d.ts_ms for d in r.decisions] == [row.ts for row in rows]
    windows = [d for d in r.decisions if d.prediction.fallback is None]
    assert windows and all(d.prediction.prediction is not None for d in windows)
    missing = [d for d in r.decisions if d.prediction.fallback is not None]
    assert {str(d.prediction.fallback) for d in missing} == {"no_window"}
    assert all(d.ts_ms < windows[0].ts_ms for d in missing), "a row after the first window went unpredicted"
    versions = [d.prediction.model_version for d in windows]
    first_new = versions.index(v2.version)
    assert set(versions[:first_new]) == {v1.version} and set(versions[first_new:]) == {v2.version}
    assert windows[first_new].ts_ms > rows[half].ts
    stored = await store.recent(symbol=SYMBOL, source="decision", limit=1000)
    by_version = {s.model_version for s in stored if s.ts >= windows[first_new].ts_ms}
    assert by_version == {v2.version}
    assert {s.model_version for s in stored if s.ts < windows[first_new].ts_ms} <= {v1.version, None}
    # the model's verdict comes first; what it lets through is stopped by the cost
    assert {s.context["outcome"] for s in stored if s.context} <= {"below_cost", "vetoed", "not_confident"}
    assert not r.submitter.intents
    assert gate.rates()["fallback_rate"] < 1.0
    await gate.close()
