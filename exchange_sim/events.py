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

# orderStatus values (§4.8). The engine emits New, PartiallyFilled, Filled and Cancelled. Rejected is here
# for the protocol layer: this engine refuses bad orders synchronously (a retCode) instead. Spot's
# PartiallyFilledCanceled does not exist on linear (Cancelled with cumExecQty > 0 instead), and
# Untriggered/Triggered/Deactivated belong to conditional orders, which this engine does not hold.
NEW = "New"
PARTIALLY_FILLED = "PartiallyFilled"
FILLED = "Filled"
CANCELLED = "Cancelled"
REJECTED = "Rejected"
OPEN_STATUSES = frozenset({NEW, PARTIALLY_FILLED})

# rejectReason and cancelType values used (docs "Enums Definitions").
EC_NO_ERROR = "EC_NoError"
EC_POST_ONLY_WILL_TAKE_LIQUIDITY = "EC_PostOnlyWillTakeLiquidity"
EC_NO_IMMEDIATE_QTY_TO_FILL = "EC_NoImmediateQtyToFill"
EC_CANCEL_FOR_NO_FULL_FILL = "EC_CancelForNoFullFill"
EC_REACH_MARKET_PRICE_LIMIT = "EC_ReachMarketPriceLimit"
CANCEL_UNKNOWN = "UNKNOWN"
CANCEL_BY_USER = "CancelByUser"
CANCEL_BY_REDUCE_ONLY = "CancelByReduceOnly"

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
        """Whether the order can still trade, be amended or be cancelled."""
        return self.order_status in OPEN_STATUSES

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
