"""Instrument specifications of the paper exchange's USDT linear perpetuals, and their price/qty filters.

Values follow Bybit's ``GET /v5/market/instruments-info`` (category ``linear``): BTCUSDT as quoted in
docs/exchange_protocol.md §3.2, ETHUSDT and SOLUSDT from the captured response in docs/exchange_sim_market.md §4. ``maxOrderQty`` and
``maxMktOrderQty`` are revised by Bybit twice a month, and the leverage/maintenance-margin figures are the
first risk-limit tier only, so all of them are configuration: build another :class:`Instrument` with
``dataclasses.replace`` to change them.

Inside the engine prices are integer ticks and quantities integer lots (multiples of ``qtyStep``); the
conversions here are exact and refuse values that are not on the grid instead of rounding them silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

from exchange_sim.errors import ExchangeError, InstrumentRuleError, RetCode

_ORDER_TYPES = ("Limit", "Market")


@dataclass(frozen=True, slots=True)
class Instrument:
    """One linear perpetual's contract specification; field names mirror Bybit's instruments-info."""

    symbol: str
    base_coin: str
    quote_coin: str
    price_scale: int
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    max_mkt_order_qty: Decimal
    min_notional_value: Decimal
    min_leverage: Decimal
    max_leverage: Decimal
    leverage_step: Decimal
    funding_interval_minutes: int
    upper_funding_rate: Decimal
    lower_funding_rate: Decimal
    # riskParameters.priceLimitRatioY: the band around the mark price for limit prices (110003) and the
    # default protection bound of market orders (docs/exchange_protocol.md §4.1: Market orders are bounded by a protection price).
    price_limit_ratio: Decimal
    maintenance_margin_rate: Decimal

    def __post_init__(self) -> None:
        for name in ("tick_size", "qty_step", "min_order_qty", "max_order_qty", "max_mkt_order_qty"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or value <= 0:
                raise ValueError(f"Instrument {self.symbol}: {name} must be a positive Decimal: {value!r}")
        if self.min_order_qty % self.qty_step or self.max_order_qty % self.qty_step:
            raise ValueError(f"Instrument {self.symbol}: min/max order qty must be multiples of qtyStep")
        if -int(self.tick_size.as_tuple().exponent) > self.price_scale:
            raise ValueError(f"Instrument {self.symbol}: tickSize {self.tick_size} finer than priceScale")

    # -- exact grid conversions ------------------------------------------------------------------

    @property
    def qty_decimals(self) -> int:
        """Number of decimals in quantities, as Bybit pads them (the decimals of ``qtyStep``)."""
        return max(0, -int(self.qty_step.as_tuple().exponent))

    def price_to_ticks(self, price: Decimal, field: str = "price") -> int:
        """Integer ticks of ``price``; raises :class:`InstrumentRuleError` if it is off the tick grid."""
        ticks, remainder = divmod(price, self.tick_size)
        if remainder:
            raise InstrumentRuleError(
                self.symbol, field, price, "tickSize", f"must be a multiple of {self.tick_size}"
            )
        return int(ticks)

    def ticks_to_price(self, ticks: int) -> Decimal:
        """The price of ``ticks``, padded to ``priceScale`` decimals as Bybit prints prices."""
        return (self.tick_size * ticks).quantize(Decimal(1).scaleb(-self.price_scale))

    def qty_to_lots(self, qty: Decimal, field: str = "qty") -> int:
        """Integer lots (multiples of ``qtyStep``) of ``qty``; raises if it is off the step grid."""
        lots, remainder = divmod(qty, self.qty_step)
        if remainder:
            raise InstrumentRuleError(
                self.symbol, field, qty, "qtyStep", f"must be a multiple of {self.qty_step}"
            )
        return int(lots)

    def lots_to_qty(self, lots: int) -> Decimal:
        """The quantity of ``lots``, padded to the decimals of ``qtyStep``."""
        return self.qty_step * lots

    # -- rounding helpers for callers that compute prices (strategies, the market generator) ------

    def round_price(self, price: Decimal, direction: str = "nearest") -> Decimal:
        """Round ``price`` onto the tick grid: ``nearest`` (half-even), ``down`` or ``up``."""
        rounding = {"nearest": ROUND_HALF_EVEN, "down": ROUND_FLOOR, "up": ROUND_CEILING}.get(direction)
        if rounding is None:
            raise ValueError(f"round_price: direction must be nearest, down or up, got {direction!r}")
        return self.ticks_to_price(int((price / self.tick_size).to_integral_value(rounding=rounding)))

    def round_qty(self, qty: Decimal) -> Decimal:
        """Round ``qty`` down onto the ``qtyStep`` grid (never up: that would exceed what was asked)."""
        return self.lots_to_qty(int((qty / self.qty_step).to_integral_value(rounding=ROUND_FLOOR)))

    # -- request validation ------------------------------------------------------------------------

    def validate_price(self, price: Decimal, field: str = "price") -> int:
        """Check ``price`` against ``tickSize`` and ``[minPrice, maxPrice]``; return it in ticks."""
        if not price.is_finite() or price <= 0:
            raise InstrumentRuleError(self.symbol, field, price, "priceFilter", "must be a positive number")
        if price < self.min_price or price > self.max_price:
            raise InstrumentRuleError(
                self.symbol,
                field,
                price,
                "minPrice/maxPrice",
                f"must lie within [{self.min_price}, {self.max_price}]",
            )
        return self.price_to_ticks(price, field)

    def validate_qty(self, qty: Decimal, order_type: str, field: str = "qty") -> int:
        """Check ``qty`` against ``qtyStep``, ``minOrderQty`` and the max for ``order_type``; return lots.

        The minimum uses Bybit's live text for that case ("The number of contracts exceeds minimum limit
        allowed", docs/exchange_protocol.md §1.4), followed by the field and the rule.
        """
        if order_type not in _ORDER_TYPES:
            raise ValueError(f"validate_qty: order_type must be Limit or Market, got {order_type!r}")
        if not qty.is_finite() or qty <= 0:
            raise InstrumentRuleError(self.symbol, field, qty, "lotSizeFilter", "must be a positive number")
        if qty < self.min_order_qty:
            raise InstrumentRuleError(
                self.symbol,
                field,
                qty,
                "minOrderQty",
                f"must be at least {self.min_order_qty}",
                prefix="The number of contracts exceeds minimum limit allowed",
            )
        maximum, rule = (
            (self.max_mkt_order_qty, "maxMktOrderQty")
            if order_type == "Market"
            else (self.max_order_qty, "maxOrderQty")
        )
        if qty > maximum:
            raise InstrumentRuleError(self.symbol, field, qty, rule, f"must be at most {maximum}")
        return self.qty_to_lots(qty, field)

    def validate_notional(self, qty: Decimal, price: Decimal) -> None:
        """Refuse ``qty × price`` below ``minNotionalValue`` with retCode 110094."""
        notional = qty * price
        if notional < self.min_notional_value:
            raise InstrumentRuleError(
                self.symbol,
                "qty*price",
                notional,
                "minNotionalValue",
                f"must be at least {self.min_notional_value} USDT",
                ret_code=RetCode.NOTIONAL_BELOW_MIN,
                prefix="Order notional value below the lower limit",
            )

    def validate_leverage(self, leverage: Decimal, field: str = "buyLeverage") -> Decimal:
        """Check ``leverage`` against ``[minLeverage, maxLeverage]`` and ``leverageStep``."""
        if not leverage.is_finite() or leverage < self.min_leverage or leverage > self.max_leverage:
            raise InstrumentRuleError(
                self.symbol,
                field,
                leverage,
                "leverageFilter",
                f"must lie within [{self.min_leverage}, {self.max_leverage}]",
            )
        if leverage % self.leverage_step:
            raise InstrumentRuleError(
                self.symbol, field, leverage, "leverageStep", f"must be a multiple of {self.leverage_step}"
            )
        return leverage


_D = Decimal

BTCUSDT = Instrument(
    symbol="BTCUSDT",
    base_coin="BTC",
    quote_coin="USDT",
    price_scale=2,
    tick_size=_D("0.10"),
    min_price=_D("0.10"),
    max_price=_D("1999999.80"),
    qty_step=_D("0.001"),
    min_order_qty=_D("0.001"),
    max_order_qty=_D("1190.000"),
    max_mkt_order_qty=_D("500.000"),
    min_notional_value=_D("5"),
    min_leverage=_D("1"),
    max_leverage=_D("100.00"),
    leverage_step=_D("0.01"),
    funding_interval_minutes=480,
    upper_funding_rate=_D("0.00375"),
    lower_funding_rate=_D("-0.00375"),
    price_limit_ratio=_D("0.02"),
    maintenance_margin_rate=_D("0.005"),
)

ETHUSDT = Instrument(
    symbol="ETHUSDT",
    base_coin="ETH",
    quote_coin="USDT",
    price_scale=2,
    tick_size=_D("0.01"),
    min_price=_D("0.01"),
    max_price=_D("199999.98"),
    qty_step=_D("0.01"),
    min_order_qty=_D("0.01"),
    max_order_qty=_D("10000.00"),
    max_mkt_order_qty=_D("2000.00"),
    min_notional_value=_D("5"),
    min_leverage=_D("1"),
    max_leverage=_D("100.00"),
    leverage_step=_D("0.01"),
    funding_interval_minutes=480,
    upper_funding_rate=_D("0.00375"),
    lower_funding_rate=_D("-0.00375"),
    price_limit_ratio=_D("0.02"),
    maintenance_margin_rate=_D("0.005"),
)

# SOLUSDT's tick is 0.010 with priceScale 3 (docs/exchange_sim_market.md §4), not 0.001.
SOLUSDT = Instrument(
    symbol="SOLUSDT",
    base_coin="SOL",
    quote_coin="USDT",
    price_scale=3,
    tick_size=_D("0.010"),
    min_price=_D("0.010"),
    max_price=_D("19999.980"),
    qty_step=_D("0.1"),
    min_order_qty=_D("0.1"),
    max_order_qty=_D("96000.0"),
    max_mkt_order_qty=_D("12000.0"),
    min_notional_value=_D("5"),
    min_leverage=_D("1"),
    max_leverage=_D("75.00"),
    leverage_step=_D("0.01"),
    funding_interval_minutes=480,
    upper_funding_rate=_D("0.005"),
    lower_funding_rate=_D("-0.005"),
    price_limit_ratio=_D("0.03"),
    maintenance_margin_rate=_D("0.01"),
)

DEFAULT_INSTRUMENTS: Mapping[str, Instrument] = MappingProxyType(
    {spec.symbol: spec for spec in (BTCUSDT, ETHUSDT, SOLUSDT)}
)


def get_instrument(symbol: object, instruments: Mapping[str, Instrument] = DEFAULT_INSTRUMENTS) -> Instrument:
    """The instrument for ``symbol``; an unknown or non-upper-case symbol is a 10001 naming it."""
    spec = instruments.get(symbol) if isinstance(symbol, str) else None
    if spec is None:
        raise ExchangeError(
            RetCode.PARAMS_ERROR,
            f"params error: symbol {symbol!r} is not a listed linear instrument "
            f"(listed: {', '.join(sorted(instruments))})",
        )
    return spec
