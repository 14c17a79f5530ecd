"""Venue-level records the client returns where `schemas` has no record of its own.

Orders and positions come back from Bybit in Bybit's terms (statuses such as `Untriggered`, flat
positions with side `""`, orders without a client id); reconciliation diffs these reports against the
daemon's own `schemas.trading` records. Money is `Decimal`, time integer ms.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec

from schemas.enums import OrderStatus, OrderType, Side, TimeInForce


class BybitOrderStatus(StrEnum):
    """Bybit's `orderStatus` values (§4.8)."""

    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    UNTRIGGERED = "Untriggered"
    TRIGGERED = "Triggered"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    PARTIALLY_FILLED_CANCELED = "PartiallyFilledCanceled"
    REJECTED = "Rejected"
    DEACTIVATED = "Deactivated"

    @property
    def is_open(self) -> bool:
        """Whether `/v5/order/realtime` lists the order as open."""
        return self in _OPEN

    def to_order_status(self) -> OrderStatus:
        """The daemon's order state this venue state corresponds to."""
        return _TO_ORDER_STATUS[self]


_OPEN = frozenset(
    {
        BybitOrderStatus.NEW,
        BybitOrderStatus.PARTIALLY_FILLED,
        BybitOrderStatus.UNTRIGGERED,
        BybitOrderStatus.TRIGGERED,
    }
)
_TO_ORDER_STATUS = {
    BybitOrderStatus.NEW: OrderStatus.PLACED,
    BybitOrderStatus.UNTRIGGERED: OrderStatus.PLACED,
    BybitOrderStatus.TRIGGERED: OrderStatus.PLACED,
    BybitOrderStatus.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    BybitOrderStatus.FILLED: OrderStatus.FILLED,
    # Linear reports "partially filled then cancelled" as Cancelled with cumExecQty > 0 (§4.8).
    BybitOrderStatus.CANCELLED: OrderStatus.CANCELLED,
    BybitOrderStatus.PARTIALLY_FILLED_CANCELED: OrderStatus.CANCELLED,
    BybitOrderStatus.DEACTIVATED: OrderStatus.CANCELLED,
    BybitOrderStatus.REJECTED: OrderStatus.REJECTED,
}


class BybitOrderAck(msgspec.Struct, frozen=True, kw_only=True):
    """The reply to create/amend/cancel: the request was accepted, the fate comes on the stream."""

    order_id: str
    order_link_id: str


class BybitOrderReport(msgspec.Struct, frozen=True, kw_only=True):
    """An order as Bybit reports it (REST or the `order` topic)."""

    order_id: str
    order_link_id: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce | None
    status: BybitOrderStatus
    price: Decimal | None
    quantity: Decimal
    filled_quantity: Decimal
    leaves_quantity: Decimal
    avg_fill_price: Decimal | None
    cum_fee: Decimal
    reduce_only: bool
    reject_reason: str
    cancel_type: str
    created_ms: int
    updated_ms: int

    @property
    def order_status(self) -> OrderStatus:
        """The daemon's state for this order."""
        return self.status.to_order_status()


class BybitPositionReport(msgspec.Struct, frozen=True, kw_only=True):
    """One one-way-mode position; `side` is None and `size` 0 when flat."""

    symbol: str
    side: Side | None
    size: Decimal
    entry_price: Decimal | None
    leverage: Decimal | None
    mark_price: Decimal | None
    liq_price: Decimal | None
    unrealised_pnl: Decimal
    cum_realised_pnl: Decimal
    position_idx: int
    updated_ms: int


class BybitInstrumentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Trading rules of one linear contract (§3.2)."""

    symbol: str
    status: str
    contract_type: str
    base_coin: str
    quote_coin: str
    settle_coin: str
    price_scale: int
    tick_size: Decimal
    min_price: Decimal | None
    max_price: Decimal | None
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal | None
    max_market_order_qty: Decimal | None
    min_notional: Decimal | None
    min_leverage: Decimal
    max_leverage: Decimal
    leverage_step: Decimal
    funding_interval_min: int


class BybitTickerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Last, mark, index and best prices of one symbol (§3.5)."""

    symbol: str
    last_price: Decimal | None
    mark_price: Decimal | None
    index_price: Decimal | None
    bid_price: Decimal | None
    bid_size: Decimal | None
    ask_price: Decimal | None
    ask_size: Decimal | None
    funding_rate: Decimal | None
    next_funding_ms: int | None
    volume_24h: Decimal | None
    turnover_24h: Decimal | None
    open_interest: Decimal | None


class BybitCoinBalance(msgspec.Struct, frozen=True, kw_only=True):
    """One coin of the unified account."""

    coin: str
    equity: Decimal
    wallet_balance: Decimal
    unrealised_pnl: Decimal
    position_im: Decimal
    order_im: Decimal


class BybitWalletBalance(msgspec.Struct, frozen=True, kw_only=True):
    """The unified account's balance (§4.12): USD-valued totals plus each coin."""

    account_type: str
    total_equity: Decimal
    total_wallet_balance: Decimal
    total_available_balance: Decimal
    total_initial_margin: Decimal
    total_maintenance_margin: Decimal
    coins: dict[str, BybitCoinBalance]


class BybitFeeRates(msgspec.Struct, frozen=True, kw_only=True):
    """The account's fee rates for one symbol."""

    symbol: str
    taker: Decimal
    maker: Decimal
