"""Market analysis per symbol on every raw snapshot row: imbalances, spread, clusters, volume, volatility and
the screener's columns, held for the strategies and the API (docs/strategies.md §1)."""

from trading_daemon.analysis.analyzer import MAX_CLUSTERS, MarketAnalyzer
from trading_daemon.analysis.records import BookCluster, MarketAnalysis

__all__ = ["MAX_CLUSTERS", "BookCluster", "MarketAnalysis", "MarketAnalyzer"]
