"""What the API reads and drives: the daemon's live components, gathered once by the service.

The routes are thin: each takes the `DaemonContext` from `request.app.state.daemon` and calls a plain
method of a component (the feed's books, the analyzer's metrics, the ledger's orders, the gate's stats).
Components that exist only when the daemon trades (`decisions`, `execution`) are optional; a route that
needs one answers 503 naming the setting that would turn it on (`require_decisions`, `require_execution`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import HTTPException
from psycopg_pool import AsyncConnectionPool

from infra.configs import ApiConfig
from infra.db.connection import Database
from infra.settings import Settings
from trading_daemon.analysis import MarketAnalyzer
from trading_daemon.api.models import BotState
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.market.feed import MarketFeed
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.recorder.recorder import Recorder
from trading_daemon.resilience.circuit_breaker import CircuitBreakerManager
from trading_daemon.resilience.rate_limiter import RateLimiter

if TYPE_CHECKING:
    from trading_daemon.api.hub import Hub
    from trading_daemon.decisions.runtime import DecisionsRuntime
    from trading_daemon.execution.runtime import ExecutionRuntime


@dataclass
class DaemonContext:
    """The live daemon as the API sees it (built by `trading_daemon.service`, or by a test)."""

    settings: Settings
    api: ApiConfig
    db: Database
    pool: AsyncConnectionPool  # the API's own pool: a slow page never holds the recorder's connections
    rest: BybitRestClient
    stream: BybitPublicWebSocket
    feed: MarketFeed
    recorder: Recorder
    analyzer: MarketAnalyzer  # the decisions' own when trading, else one fed beside the recorder
    breakers: CircuitBreakerManager
    limiter: RateLimiter
    metrics: DaemonMetrics
    exchange_now_ms: Callable[[], int]
    decisions: DecisionsRuntime | None = None
    execution: ExecutionRuntime | None = None
    hub: Hub | None = None
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    ready: bool = False  # set by the service once start-up has finished

    @property
    def paused_reason(self) -> str | None:
        """Why an operator stopped the bot (entries refused; exits and protection keep working), or None."""
        return None if self.execution is None else self.execution.manager.paused_reason

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.settings.feed.symbols

    @property
    def bot_state(self) -> BotState:
        """`starting`, `recording` (no execution), `halted` (kill switch), `paused` (an operator's stop) or
        `running`."""
        execution = self.execution
        if not self.ready:
            return "starting"
        if execution is None:
            return "recording"
        if execution.manager.halt_reason is not None:
            return "halted"
        if execution.manager.paused_reason is not None:
            return "paused"
        return "running"

    def require_symbol(self, symbol: str) -> str:
        """The symbol, if the daemon streams it; 404 naming the symbols it does stream otherwise."""
        if symbol not in self.symbols:
            raise HTTPException(
                404,
                f"unknown symbol {symbol!r}: the daemon streams {', '.join(self.symbols)} (TRADING_PAIRS)",
            )
        return symbol

    def require_decisions(self) -> DecisionsRuntime:
        if self.decisions is None:
            if self.settings.trading_enabled and self.settings.scripted_intent_interval_s:
                raise HTTPException(
                    503,
                    "the daemon trades scripted intents (SCRIPTED_INTENT_INTERVAL_S is set): no strategies, "
                    "model or risk run; unset it for the decisions",
                )
            raise HTTPException(
                503, "the daemon records only: set TRADING_ENABLED=true for strategies, the model and risk"
            )
        return self.decisions

    def require_execution(self) -> ExecutionRuntime:
        if self.execution is None:
            raise HTTPException(
                503,
                "the daemon does not trade: set TRADING_ENABLED=true with BYBIT_API_KEY and BYBIT_API_SECRET",
            )
        return self.execution
