"""Response and request models of the bot, data, trading and market routes (docs/api.md).

Money is `Decimal`, sent as a string so that no digit is lost in JSON; time is integer milliseconds UTC.
The models mirror the records of `schemas.trading` field for field where they expose one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.enums import OrderStatus, OrderType, PositionStatus, Side, SignalAction, TimeInForce

BotState = Literal["starting", "recording", "running", "paused", "halted"]


class Model(BaseModel):
    model_config = ConfigDict(from_attributes=True, ser_json_inf_nan="null")


# ---- bot ----------------------------------------------------------------------------------------------


class KillSwitchState(Model):
    engaged: bool
    reason: str | None = None


class BotStatus(Model):
    state: BotState
    ready: bool
    trading_enabled: bool
    venue: str
    rest_url: str
    symbols: list[str]
    started_ms: int
    uptime_s: float
    paused_reason: str | None = None
    kill_switch: KillSwitchState
    reconciled: bool | None = None
    holds: dict[str, str] = {}
    model_version: str | None = None
    model_fallback: str | None = None
    rows_recorded: int
    recorder_state: str


class ReasonBody(Model):
    reason: str = Field("operator", min_length=1, max_length=200, description="Why, for the audit trail.")


class BotAction(Model):
    changed: bool
    status: BotStatus


class KillSwitchBody(Model):
    reason: str = Field(min_length=1, max_length=200)
    flatten: bool = Field(False, description="Also close every position at market.")


class KillSwitchResult(Model):
    engaged: bool
    reason: str | None
    cancelled: list[str] = []
    flattened: list[dict[str, Any]] = []
    errors: list[str] = []


# ---- data ---------------------------------------------------------------------------------------------


class Pair(Model):
    symbol: str
    last_price: float | None
    mid: float | None
    spread_bps: float | None
    change_24h_pct: float | None
    volume_24h: float | None
    turnover_24h: float | None
    book_valid: bool
    rows: int


class OrderBook(Model):
    symbol: str
    valid: bool = Field(description="Two-sided and in sequence; False while it resynchronises.")
    ts: int | None
    update_id: int | None
    bids: list[list[float]] = Field(description="[price, size] from the best bid down")
    asks: list[list[float]] = Field(description="[price, size] from the best ask up")
    mid: float | None
    spread_bps: float | None
    depth: list[int] = Field(description="Levels held on the bid and the ask side.")


class SymbolMetrics(Model):
    """The screener's columns for one symbol (trading_daemon.analysis.records.MarketAnalysis)."""

    symbol: str
    ts: int
    valid: bool
    last_price: float
    mid: float
    micro_price: float
    best_bid: float
    best_ask: float
    spread: float
    spread_bps: float
    imbalance_1: float
    imbalance_5: float
    imbalance_10: float
    imbalance_20: float
    imbalance_total: float
    order_flow_imbalance: float
    buy_sell_ratio: float
    depth_bid_5: float
    depth_ask_5: float
    liquidity_bid_5: float
    liquidity_ask_5: float
    support: float
    resistance: float
    volume_1m: float
    turnover_1m: float
    trades_1m: int
    trade_rate: float
    volatility_1s_bps: float
    volatility_1m_bps: float
    change_24h_pct: float | None
    high_24h: float | None
    low_24h: float | None
    volume_24h: float
    turnover_24h: float
    volatility_24h_pct: float | None
    window_24h_s: int
    trades_24h: int


# ---- trading ------------------------------------------------------------------------------------------


class SignalOut(Model):
    id: int | None
    symbol: str
    ts: int
    source: str
    action: SignalAction
    strength: float
    confidence: float | None
    price: Decimal | None
    model_version: str | None
    reason: str | None
    context: dict[str, Any] | None


class Balance(Model):
    currency: str = "USDT"
    equity: Decimal | None
    available: Decimal | None
    wallet_balance: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl_today: Decimal
    updated_ms: int | None


class PositionOut(Model):
    id: int | None
    symbol: str
    side: Side
    status: PositionStatus
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal | None
    mark_price: float | None
    unrealized_pnl: Decimal
    unrealized_pnl_pct: float | None
    realized_pnl: Decimal
    fees_paid: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    entry_reason: str | None
    exit_reason: str | None
    opened_ms: int | None
    closed_ms: int | None
    updated_ms: int


class OrderOut(Model):
    id: int | None
    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    quantity: Decimal
    price: Decimal | None
    filled_quantity: Decimal
    avg_fill_price: Decimal | None
    reduce_only: bool
    stop_loss: Decimal | None
    take_profit: Decimal | None
    position_id: int | None
    strategy: str | None = Field(description="The source of the intent the order carries out.")
    reason: str | None
    error_message: str | None
    created_ms: int
    updated_ms: int


class OrderStats(Model):
    total: int
    active: int
    filled: int
    cancelled: int
    rejected: int
    failed: int


class OrdersPage(Model):
    items: list[OrderOut]
    total: int
    page: int
    page_size: int
    stats: OrderStats


class FillOut(Model):
    exec_id: str
    ts: int
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    is_maker: bool
    closed_pnl: Decimal | None


class OrderEventOut(Model):
    ts: int
    from_status: OrderStatus | None
    to_status: OrderStatus
    reason: str | None


class OrderDetail(Model):
    order: OrderOut
    fills: list[FillOut]
    events: list[OrderEventOut]
    position: PositionOut | None
    mark_price: float | None
    live_pnl: Decimal | None = Field(
        description="Unrealised PnL of the filled part at the mark, before fees."
    )
    live_pnl_pct: float | None


class CloseResult(Model):
    client_order_id: str | None
    accepted: bool
    status: str | None
    message: str


class Candle5(Model):
    ts: int = Field(description="Start of the candle, ms UTC.")
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float


class HealthOut(Model):
    status: Literal["ok"]
    uptime_s: float


class ReadyCheck(Model):
    ok: bool
    detail: str


class ReadyOut(Model):
    ready: bool
    checks: dict[str, ReadyCheck]
