"""The instrument's rules as a pre-trade check: tick, lot, minimum and maximum quantity, minimum notional.

Runs first among the `PreTradeCheck`s. It turns a notional into a quantity at the reference price (the
limit price, else the touch on the side the order takes), rounds the quantity down to the lot and the prices
to the tick (a buy's limit down, a sell's up: never more aggressive than asked), and refuses what the
exchange would refuse (110094 below the minimum notional, 10001 outside the quantity range), so that the
refusal is ours, explained and audited, rather than a round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec

from schemas.enums import OrderType, Side
from schemas.trading import TradeIntent
from trading_daemon.exchange.records import BybitInstrumentInfo
from trading_daemon.execution.contracts import AccountView, CheckVerdict

# The price an intent is measured at, when it has no limit price: (symbol, side) → price or None.
ReferencePrice = Callable[[str, Side], Awaitable[Decimal | None]]


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """What the exchange accepts for one symbol."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal | None
    max_market_qty: Decimal | None
    min_notional: Decimal | None

    @classmethod
    def from_info(cls, info: BybitInstrumentInfo) -> InstrumentRules:
        return cls(
            symbol=info.symbol,
            tick_size=info.tick_size,
            qty_step=info.qty_step,
            min_qty=info.min_order_qty,
            max_qty=info.max_order_qty,
            max_market_qty=info.max_market_order_qty,
            min_notional=info.min_notional,
        )

    def round_qty(self, qty: Decimal) -> Decimal:
        """Down to the lot (never more than asked)."""
        return (qty / self.qty_step).to_integral_value(ROUND_FLOOR) * self.qty_step

    def round_price(self, price: Decimal, side: Side, *, passive: bool = True) -> Decimal:
        """To the tick: with `passive`, a buy rounds down and a sell up (never more aggressive)."""
        down = (side is Side.BUY) == passive
        ticks = (price / self.tick_size).to_integral_value(ROUND_FLOOR if down else ROUND_CEILING)
        return ticks * self.tick_size


class InstrumentCheck:
    """`PreTradeCheck` "instrument": sizes and rounds the intent, or refuses it naming the rule."""

    name = "instrument"

    def __init__(self, rules: dict[str, InstrumentRules], reference_price: ReferencePrice) -> None:
        self.rules = rules
        self.reference_price = reference_price

    async def check(self, intent: TradeIntent, account: AccountView) -> CheckVerdict:
        rules = self.rules.get(intent.symbol)
        if rules is None:
            return self._refuse(intent, f"{intent.symbol} is not a traded instrument")
        price = intent.price
        if price is not None:
            price = rules.round_price(price, intent.side)
        reference = price if price is not None else await self.reference_price(intent.symbol, intent.side)
        if reference is None:
            return self._refuse(intent, f"no price for {intent.symbol} to size or check the order at")
        raw_qty = intent.quantity if intent.quantity is not None else intent.notional / reference  # type: ignore[operator]
        qty = rules.round_qty(raw_qty)
        details = {"reference_price": str(reference), "quantity": str(qty), "requested": str(raw_qty)}
        if qty < rules.min_qty or qty <= 0:
            return self._refuse(intent, f"quantity {qty} below the minimum {rules.min_qty}", details)
        limit = rules.max_market_qty if intent.order_type is OrderType.MARKET else rules.max_qty
        if limit is not None and qty > limit:
            return self._refuse(intent, f"quantity {qty} above the maximum {limit}", details)
        if not intent.reduce_only and rules.min_notional is not None and qty * reference < rules.min_notional:
            return self._refuse(
                intent, f"notional {qty * reference} below the minimum {rules.min_notional} USDT", details
            )
        opposite = intent.side.opposite()
        sized = msgspec.structs.replace(
            intent,
            quantity=qty,
            notional=None,
            price=price,
            take_profit=None
            if intent.take_profit is None
            else rules.round_price(intent.take_profit, opposite, passive=False),
            stop_loss=None if intent.stop_loss is None else rules.round_price(intent.stop_loss, opposite),
        )
        return CheckVerdict(True, sized, self.name, None, details)

    def _refuse(
        self, intent: TradeIntent, reason: str, details: dict[str, str] | None = None
    ) -> CheckVerdict:
        return CheckVerdict(False, intent, self.name, reason, details or {})
