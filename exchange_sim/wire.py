"""The Bybit v5 wire format both ways: request decoding and numbers in, domain records → JSON objects out.

**In.** Every request text goes through :func:`decode_json` (REST bodies, WebSocket frames) and every number
a client sends through :func:`decimal_text`/:func:`integer_text`: one decoder and one number grammar, so a
new endpoint cannot be more lenient than the others. JSON is decoded strictly (UTF-8 bytes, no ``NaN``/
``Infinity`` literals, no float overflowing to infinity, nesting at most :data:`MAX_JSON_DEPTH` deep, checked
before the recursive decoder runs). Numbers are accepted in ASCII form only: ``-?digits[.digits]`` with
at most 18 digits each side; no Unicode digits (``"１２"``), no surrounding whitespace, no ``_`` separators,
no exponent, no ``NaN``/``Infinity`` — the forms Python's ``Decimal()`` and ``int()`` would also accept
but Bybit does not. JSON integers count as numbers, JSON fractions (``0.5``) do not.

**Out.** Decimal values become strings: prices padded to ``priceScale`` and quantities to the ``qtyStep``
decimals where Bybit pads them, computed money values (fees, PnL, balances) without trailing zeros.
Timestamps in result objects are ms strings; integers and booleans stay JSON integers and booleans.
The server modules and the venue's private pushes share these builders so REST and WebSocket agree.
(docs/exchange_protocol.md describes the subset; docs/exchange_sim.md the input validation.)
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from itertools import accumulate
from typing import Any

from exchange_sim.accounts import Account, Position
from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import ZERO, Execution, Order, PublicTrade
from exchange_sim.instruments import Instrument

RISK_LIMIT_VALUE = "2000000"  # first risk-limit tier, the only one the paper exchange models

# -- in: JSON and numbers ----------------------------------------------------------------------------

MAX_JSON_DEPTH = 32  # Bybit's requests nest two or three levels; deeper is garbage, not a request
_DECIMAL = re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{1,18})?")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
# A JSON string (closed, or running to the end of the text): its brackets do not nest. The possessive
# ``*+`` keeps an unterminated string from being rescanned, so the depth check stays linear in the text.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
SHOWN_CHARS = 60


class JsonError(ValueError):
    """A request text that is not a JSON value this exchange accepts; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonError(f"number {shown(text)} is out of range")
    return value


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than ``limit`` (brackets in strings ignored)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > limit


def decode_json(data: bytes | str) -> Any:
    """Decode one request text strictly; raises :class:`JsonError` naming the problem."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    else:
        text = data
    if json_depth_exceeds(text):
        raise JsonError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(str(exc)) from None
    except ValueError:  # int() refuses a literal of more than 4300 digits
        raise JsonError("a number has too many digits") from None


def shown(value: object) -> str:
    """``repr(value)`` cut to :data:`SHOWN_CHARS` characters, for error messages that quote client input."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 5]}…({len(text)} chars)"


def decimal_text(value: object) -> Decimal | None:
    """``value`` as a Decimal if it is a number in the wire grammar (ASCII string or JSON integer), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    return None


def integer_text(value: object) -> int | None:
    """``value`` as an int if it is an integer in the wire grammar (ASCII digit string or JSON integer)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def parse_decimal(field: str, value: object) -> Decimal:
    """A decimal request field, or a 10001 :class:`ExchangeError` naming ``field`` and the grammar."""
    number = decimal_text(value)
    if number is None:
        raise ExchangeError(
            RetCode.PARAMS_ERROR,
            f'params error: {field} must be a decimal string of ASCII digits like "0.010", got {shown(value)}',
        )
    return number


def parse_integer(field: str, value: object) -> int:
    """An integer request field, or a 10001 :class:`ExchangeError` naming ``field``."""
    number = integer_text(value)
    if number is None:
        raise ExchangeError(
            RetCode.PARAMS_ERROR,
            f"params error: {field} must be an integer of ASCII digits, got {shown(value)}",
        )
    return number


# -- out: domain records → JSON objects --------------------------------------------------------------


def num(value: Decimal) -> str:
    """A computed amount as a plain decimal string without exponent or trailing zeros (``"640"``)."""
    if not value:
        return "0"
    text = format(value.normalize(), "f")
    return text


def price(spec: Instrument, value: Decimal | None, empty: str = "0") -> str:
    """A price: padded to ``priceScale`` when on that grid, else up to four more decimals (averages)."""
    if value is None or not value:
        return empty
    scale = Decimal(1).scaleb(-spec.price_scale)
    padded = value.quantize(scale)
    if padded == value:
        return str(padded)
    return num(value.quantize(Decimal(1).scaleb(-(spec.price_scale + 4))))


def zero_price(spec: Instrument) -> str:
    """An unset price field padded to ``priceScale`` (``"0.00"``), as Bybit prints it."""
    return str(Decimal(0).quantize(Decimal(1).scaleb(-spec.price_scale)))


def qty(spec: Instrument, value: Decimal) -> str:
    """A quantity padded to the decimals of ``qtyStep`` (``"0.010"``)."""
    return str(value.quantize(spec.qty_step))


