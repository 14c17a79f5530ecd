"""Risk: the limits every entry passes (`RiskManager`, a pre-trade check) and the infrastructure-health halts
(`TradingHealth`). See docs/decisions.md."""

from trading_daemon.risk.health import (
    ErrorBurst,
    HealthIssue,
    HealthRule,
    TradingHealth,
    WatchedBreakers,
    WatchedRateLimiter,
)
from trading_daemon.risk.manager import RiskManager, RiskRefused, RiskRule, Sizing

__all__ = [
    "ErrorBurst",
    "HealthIssue",
    "HealthRule",
    "RiskManager",
    "RiskRefused",
    "RiskRule",
    "Sizing",
    "TradingHealth",
    "WatchedBreakers",
    "WatchedRateLimiter",
]
