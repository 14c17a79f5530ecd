"""What the strategy manager returns: each strategy's vote, the consensus of a row, and the status the API
shows; and the protocol of the statistics store (docs/strategies.md §3, §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from schemas.enums import EntryStyle
from schemas.strategies import StrategyStatistics
from schemas.trading import Signal


class StatisticsStore(Protocol):
    """Where statistics persist (`infra.db.repositories.StrategyStatisticsRepository`)."""

    async def load(self) -> dict[str, StrategyStatistics]: ...

    async def save(self, records: Sequence[StrategyStatistics]) -> None: ...


@dataclass(frozen=True, slots=True)
class StrategyVote:
    """One strategy's vote at a row, with its expected edge in `signal.context`."""

    strategy: str
    signal: Signal
    sent: bool  # its expected edge covered the cost: it voted
    new: bool  # the first row of this vote

    @property
    def expected_edge_bps(self) -> float:
        return float((self.signal.context or {})["expected_edge_bps"])


@dataclass(frozen=True, slots=True)
class ConsensusResult:
    """What the strategies say about one row of a symbol.

    `signal` is the consensus signal when one formed and its expected edge covered the cost (source
    "consensus"; its context holds `strategies`, `expected_edge_bps`, `entry_style`, `stop_loss`,
    `take_profit`, …), else None with `reason` saying why.
    """

    symbol: str
    ts: int
    votes: tuple[StrategyVote, ...]
    signal: Signal | None
    entry_style: EntryStyle | None
    expected_edge_bps: float | None
    is_new: bool  # `signal` appeared at this row
    reason: str
    failed: tuple[str, ...] = ()  # strategies that raised at this row

    @property
    def signals(self) -> dict[str, Signal]:
        """Every strategy's signal at this row, sent or not, by strategy."""
        return {v.strategy: v.signal for v in self.votes}


class StrategyStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy as the API shows it."""

    name: str
    enabled: bool
    weight: float
    entry_style: str
    max_hold_s: float
    statistics: StrategyStatistics
    hit_rate: float | None
    measured_mean_bps: float | None
    failures: int


class ManagerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The manager as the API shows it: settings, every strategy, and the consensus's counters."""

    consensus_mode: str
    min_strategies: int
    min_consensus_confidence: float
    taker_fee_bps: float
    maker_fee_bps: float
    min_expected_edge_bps: float
    strategies: list[StrategyStatus]
    consensus: StrategyStatistics
    rows_with_votes: int
    rows_with_consensus: int

    @property
    def consensus_rate(self) -> float | None:
        """Share of the rows with at least one sent vote on which a consensus was sent."""
        return self.rows_with_consensus / self.rows_with_votes if self.rows_with_votes else None