def order_object(spec: Instrument, order: Order, *, stream: bool = False) -> dict[str, Any]:
    """The order object of ``/v5/order/realtime``/``history``; ``stream=True`` adds the §6.4 fields."""
    fee = order.cum_exec_fee
    out: dict[str, Any] = {
        "orderId": order.order_id,
        "orderLinkId": order.order_link_id,
        "parentOrderLinkId": order.parent_order_link_id,
        "blockTradeId": "",
        "symbol": order.symbol,
        "price": price(spec, order.price),
        "qty": qty(spec, order.qty),
        "side": order.side,
        "isLeverage": "",
        "positionIdx": order.position_idx,
        "orderStatus": order.order_status,
        "createType": order.create_type,
        "cancelType": order.cancel_type,
        "rejectReason": order.reject_reason,
        "avgPrice": price(spec, order.avg_price, empty="0"),
        "leavesQty": qty(spec, order.leaves_qty),
        "leavesValue": num(order.leaves_value),
        "cumExecQty": qty(spec, order.cum_exec_qty),
        "cumExecValue": num(order.cum_exec_value),
        "cumExecFee": num(fee),
        "cumFeeDetail": {"USDT": num(fee)} if order.cum_exec_qty else {},
        "timeInForce": order.time_in_force,
        "orderType": order.order_type,
        "stopOrderType": order.stop_order_type,
        "orderIv": "",
        "marketUnit": "",
        "triggerPrice": price(spec, order.trigger_price, empty=zero_price(spec)),
        "takeProfit": price(spec, order.take_profit, empty=zero_price(spec)),
        "stopLoss": price(spec, order.stop_loss, empty=zero_price(spec)),
        "tpslMode": order.tpsl_mode,
        "ocoTriggerBy": "",
        "tpLimitPrice": price(spec, order.tp_limit_price, empty=""),
        "slLimitPrice": price(spec, order.sl_limit_price, empty=""),
        "tpTriggerBy": order.tp_trigger_by,
        "slTriggerBy": order.sl_trigger_by,
        "triggerDirection": order.trigger_direction,
        "triggerBy": order.trigger_by,
        "lastPriceOnCreated": price(spec, order.last_price_on_created, empty=""),
        "basePrice": "",
        "reduceOnly": order.reduce_only,
        "closeOnTrigger": order.close_on_trigger,
        "placeType": "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "slippageToleranceType": order.slippage_tolerance_type,
        "slippageTolerance": num(order.slippage_tolerance) if order.slippage_tolerance is not None else "",
        "extraFees": "",
        "createdTime": str(order.created_time),
        "updatedTime": str(order.updated_time),
    }
    if stream:
        out = {"category": "linear", **out}
        out.update(
            closedPnl=num(order.closed_pnl),
            feeCurrency="",
            brokerOrderPrice="",
            rpiTakerAccess=False,
            rpiMatchedQty="0",
        )
    return out


def execution_object(spec: Instrument, ex: Execution, *, stream: bool = False) -> dict[str, Any]:
    """One execution (``/v5/execution/list`` row, or ``execution`` topic item with ``stream=True``)."""
    funding = ex.exec_type == "Funding"
    out: dict[str, Any] = {
        "symbol": ex.symbol,
        "orderId": ex.order_id,
        "orderLinkId": ex.order_link_id,
        "side": ex.side,
        "orderPrice": "" if funding else price(spec, ex.order_price),
        "orderQty": "" if funding else qty(spec, ex.order_qty),
        "leavesQty": "0" if funding else qty(spec, ex.leaves_qty),
        "createType": "" if funding else ex.create_type,
        "orderType": ex.order_type,
        "stopOrderType": ex.stop_order_type,
        "execId": ex.exec_id,
        "execPrice": price(spec, ex.exec_price),
        "execQty": qty(spec, ex.exec_qty),
        "execValue": num(ex.exec_value),
        "execFee": num(ex.exec_fee),
        "feeRate": num(ex.fee_rate),
        "feeCurrency": ex.fee_currency,
        "execType": ex.exec_type,
        "execTime": str(ex.exec_time),
        "isMaker": ex.is_maker,
        "markPrice": price(spec, ex.mark_price, empty=""),
        "closedSize": qty(spec, ex.closed_size) if ex.closed_size else "0",
        "execPnl": num(ex.exec_pnl),
        "seq": ex.seq,
        "blockTradeId": "",
        "extraFees": "",
        "tradeIv": "",
        "markIv": "",
        "indexPrice": "",
        "underlyingPrice": "",
    }
    if stream:
        out = {"category": "linear", **out, "isLeverage": "0", "marketUnit": ""}
    return out


