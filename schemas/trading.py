"""Trading records: orders, fills, positions, signals, audit events.

Money (prices, quantities, fees, PnL) is `Decimal`; time is integer milliseconds UTC.
`id`, `version` and the `*_ms` bookkeeping fields are assigned by the store; a record built by a
caller before it is stored carries their defaults.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from schemas.enums import (
    AuditAction,
    ExecType,
    OrderStatus,
    OrderType,
    PositionStatus,
    Side,
    SignalAction,
    TimeInForce,
)

JsonObject = dict[str, Any]


def _require_positive(where: str, name: str, value: Decimal | None) -> None:
    if value is not None and not (value.is_finite() and value > 0):
        raise ValueError(f"{where}: {name} must be a positive finite decimal, got {value}")


class Order(msgspec.Struct, kw_only=True):
    """An order as the daemon tracks it. `client_order_id` is Bybit's orderLinkId."""

    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    status: OrderStatus = OrderStatus.PENDING
    exchange_order_id: str | None = None
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    position_id: int | None = None
    reason: str | None = None
    error_message: str | None = None
    signal_data: JsonObject | None = None
    trace_id: str | None = None
    intent_id: str | None = None  # the TradeIntent this order carries out (None: imported from the venue)
    attempt: int | None = None  # which attempt at the intent (the orderLinkId is derived from both)
    sent_ms: int | None = None  # when the order last went on the wire (the ambiguous-outcome rule)
    id: int | None = None
    version: int = 1
    created_ms: int = 0
    updated_ms: int = 0

    def __post_init__(self) -> None:
        where = f"Order {self.client_order_id!r}"
        if not self.client_order_id or len(self.client_order_id) > 36:
            raise ValueError(f"{where}: client_order_id must be 1-36 characters (Bybit orderLinkId)")
        _require_positive(where, "quantity", self.quantity)
        _require_positive(where, "price", self.price)
        if self.order_type is OrderType.LIMIT and self.price is None:
            raise ValueError(f"{where}: a Limit order needs a price")
        if self.filled_quantity < 0 or self.filled_quantity > self.quantity:
            raise ValueError(
                f"{where}: filled_quantity {self.filled_quantity} outside 0..quantity {self.quantity}"
            )

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity


class OrderEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One state transition of an order, as stored in `order_events`."""

    order_id: int
    from_status: OrderStatus | None
    to_status: OrderStatus
    reason: str | None
    trace_id: str | None
    ts: int
    details: JsonObject | None = None
    id: int | None = None


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution (Bybit execution-list entry). `exec_id` is unique per venue."""

    exec_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    ts: int
    exec_type: ExecType = ExecType.TRADE
    fee_currency: str = "USDT"
    is_maker: bool = False
    client_order_id: str | None = None
    exchange_order_id: str | None = None
    closed_pnl: Decimal | None = None  # the venue's gross PnL of the closed part (Bybit execPnl)
    order_id: int | None = None
    trace_id: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        where = f"Fill {self.exec_id!r}"
        if not self.exec_id:
            raise ValueError("Fill: exec_id is empty")
        if self.exec_type is ExecType.FUNDING:
            # Funding settlements carry the position size and the mark price, no trade.
            _require_positive(where, "price", self.price)
        else:
            _require_positive(where, "price", self.price)
            _require_positive(where, "quantity", self.quantity)


