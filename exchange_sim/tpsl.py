"""TP/SL request fields and their rules, shared by order create/amend and ``/v5/position/trading-stop``.

What Bybit checks before a take-profit or stop-loss is accepted (docs/exchange_protocol.md §4.15, §4.16):
trigger price types, Market/Limit TP/SL orders (Limit only in Partial mode), and the side of the base
price (a long's TP above it, its SL below; a short's the other way), refused with Bybit's own 10001
text ``StopLoss:… set for Buy position should lower than base_price:…??LastPrice``. Also the
``orderFilter`` classes of ``/v5/order/realtime``, ``history`` and ``cancel-all``. The orders themselves
live in :mod:`exchange_sim.conditional`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from exchange_sim.book import BUY
from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import (
    ACTIVE_STATUSES,
    PARTIAL_TAKE_PROFIT,
    STOP_LOSS,
    TAKE_PROFIT,
    TPSL_KINDS,
    TRIGGER_BY,
    Order,
)
from exchange_sim.instruments import Instrument

TPSL_MODES = ("Full", "Partial")
TPSL_ORDER_TYPES = ("Market", "Limit")
ORDER_FILTERS = ("Order", "StopOrder", "tpslOrder", "OcoOrder", "BidirectionalTpslOrder")


def params_error(text: str) -> ExchangeError:
    """A 10001 error with Bybit's ``params error:`` prefix."""
    return ExchangeError(RetCode.PARAMS_ERROR, f"params error: {text}")


@dataclass(frozen=True, slots=True)
class TpslSpec:
    """TP/SL parameters as given on a create, amend or trading-stop request (``None`` = not given).

    A price of ``0`` means "remove" (Full mode only).
    """

    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tp_trigger_by: str | None = None
    sl_trigger_by: str | None = None
    tpsl_mode: str | None = None
    tp_order_type: str | None = None
    sl_order_type: str | None = None
    tp_limit_price: Decimal | None = None
    sl_limit_price: Decimal | None = None

    @property
    def given(self) -> bool:
        """Whether any TP/SL price was given."""
        return self.take_profit is not None or self.stop_loss is not None


@dataclass(frozen=True, slots=True)
class TradingStopRequest:
    """A ``POST /v5/position/trading-stop`` request after wire decoding."""

    symbol: str
    tpsl: TpslSpec
    position_idx: int = 0
    tp_size: Decimal | None = None
    sl_size: Decimal | None = None


def check_trigger_by(name: str, value: str | None) -> str:
    if value is None:
        return "LastPrice"
    if value not in TRIGGER_BY:
        raise params_error(f"{name} invalid: {value!r} (one of {', '.join(TRIGGER_BY)})")
    return value


def check_attached(spec: Instrument, side: str, tpsl: TpslSpec, base: Decimal | None) -> None:
    """Validate TP/SL attached to a new ``side`` order expected to fill around ``base``; 10001 if wrong."""
    if not tpsl.given:
        for name, value in (("tpLimitPrice", tpsl.tp_limit_price), ("slLimitPrice", tpsl.sl_limit_price)):
            if value is not None:
                raise params_error(f"{name} needs takeProfit/stopLoss")
        return
    mode = tpsl.tpsl_mode or "Full"
    if mode not in TPSL_MODES:
        raise params_error(f"tpslMode invalid: {mode!r} (Full or Partial)")
    partial = mode == "Partial"
    for kind, price, by_name, by, type_name, order_type, limit_name, limit in (
        (TAKE_PROFIT, tpsl.take_profit, "tpTriggerBy", tpsl.tp_trigger_by, "tpOrderType",
         tpsl.tp_order_type, "tpLimitPrice", tpsl.tp_limit_price),
        (STOP_LOSS, tpsl.stop_loss, "slTriggerBy", tpsl.sl_trigger_by, "slOrderType",
         tpsl.sl_order_type, "slLimitPrice", tpsl.sl_limit_price),
    ):  # fmt: skip
        check_trigger_by(by_name, by)
        check_order_type(spec, partial, type_name, order_type, limit_name, limit)
        if price is None or not price:
            continue
        spec.validate_price(price, "takeProfit" if kind == TAKE_PROFIT else "stopLoss")
        label = ("Partial" if partial else "") + kind
        check_side_of_base(label, side, kind, price, base, by or "LastPrice")