def position_object(
    spec: Instrument, account: Account, pos: Position, mark: Decimal | None, *, stream: bool = False
) -> dict[str, Any]:
    """The one-way position of §4.10 (``stream=True``: §6.6, ``entryPrice`` instead of ``avgPrice``)."""
    taker = account.taker_fee_rate
    im = pos.initial_margin(taker)
    mm = pos.maintenance_margin(spec.maintenance_margin_rate, taker)
    if pos.qty > 0:
        break_even = (pos.entry_value - pos.cur_realised_pnl) / (pos.size * (1 - taker))
    elif pos.qty < 0:
        break_even = (pos.entry_value + pos.cur_realised_pnl) / (pos.size * (1 + taker))
    else:
        break_even = None
    entry_key = "entryPrice" if stream else "avgPrice"
    out: dict[str, Any] = {
        "positionIdx": 0,
        "riskId": 1,
        "riskLimitValue": RISK_LIMIT_VALUE,
        "symbol": pos.symbol,
        "side": pos.side,
        "size": qty(spec, pos.size),
        entry_key: num(pos.avg_price),
        "positionValue": num(pos.entry_value),
        "tradeMode": 0,
        "positionStatus": "Normal",
        "autoAddMargin": 0,
        "adlRankIndicator": 2 if pos.qty else 0,
        "leverage": num(pos.leverage),
        "breakEvenPrice": price(spec, break_even, empty=""),
        "positionBalance": num(im),
        "markPrice": price(spec, mark, empty=""),
        "liqPrice": "",
        "bustPrice": "",
        "positionMM": num(mm),
        "positionMMByMp": num(mm),
        "positionIM": num(im),
        "positionIMByMp": num(im),
        "tpslMode": "Full",
        "takeProfit": price(spec, pos.take_profit, empty=zero_price(spec)),
        "stopLoss": price(spec, pos.stop_loss, empty=zero_price(spec)),
        "trailingStop": zero_price(spec),
        "unrealisedPnl": num(pos.unrealised_pnl(mark)),
        "curRealisedPnl": num(pos.cur_realised_pnl),
        "cumRealisedPnl": num(pos.cum_realised_pnl),
        "sessionAvgPrice": "",
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "seq": pos.seq,
        "createdTime": str(pos.created_time),
        "updatedTime": str(pos.updated_time),
        "openTime": pos.created_time if pos.qty else 0,
    }
    if stream:
        out = {"category": "linear", **out}
    return out


def wallet_object(account: Account) -> dict[str, Any]:
    """The UNIFIED account item of ``wallet-balance`` and the ``wallet`` topic (USDT valued at 1 USD)."""
    s = account.summary()
    margin_balance = s.equity
    total_im = s.total_position_im + s.total_order_im
    im_rate = total_im / margin_balance if margin_balance > 0 else ZERO
    mm_rate = s.total_position_mm / margin_balance if margin_balance > 0 else ZERO
    rate_q = Decimal("0.0001")
    coin = {
        "coin": "USDT",
        "equity": num(s.equity),
        "usdValue": num(s.equity),
        "walletBalance": num(s.wallet_balance),
        "locked": "0",
        "spotHedgingQty": "0",
        "borrowAmount": "0",
        "accruedInterest": "0",
        "totalOrderIM": num(s.total_order_im),
        "totalPositionIM": num(s.total_position_im),
        "totalPositionMM": num(s.total_position_mm),
        "unrealisedPnl": num(s.unrealised_pnl),
        "cumRealisedPnl": num(s.cum_realised_pnl),
        "bonus": "0",
        "marginCollateral": True,
        "collateralSwitch": True,
        "colRes": "0",
        "spotBorrow": "0",
        "availableToWithdraw": "",
        "availableToBorrow": "",
    }
    return {
        "accountType": "UNIFIED",
        "totalEquity": num(s.equity),
        "totalWalletBalance": num(s.wallet_balance),
        "totalMarginBalance": num(margin_balance),
        "totalAvailableBalance": num(s.available_balance),
        "totalPerpUPL": num(s.unrealised_pnl),
        "totalInitialMargin": num(total_im),
        "totalMaintenanceMargin": num(s.total_position_mm),
        "accountIMRate": num(im_rate.quantize(rate_q)),
        "accountMMRate": num(mm_rate.quantize(rate_q)),
        "accountIMRateByMp": num(im_rate.quantize(rate_q)),
        "accountMMRateByMp": num(mm_rate.quantize(rate_q)),
        "totalInitialMarginByMp": num(total_im),
        "totalMaintenanceMarginByMp": num(s.total_position_mm),
        "accountLTV": "0",
        "coin": [coin],
    }


def public_trade_object(spec: Instrument, trade: PublicTrade) -> dict[str, Any]:
    """One ``publicTrade`` item (§5.4)."""
    return {
        "T": trade.time,
        "s": trade.symbol,
        "S": trade.taker_side,
        "v": qty(spec, trade.qty),
        "p": price(spec, trade.price),
        "L": trade.tick_direction,
        "i": trade.trade_id,
        "BT": False,
        "RPI": False,
        "seq": trade.seq,
    }


def recent_trade_object(spec: Instrument, trade: PublicTrade) -> dict[str, Any]:
    """One ``/v5/market/recent-trade`` row (§3.6)."""
    return {
        "execId": trade.trade_id,
        "symbol": trade.symbol,
        "price": price(spec, trade.price),
        "size": qty(spec, trade.qty),
        "side": trade.taker_side,
        "time": str(trade.time),
        "isBlockTrade": False,
        "isRPITrade": False,
        "seq": str(trade.seq),
    }
