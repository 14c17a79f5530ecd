"""Venue-level records the client returns where `schemas` has no record of its own.

Orders and positions come back from Bybit in Bybit's terms (statuses such as `Untriggered`, flat
positions with side `""`, orders without a client id); reconciliation diffs these reports against the
daemon's own `schemas.trading` records. Money is `Decimal`, time integer ms.
"""

from __future__ import annotations

from decimal import Decimal
from enum import IntEnum, StrEnum

import msgspec

from schemas.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from schemas.trading import Fill


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


class BybitTriggerBy(StrEnum):
    """The price a trigger compares with (`triggerBy`, `tpTriggerBy`, `slTriggerBy`)."""

    LAST_PRICE = "LastPrice"
    MARK_PRICE = "MarkPrice"
    INDEX_PRICE = "IndexPrice"


class BybitTriggerDirection(IntEnum):
    """`triggerDirection` of a conditional order: fire when the price rises to, or falls to, the trigger."""

    RISE = 1
    FALL = 2


class BybitTpslMode(StrEnum):
    """`tpslMode`: TP/SL for the whole position (market orders), or for a given size (market or limit)."""

    FULL = "Full"
    PARTIAL = "Partial"


class BybitStopOrderType(StrEnum):
    """`stopOrderType` of a conditional order (plain orders have none: `""`/`UNKNOWN` parse to None)."""

    STOP = "Stop"
    TAKE_PROFIT = "TakeProfit"
    STOP_LOSS = "StopLoss"
    PARTIAL_TAKE_PROFIT = "PartialTakeProfit"
    PARTIAL_STOP_LOSS = "PartialStopLoss"
    TRAILING_STOP = "TrailingStop"
    TPSL_ORDER = "tpslOrder"
    OCO_ORDER = "OcoOrder"
    MM_RATE_CLOSE = "MmRateClose"
    BIDIRECTIONAL_TPSL_ORDER = "BidirectionalTpslOrder"

    @property
    def is_tpsl(self) -> bool:
        """A take-profit or stop-loss of a position (Full or Partial), not a plain conditional order."""
        return self in _TPSL_KINDS


_TPSL_KINDS = frozenset(
    {
        BybitStopOrderType.TAKE_PROFIT,
        BybitStopOrderType.STOP_LOSS,
        BybitStopOrderType.PARTIAL_TAKE_PROFIT,
        BybitStopOrderType.PARTIAL_STOP_LOSS,
        BybitStopOrderType.TRAILING_STOP,
    }
)


class BybitOrderFilter(StrEnum):
    """`orderFilter` of `/v5/order/realtime`, `/v5/order/history` and `/v5/order/cancel-all` (§4.5).

    `ORDER`: active orders; `STOP_ORDER`: conditional and TP/SL orders not yet working in the book;
    `TPSL_ORDER`: the TP/SL orders only.
    """

    ORDER = "Order"
    STOP_ORDER = "StopOrder"
    TPSL_ORDER = "tpslOrder"


class BybitExecType(StrEnum):
    """`execType` of an execution (§4.9): only `Trade` is a fill of one of the account's orders."""

    TRADE = "Trade"
    ADL_TRADE = "AdlTrade"
    FUNDING = "Funding"
    BUST_TRADE = "BustTrade"
    DELIVERY = "Delivery"
    SETTLE = "Settle"
    BLOCK_TRADE = "BlockTrade"
    MOVE_POSITION = "MovePosition"
    FUTURE_SPREAD = "FutureSpread"
    UNKNOWN = "UNKNOWN"


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
    close_on_trigger: bool = False
    create_type: str = ""
    position_idx: int = 0
    cum_exec_value: Decimal = Decimal(0)
    # Conditional and TP/SL orders (§4.15–4.17): None/0 on plain orders.
    stop_order_type: BybitStopOrderType | None = None
    trigger_price: Decimal | None = None
    trigger_direction: BybitTriggerDirection | None = None
    trigger_by: BybitTriggerBy | None = None
    parent_order_link_id: str = ""
    # TP/SL attached to the order (set on the position when it fills).
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tp_trigger_by: BybitTriggerBy | None = None
    sl_trigger_by: BybitTriggerBy | None = None
    tpsl_mode: BybitTpslMode | None = None
    tp_limit_price: Decimal | None = None
    sl_limit_price: Decimal | None = None

    @property
    def order_status(self) -> OrderStatus:
        """The daemon's state for this order."""
        return self.status.to_order_status()

    @property
    def is_conditional(self) -> bool:
        """A conditional or TP/SL order (it has a `stopOrderType`), whatever its status."""
        return self.stop_order_type is not None

    @property
    def is_untriggered(self) -> bool:
        """Waiting for its trigger: not in the book, holds no margin yet."""
        return self.status is BybitOrderStatus.UNTRIGGERED


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
    # The position's Full-mode TP/SL (None when unset; Bybit sends "0"/"0.00").
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    trailing_stop: Decimal | None = None
    position_value: Decimal = Decimal(0)
    cur_realised_pnl: Decimal = Decimal(0)
    seq: int = 0

    @property
    def is_flat(self) -> bool:
        """Size 0: the venue's answer that there is no position (never inferred from a failed query)."""
        return not self.size


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


class BybitExecutionReport(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of `/v5/execution/list` or the `execution` topic, of any `execType` (§4.9, §6.5).

    `exec_type` says what it is: `Trade` fills an order of the account; `Funding` is a funding payment
    (`fee` > 0 paid, < 0 received; no order); `AdlTrade`, `BustTrade`, `Delivery`, `Settle` move the
    position without an order of the account. `to_fill` gives the `schemas.trading.Fill`.
    """

    exec_id: str
    exec_type: BybitExecType
    symbol: str
    side: Side | None
    order_id: str
    order_link_id: str
    order_type: OrderType | None
    stop_order_type: BybitStopOrderType | None
    create_type: str
    price: Decimal
    quantity: Decimal
    value: Decimal
    fee: Decimal
    fee_rate: Decimal | None
    fee_currency: str
    is_maker: bool
    ts: int
    leaves_quantity: Decimal | None
    closed_size: Decimal
    exec_pnl: Decimal | None
    mark_price: Decimal | None
    seq: int

    @property
    def is_trade(self) -> bool:
        """A fill of one of the account's orders (not funding, ADL, liquidation or settlement)."""
        return self.exec_type is BybitExecType.TRADE

    def to_fill(self) -> Fill:
        """As a `schemas.trading.Fill`; raises ValueError for exec types the fills table does not hold."""
        try:
            exec_type = ExecType(self.exec_type.value)
        except ValueError:
            raise ValueError(f"execution {self.exec_id}: execType {self.exec_type} is not a fill") from None
        if self.side is None:
            raise ValueError(f"execution {self.exec_id}: no side")
        return Fill(
            exec_id=self.exec_id,
            symbol=self.symbol,
            side=self.side,
            price=self.price,
            quantity=self.quantity,
            fee=self.fee,
            ts=self.ts,
            exec_type=exec_type,
            fee_currency=self.fee_currency or "USDT",
            is_maker=self.is_maker,
            client_order_id=self.order_link_id or None,
            exchange_order_id=self.order_id or None,
            closed_pnl=self.exec_pnl,
        )


class BybitExecutionPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of `/v5/execution/list`: executions newest first, as sent, and the cursor of the next page
    (`""` when this was the last)."""

    executions: list[BybitExecutionReport]
    next_cursor: str
