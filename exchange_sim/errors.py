"""Business errors of the paper exchange, carrying the Bybit v5 retCode the server must answer with.

Every rejection that Bybit reports as a non-zero ``retCode`` (HTTP 200, ``result: {}``) is raised as an
:class:`ExchangeError`; the protocol layer turns ``ret_code``/``ret_msg`` into the response envelope.
Where a live Bybit ``retMsg`` text is known (docs/exchange_protocol.md §1.4), the constants below use it,
since clients log it.
"""

from __future__ import annotations

from enum import IntEnum


class RetCode(IntEnum):
    """The Bybit v5 retCodes the matching engine and accounts can produce (docs/exchange_protocol.md §1.4)."""

    OK = 0
    PARAMS_ERROR = 10001
    ORDER_NOT_EXISTS = 110001
    PRICE_OUT_OF_RANGE = 110003
    INSUFFICIENT_BALANCE = 110007
    TOO_MANY_STOP_ORDERS = 110009
    REDUCE_ONLY_NOT_SATISFIED = 110017
    TOO_MANY_ACTIVE_ORDERS = 110020
    LEVERAGE_NOT_MODIFIED = 110043
    TPSL_SIZE_TOO_LARGE = 110058
    TPSL_OF_PARTIALLY_FILLED = 110059
    TOO_MANY_PARTIAL_TPSL = 110061
    AMEND_QTY_NOT_ABOVE_FILLED = 110064
    DUPLICATE_ORDER_LINK_ID = 110072
    EXPECT_RISING = 110092
    EXPECT_FALLING = 110093
    NOTIONAL_BELOW_MIN = 110094
    NOT_MODIFIED = 34040  # trading-stop: the TP/SL already has these values, or nothing was given


class ExchangeError(Exception):
    """A request the exchange refuses; ``ret_code`` and ``ret_msg`` go into the response envelope."""

    def __init__(self, ret_code: RetCode, ret_msg: str) -> None:
        super().__init__(f"{int(ret_code)}: {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


class InstrumentRuleError(ExchangeError):
    """A price or quantity that breaks one of the instrument's filters.

    ``field`` names the request field (``price``, ``qty``), ``value`` is the offending value as given and
    ``rule`` names the filter (``tickSize``, ``qtyStep``, ``minOrderQty`` …), so that the message says
    exactly what to fix.
    """

    def __init__(
        self,
        symbol: str,
        field: str,
        value: object,
        rule: str,
        detail: str,
        ret_code: RetCode = RetCode.PARAMS_ERROR,
        prefix: str = "params error",
    ) -> None:
        super().__init__(ret_code, f"{prefix}: {field} {value} of {symbol} violates {rule}: {detail}")
        self.symbol = symbol
        self.field = field
        self.value = value
        self.rule = rule