def check_order_type(
    spec: Instrument, partial: bool, name: str, order_type: str | None, limit_name: str, limit: Decimal | None
) -> None:
    if order_type is not None and order_type not in TPSL_ORDER_TYPES:
        raise params_error(f"{name} invalid: {order_type!r} (Market or Limit)")
    if order_type == "Limit":
        if not partial:
            raise params_error(f"{name} Limit needs tpslMode Partial (Full mode TP/SL are Market orders)")
        if limit is None:
            raise params_error(f"{limit_name} is required when {name} is Limit")
        spec.validate_price(limit, limit_name)
    elif limit is not None:
        raise params_error(f"{limit_name} is only valid with {name} Limit")


def check_side_of_base(
    label: str, position_side: str, kind: str, price: Decimal, base: Decimal | None, trigger_by: str
) -> None:
    """A TP above (long) or below (short) the base price, an SL the other way: Bybit's 10001 text."""
    if base is None:
        return
    above = (kind in (TAKE_PROFIT, PARTIAL_TAKE_PROFIT)) == (position_side == BUY)
    if (above and price <= base) or (not above and price >= base):
        where = "higher" if above else "lower"
        raise ExchangeError(
            RetCode.PARAMS_ERROR,
            f"{label}:{price} set for {position_side} position should {where} than "
            f"base_price:{base}??{trigger_by}",
        )


def matches_filter(order: Order, order_filter: str | None, stop_order_type: str | None = None) -> bool:
    """Whether ``order`` belongs to ``orderFilter`` (docs/exchange_protocol.md §4.5, §10 item 13).

    ``Order``: plain orders, and conditional orders once fired and working in the book (they are active
    orders then); ``StopOrder``: conditional and TP/SL orders otherwise; ``tpslOrder``: TP/SL orders only.
    ``stopOrderType`` narrows further (cancel-all's ``stopOrderType=Stop``).
    """
    if stop_order_type is not None and order.stop_order_type != stop_order_type:
        return False
    if order_filter is None:
        return True
    working = order.order_status in ACTIVE_STATUSES
    if order_filter == "Order":
        return not order.is_conditional or working
    if order_filter == "StopOrder":
        return order.is_conditional and not working
    if order_filter == "tpslOrder":
        return order.stop_order_type in TPSL_KINDS and not working
    return False  # OcoOrder, BidirectionalTpslOrder: spot only


def attach(order: Order, tpsl: TpslSpec, *, amend: bool = False) -> None:
    """Copy TP/SL request fields onto ``order``; on amend only the given ones, and a price of 0 removes a side."""
    if tpsl.take_profit is not None:
        order.take_profit = tpsl.take_profit or None
        if tpsl.tp_trigger_by is not None or not amend:
            order.tp_trigger_by = tpsl.tp_trigger_by or "LastPrice"
    if tpsl.stop_loss is not None:
        order.stop_loss = tpsl.stop_loss or None
        if tpsl.sl_trigger_by is not None or not amend:
            order.sl_trigger_by = tpsl.sl_trigger_by or "LastPrice"
    if not amend and tpsl.given:
        order.tpsl_mode = tpsl.tpsl_mode or "Full"
        order.tp_order_type = tpsl.tp_order_type or ""
        order.sl_order_type = tpsl.sl_order_type or ""
    if tpsl.tp_limit_price is not None:
        order.tp_limit_price = tpsl.tp_limit_price
    if tpsl.sl_limit_price is not None:
        order.sl_limit_price = tpsl.sl_limit_price
    if order.has_attached_tpsl:
        order.tpsl_mode = order.tpsl_mode or tpsl.tpsl_mode or "Full"
        if order.take_profit:
            order.tp_order_type = order.tp_order_type or "Market"
        else:
            order.tp_order_type, order.tp_trigger_by, order.tp_limit_price = "", "UNKNOWN", None
        if order.stop_loss:
            order.sl_order_type = order.sl_order_type or "Market"
        else:
            order.sl_order_type, order.sl_trigger_by, order.sl_limit_price = "", "UNKNOWN", None
    else:
        order.tpsl_mode = order.tp_order_type = order.sl_order_type = ""
        order.tp_trigger_by = order.sl_trigger_by = "UNKNOWN"
        order.tp_limit_price = order.sl_limit_price = None
