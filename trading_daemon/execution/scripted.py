"""A scripted intent source for the demo, the crash test and the benchmark (until strategies decide).

Every `interval_s` of exchange time it submits one intent through an `IntentSubmitter`, cycling through the
order types execution supports: a market entry, a limit GTC entry at the touch, a reduce-only market exit of
the whole position, a PostOnly entry at the touch, a market entry the other way, and its exit. The intent id
is the time slot (`scr-<slot>-<symbol>`), so a daemon restarted in the middle of a slot submits the same
intent again — which must come back as the same order, never a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from schemas.enums import OrderType, Side, TimeInForce
from schemas.trading import TradeIntent
from trading_daemon.execution.contracts import AccountView, IntentSubmitter
from trading_daemon.execution.market_view import MarketView

log = structlog.get_logger(__name__)


@dataclass
class ScriptStats:
    submitted: int = 0
    accepted: int = 0
    refused: int = 0
    errors: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class ScriptedIntentSource:
    """Submits one scripted intent per time slot until stopped."""

    def __init__(
        self,
        submitter: IntentSubmitter,
        account: AccountView,
        symbols: Sequence[str],
        *,
        interval_s: float,
        notional: Decimal,
        clock: Callable[[], int],
        market: MarketView | None = None,
        prefix: str = "scr",
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.submitter = submitter
        self.account = account
        self.symbols = list(symbols)
        self.interval_ms = max(1, int(interval_s * 1000))
        self.notional = notional
        self.clock = clock
        self.market = market
        self.prefix = prefix
        self.stats = ScriptStats()

    def intent(self, slot: int) -> TradeIntent | None:
        """The intent of time slot `slot` (None when its step has nothing to do, e.g. an exit when flat)."""
        symbol = self.symbols[slot % len(self.symbols)]
        step = (slot // len(self.symbols)) % 6
        base: dict[str, Any] = {"intent_id": f"{self.prefix}-{slot}-{symbol}", "symbol": symbol, "ts": self.clock(),
                "source": "script", "context": {"script_step": step, "slot": slot}}  # fmt: skip
        touch = self.market.touch(symbol) if self.market is not None else None
        if step in (2, 5):
            position = next((p for p in self.account.open_positions() if p.symbol == symbol), None)
            if position is None or position.quantity <= 0:
                return None
            return TradeIntent(
                **base, side=position.side.opposite(), order_type=OrderType.MARKET, quantity=position.quantity,
                reduce_only=True, time_in_force=TimeInForce.IOC, reason="scripted exit",
            )  # fmt: skip
        side = Side.SELL if step == 4 else Side.BUY
        if step == 1 and touch is not None:
            return TradeIntent(**base, side=side, order_type=OrderType.LIMIT, price=touch[0], notional=self.notional,
                               reason="scripted limit entry at the bid")  # fmt: skip
        if step == 3 and touch is not None:
            return TradeIntent(**base, side=side, order_type=OrderType.LIMIT, price=touch[0], notional=self.notional,
                               time_in_force=TimeInForce.POST_ONLY, reason="scripted PostOnly entry at the bid")  # fmt: skip
        return TradeIntent(**base, side=side, order_type=OrderType.MARKET, notional=self.notional,
                           time_in_force=TimeInForce.IOC, reason="scripted market entry")  # fmt: skip

    async def run(self, stop: asyncio.Event) -> ScriptStats:
        """Submit one intent per slot until `stop` is set."""
        last = self.clock() // self.interval_ms
        while not stop.is_set():
            slot = self.clock() // self.interval_ms
            if slot != last:
                last = slot
                await self._submit(slot)
            wait_ms = (slot + 1) * self.interval_ms - self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(wait_ms, 1) / 1000)
        return self.stats

    async def _submit(self, slot: int) -> None:
        intent = self.intent(slot)
        if intent is None:
            return
        self.stats.submitted += 1
        try:
            result = await self.submitter.submit(intent)
        except Exception as exc:  # a database or exchange outage: the next slot tries again
            self.stats.errors += 1
            log.warning("scripted intent failed", intent=intent.intent_id, error=str(exc))
            return
        if result.accepted:
            self.stats.accepted += 1
        else:
            self.stats.refused += 1
            key = (result.reason or "refused").split(":")[0]
            self.stats.reasons[key] = self.stats.reasons.get(key, 0) + 1
