"""The five strategies, their consensus, the cost filter and per-strategy statistics (docs/strategies.md)."""

from schemas.enums import EntryStyle
from trading_daemon.strategies.base import CandleArrays, Strategy, candle_arrays
from trading_daemon.strategies.consensus import Agreement, Vote, combine
from trading_daemon.strategies.costs import CostModel, EdgeEstimate
from trading_daemon.strategies.imbalance import ImbalanceStrategy
from trading_daemon.strategies.manager import EXIT_PRIORITY, StrategyManager, build_strategies
from trading_daemon.strategies.momentum import MomentumStrategy
from trading_daemon.strategies.results import (
    ConsensusResult,
    ManagerStatus,
    StatisticsStore,
    StrategyStatus,
    StrategyVote,
)
from trading_daemon.strategies.sar_wave import SarWaveStrategy
from trading_daemon.strategies.statistics import TradeOutcome, entry_context, outcome_from_position
from trading_daemon.strategies.supertrend import SuperTrendStrategy
from trading_daemon.strategies.volume_profile import VolumeProfileStrategy

__all__ = [
    "EXIT_PRIORITY",
    "Agreement",
    "CandleArrays",
    "ConsensusResult",
    "CostModel",
    "EdgeEstimate",
    "EntryStyle",
    "ImbalanceStrategy",
    "ManagerStatus",
    "MomentumStrategy",
    "SarWaveStrategy",
    "StatisticsStore",
    "Strategy",
    "StrategyManager",
    "StrategyStatus",
    "StrategyVote",
    "SuperTrendStrategy",
    "TradeOutcome",
    "VolumeProfileStrategy",
    "Vote",
    "build_strategies",
    "candle_arrays",
    "combine",
    "entry_context",
    "outcome_from_position",
]