class Position(msgspec.Struct, kw_only=True):
    """A linear perpetual position in one-way mode."""

    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    status: PositionStatus = PositionStatus.OPENING
    leverage: Decimal = Decimal(1)
    exit_price: Decimal | None = None
    unrealized_pnl: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    entry_reason: str | None = None
    exit_reason: str | None = None
    signal_data: JsonObject | None = None
    trace_id: str | None = None
    opened_ms: int | None = None
    closed_ms: int | None = None
    id: int | None = None
    version: int = 1
    created_ms: int = 0
    updated_ms: int = 0

    def __post_init__(self) -> None:
        where = f"Position {self.symbol} {self.side}"
        if self.quantity < 0:
            raise ValueError(f"{where}: quantity must be >= 0, got {self.quantity}")
        if not (self.entry_price.is_finite() and self.entry_price >= 0):
            raise ValueError(f"{where}: entry_price must be >= 0, got {self.entry_price}")
        _require_positive(where, "leverage", self.leverage)


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A trading signal from a strategy, the model or their consensus."""

    symbol: str
    ts: int
    source: str
    action: SignalAction
    strength: float
    confidence: float | None = None
    price: Decimal | None = None
    model_version: str | None = None
    reason: str | None = None
    context: JsonObject | None = None
    trace_id: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(
                f"Signal {self.source} {self.symbol}: strength must be in [0, 1], got {self.strength}"
            )
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(
                f"Signal {self.source} {self.symbol}: confidence must be in [0, 1], got {self.confidence}"
            )


class TradeIntent(msgspec.Struct, frozen=True, kw_only=True):
    """One order the decisions ask execution to place: the narrow interface between the two.

    Exactly one of `quantity` (base units) and `notional` (USDT) is set; execution rounds either to the
    instrument's lot and tick before anything leaves the process. `intent_id` identifies the decision
    (a signal's id, an exit rule's firing): execution derives its orderLinkIds from it and the attempt
    number, so the same intent submitted twice is one order. `take_profit`/`stop_loss` are prices that
    execution places on the exchange (they protect the position when the daemon is down). `context` is
    what the decision saw (signal, market data, indicator values) for the audit trail.
    """

    intent_id: str
    symbol: str
    side: Side
    order_type: OrderType
    ts: int
    quantity: Decimal | None = None
    notional: Decimal | None = None
    price: Decimal | None = None  # the limit price; None for a market order
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    signal_id: int | None = None
    source: str = "manual"  # strategy, consensus, model, exit rule, operator
    reason: str | None = None
    context: JsonObject | None = None
    trace_id: str | None = None

    def __post_init__(self) -> None:
        where = f"TradeIntent {self.intent_id!r} {self.symbol} {self.side}"
        if not self.intent_id:
            raise ValueError("TradeIntent: intent_id is empty")
        if (self.quantity is None) == (self.notional is None):
            raise ValueError(f"{where}: set exactly one of quantity and notional")
        _require_positive(where, "quantity", self.quantity)
        _require_positive(where, "notional", self.notional)
        _require_positive(where, "price", self.price)
        _require_positive(where, "take_profit", self.take_profit)
        _require_positive(where, "stop_loss", self.stop_loss)
        if self.order_type is OrderType.LIMIT and self.price is None:
            raise ValueError(f"{where}: a Limit order needs a price")
        if self.order_type is OrderType.MARKET and self.time_in_force is TimeInForce.POST_ONLY:
            raise ValueError(f"{where}: a Market order cannot be PostOnly")
        if self.reduce_only and (self.take_profit is not None or self.stop_loss is not None):
            raise ValueError(f"{where}: a reduce-only exit carries no take-profit or stop-loss of its own")
        if self.price is not None:
            # A take-profit beyond the entry in the direction of the trade, a stop-loss on the other side.
            above, below = (
                (self.take_profit, self.stop_loss)
                if self.side is Side.BUY
                else (self.stop_loss, self.take_profit)
            )
            if above is not None and above <= self.price:
                raise ValueError(
                    f"{where}: {'take_profit' if self.side is Side.BUY else 'stop_loss'} {above} must be above the price {self.price}"
                )
            if below is not None and below >= self.price:
                raise ValueError(
                    f"{where}: {'stop_loss' if self.side is Side.BUY else 'take_profit'} {below} must be below the price {self.price}"
                )


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the append-only audit log: who, what, when, why, with which context.

    `prev_hash` and `row_hash` chain each row to the one before it (see infra.db.audit_chain).
    """

    action: AuditAction
    entity_type: str
    entity_id: str
    actor: str = "system"
    old_value: JsonObject | None = None
    new_value: JsonObject | None = None
    reason: str | None = None
    success: bool = True
    error_message: str | None = None
    context: JsonObject | None = None
    trace_id: str | None = None
    correlation_id: str | None = None
    ts: int = 0
    id: int | None = None
    prev_hash: str | None = None
    row_hash: str | None = None
