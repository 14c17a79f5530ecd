"""Records the matching engine and the accounts emit: orders, executions, public trades, and their ids.

Field names follow Bybit's order and execution objects (docs/exchange_protocol.md §4.7, §4.9, §6.4, §6.5) in
snake_case, so the protocol layer maps them one to one; values are ``Decimal`` and integer ms, and the
wire strings are made there. Enum-like values are the exact Bybit strings.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal

# orderStatus values (§4.8). The engine emits New, PartiallyFilled, Filled and Cancelled for every order;
# conditional and TP/SL orders (exchange_sim/conditional.py) start Untriggered, pass through Triggered
# when they fire, and end Deactivated when cancelled before firing. Rejected marks a conditional order
# that fired but could not be placed (margin, price band): a plain order is refused synchronously with a
# retCode instead. Spot's PartiallyFilledCanceled does not exist on linear (Cancelled with cumExecQty > 0).
NEW = "New"
PARTIALLY_FILLED = "PartiallyFilled"
UNTRIGGERED = "Untriggered"
TRIGGERED = "Triggered"
FILLED = "Filled"
CANCELLED = "Cancelled"
REJECTED = "Rejected"
DEACTIVATED = "Deactivated"
OPEN_STATUSES = frozenset({NEW, PARTIALLY_FILLED, UNTRIGGERED})
ACTIVE_STATUSES = frozenset({NEW, PARTIALLY_FILLED})  # in the book: can trade

# rejectReason and cancelType values used (docs "Enums Definitions").
EC_NO_ERROR = "EC_NoError"
EC_POST_ONLY_WILL_TAKE_LIQUIDITY = "EC_PostOnlyWillTakeLiquidity"
EC_NO_IMMEDIATE_QTY_TO_FILL = "EC_NoImmediateQtyToFill"
EC_CANCEL_FOR_NO_FULL_FILL = "EC_CancelForNoFullFill"
EC_REACH_MARKET_PRICE_LIMIT = "EC_ReachMarketPriceLimit"
EC_OTHERS = "EC_Others"
CANCEL_UNKNOWN = "UNKNOWN"
CANCEL_BY_USER = "CancelByUser"
CANCEL_BY_REDUCE_ONLY = "CancelByReduceOnly"
CANCEL_BY_TPSL_CLEAR = "CancelByTpSlTsClear"  # a TP/SL order cancelled because its position closed
CANCEL_BY_OCO_TP_BY_SL = "CancelByOCOTpCanceledBySlTriggered"
CANCEL_BY_OCO_SL_BY_TP = "CancelByOCOSlCanceledByTpTriggered"

# stopOrderType values (docs "Enums Definitions"); plain orders say UNKNOWN.
STOP_NONE = "UNKNOWN"
STOP_ORDER = "Stop"  # a conditional order placed with triggerPrice
TAKE_PROFIT = "TakeProfit"  # the position's full TP (trading-stop tpslMode Full, or attached Full)
STOP_LOSS = "StopLoss"
PARTIAL_TAKE_PROFIT = "PartialTakeProfit"
PARTIAL_STOP_LOSS = "PartialStopLoss"
TPSL_KINDS = frozenset({TAKE_PROFIT, STOP_LOSS, PARTIAL_TAKE_PROFIT, PARTIAL_STOP_LOSS})
# createType of each kind (the order object and its executions).
CREATE_BY_USER = "CreateByUser"
CREATE_TYPES = {
    STOP_NONE: CREATE_BY_USER,
    STOP_ORDER: "CreateByStopOrder",
    TAKE_PROFIT: "CreateByTakeProfit",
    STOP_LOSS: "CreateByStopLoss",
    PARTIAL_TAKE_PROFIT: "CreateByPartialTakeProfit",
    PARTIAL_STOP_LOSS: "CreateByPartialStopLoss",
}
TRIGGER_BY = ("LastPrice", "MarkPrice", "IndexPrice")
RISE, FALL = 1, 2  # triggerDirection

EXEC_TRADE = "Trade"
EXEC_FUNDING = "Funding"

ZERO = Decimal(0)


@dataclass(slots=True)
class Order:
    """The engine's live record of one order; emitted as a :meth:`snapshot` at every state change.

    Invariant: ``qty == cum_exec_qty + leaves_qty + cancelled_qty``. ``cancelled_qty`` is not a Bybit
    field: it is the quantity that left the order by cancellation (user, IOC/FOK/market remainder,
    PostOnly, reduce-only), kept so that quantity conservation can be checked. On a terminal status
    ``leaves_qty`` is 0, as Bybit reports it.
    """

    order_id: str
    order_link_id: str
    owner: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    price: Decimal  # Market orders: the protection price, as Bybit shows it
    qty: Decimal
    reduce_only: bool
    created_time: int
    updated_time: int
    leaves_qty: Decimal = ZERO
    cum_exec_qty: Decimal = ZERO
    cum_exec_value: Decimal = ZERO
    cum_exec_fee: Decimal = ZERO
    cancelled_qty: Decimal = ZERO
    closed_pnl: Decimal = ZERO
    order_status: str = NEW
    cancel_type: str = CANCEL_UNKNOWN
    reject_reason: str = EC_NO_ERROR
    position_idx: int = 0
    create_type: str = "CreateByUser"
    last_price_on_created: Decimal | None = None
    slippage_tolerance_type: str = "UNKNOWN"
    slippage_tolerance: Decimal | None = None
    close_on_trigger: bool = False
    # Conditional orders (exchange_sim/conditional.py): kind, trigger and, for TP/SL kinds, the link to
    # what they protect. A Full TP/SL order has qty 0 ("the whole position") until it fires.
    stop_order_type: str = STOP_NONE
    trigger_price: Decimal | None = None
    trigger_direction: int = 0
    trigger_by: str = "UNKNOWN"
    parent_order_link_id: str = ""
    # TP/SL attached to this order (takeProfit/stopLoss on create or amend), applied when it fills.
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tp_trigger_by: str = "UNKNOWN"
    sl_trigger_by: str = "UNKNOWN"
    tpsl_mode: str = ""
    tp_order_type: str = ""
    sl_order_type: str = ""
    tp_limit_price: Decimal | None = None
    sl_limit_price: Decimal | None = None

    @property
    def avg_price(self) -> Decimal | None:
        """Average fill price, ``None`` while nothing has filled (Bybit sends ``""`` or ``"0"``)."""
        return self.cum_exec_value / self.cum_exec_qty if self.cum_exec_qty else None

    @property
    def leaves_value(self) -> Decimal:
        """``leavesQty × price``, 0 once terminal."""
        return self.leaves_qty * self.price

    @property
    def is_open(self) -> bool:
        """Whether the order can still trade (or fire), be amended or be cancelled."""
        return self.order_status in OPEN_STATUSES

    @property
    def is_conditional(self) -> bool:
        """A conditional or TP/SL order (any ``stopOrderType``), whatever its status."""
        return self.stop_order_type != STOP_NONE

    @property
    def has_attached_tpsl(self) -> bool:
        """Whether a fill of this order sets a TP/SL (``takeProfit``/``stopLoss`` given on create or amend)."""
        return self.take_profit is not None or self.stop_loss is not None

    def snapshot(self) -> Order:
        """An independent copy for an event: later changes to the live order do not alter it."""
        return replace(self)


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution record: a fill of one order (``execType`` Trade) or a funding settlement."""

    exec_id: str
    exec_type: str
    owner: str
    symbol: str
    side: str
    order_id: str
    order_link_id: str
    order_type: str
    order_price: Decimal
    order_qty: Decimal
    leaves_qty: Decimal
    exec_price: Decimal
    exec_qty: Decimal
    exec_value: Decimal
    exec_fee: Decimal  # positive = paid by the account; negative = received (rebate, funding income)
    fee_rate: Decimal
    is_maker: bool
    exec_time: int
    seq: int
    mark_price: Decimal | None = None
    closed_size: Decimal = ZERO
    exec_pnl: Decimal = ZERO  # gross of fees (docs/exchange_protocol.md §10 item 10)
    create_type: str = "CreateByUser"
    stop_order_type: str = "UNKNOWN"
    fee_currency: str = "USDT"


@dataclass(frozen=True, slots=True)
class PublicTrade:
    """One public trade print (``publicTrade`` topic, ``recent-trade``): one per maker order matched."""

    trade_id: str
    symbol: str
    price: Decimal
    qty: Decimal
    taker_side: str
    time: int
    tick_direction: str
    seq: int


@dataclass
class IdFactory:
    """Deterministic UUID-shaped ids (Bybit's linear orderId and execId format) from a seed.

    Deterministic so that a seed plus the command log replays a run bit-exactly (docs/exchange_sim_market.md §14).
    """

    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __call__(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
