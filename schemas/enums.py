"""Enumerations shared by every package, with the values stored in Postgres and sent on the wire."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order or taker side, spelled as Bybit spells it."""

    BUY = "Buy"
    SELL = "Sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "Market"
    LIMIT = "Limit"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "PostOnly"


class OrderStatus(StrEnum):
    """The seven states of the order state machine (original spec, "State Machines")."""

    PENDING = "Pending"  # created locally, not yet acknowledged by the exchange
    PLACED = "Placed"  # acknowledged, resting or in flight
    PARTIALLY_FILLED = "Partially_Filled"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"  # refused by the exchange or by risk
    FAILED = "Failed"  # could not be sent or its outcome is unknown after recovery

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_ORDER_STATUSES


_TERMINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.FAILED}
)


class PositionStatus(StrEnum):
    """The four states of the position state machine."""

    OPENING = "Opening"
    OPEN = "Open"
    CLOSING = "Closing"
    CLOSED = "Closed"


class ExecType(StrEnum):
    """Bybit execution types that reach the fills table."""

    TRADE = "Trade"
    FUNDING = "Funding"
    ADL_TRADE = "AdlTrade"
    BUST_TRADE = "BustTrade"


class SignalAction(StrEnum):
    BUY = "Buy"
    SELL = "Sell"
    HOLD = "Hold"


class EntryStyle(StrEnum):
    """How a strategy enters: crossing the spread (taker fee) or PostOnly at the touch (maker fee)."""

    TAKER = "taker"
    MAKER = "maker"


class AuditAction(StrEnum):
    """What an audit row records. Every operation that touches capital has one."""

    ORDER_CREATE = "order_create"
    ORDER_STATUS = "order_status"
    ORDER_CANCEL = "order_cancel"
    ORDER_AMEND = "order_amend"
    FILL = "fill"
    POSITION_OPEN = "position_open"
    POSITION_UPDATE = "position_update"
    POSITION_CLOSE = "position_close"
    RISK_REJECT = "risk_reject"
    RECONCILIATION = "reconciliation"
    MODEL_PROMOTE = "model_promote"
    MODEL_LOAD = "model_load"
    CONFIG_CHANGE = "config_change"
    BOT_START = "bot_start"
    BOT_STOP = "bot_stop"
    LOGIN = "login"
    EMERGENCY_STOP = "emergency_stop"
    PIPELINE_RUN_FAILED = "pipeline_run_failed"  # a Dagster run failed (migration 0004)
    USER_CHANGE = "user_change"  # an API user created, deactivated, or its password changed (migration 0006)


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    PRODUCTION = "production"
    ARCHIVED = "archived"
    REJECTED = "rejected"
