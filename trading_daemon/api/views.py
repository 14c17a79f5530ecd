"""Records as the API shows them (the HTTP routes and the WebSocket's messages share these mappings):
orders with the strategy that placed them, positions marked to the book's mid with their live PnL."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.enums import Side
from schemas.trading import Fill, Order, Position, Signal
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.models import FillOut, OrderOut, PositionOut, SignalOut


def mark(ctx: DaemonContext, symbol: str) -> float | None:
    builder = ctx.feed.builders.get(symbol)
    return None if builder is None else builder.book.mid()


def pnl(side: Side, quantity: Decimal, entry: Decimal | None, mark: float | None) -> Decimal | None:
    if entry is None or mark is None or quantity <= 0:
        return None
    sign = 1 if side is Side.BUY else -1
    return (Decimal(str(mark)) - entry) * quantity * sign


def pct(pnl: Decimal | None, entry: Decimal | None, quantity: Decimal) -> float | None:
    if pnl is None or not entry or quantity <= 0:
        return None
    return float(pnl / (entry * quantity) * 100)


def order_out(order: Order) -> OrderOut:
    source = (order.signal_data or {}).get("source")
    strategy = source if isinstance(source, str) else None
    return OrderOut.model_validate(msgspec.structs.asdict(order) | {"strategy": strategy})


def position_out(ctx: DaemonContext | None, position: Position) -> PositionOut:
    """The position marked to the book's mid (`ctx` None: as stored, unmarked)."""
    price = mark(ctx, position.symbol) if ctx is not None else None
    live = position.closed_ms is None and position.quantity > 0
    live_pnl = pnl(position.side, position.quantity, position.entry_price, price) if live else None
    return PositionOut.model_validate(
        msgspec.structs.asdict(position)
        | {
            "mark_price": price if live else None,
            "unrealized_pnl": live_pnl if live_pnl is not None else position.unrealized_pnl,
            "unrealized_pnl_pct": pct(live_pnl, position.entry_price, position.quantity),
        }
    )


def fill_out(fill: Fill) -> FillOut:
    return FillOut.model_validate(fill, from_attributes=True)


def signal_out(signal: Signal) -> SignalOut:
    return SignalOut.model_validate(signal, from_attributes=True)
