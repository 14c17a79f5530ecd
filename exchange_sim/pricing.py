"""Price protection of the paper exchange: the limit-price band (110003) and market-order bounds.

Bybit converts a Market order into an IOC limit order whose price is a protection bound around the mark
price, and cancels whatever cannot fill inside it (docs/exchange_protocol.md §4.1); a client may instead give
``slippageToleranceType``/``slippageTolerance`` (``TickSize`` in [1, 10000] or ``Percent`` in
[0.01, 10]). Bybit publishes the ratios (``riskParameters.priceLimitRatioX/Y``) but not the exact
formula, so this module uses one rule for both checks, with the instrument's ``price_limit_ratio``
(priceLimitRatioY): a buy may not be priced above ``mark × (1 + ratio)`` nor a sell below
``mark × (1 − ratio)``. The slippage tolerance is measured from the best opposite price at arrival.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import ZERO
from exchange_sim.instruments import Instrument

_MIN_PERCENT = Decimal("0.01")


def check_price_band(spec: Instrument, side: str, price: Decimal, reference: Decimal | None) -> None:
    """Refuse with 110003 a limit price more than the price-limit ratio through ``reference`` (mark)."""
    if reference is None:
        return
    ratio = spec.price_limit_ratio
    if (side == "Buy" and price > reference * (1 + ratio)) or (
        side == "Sell" and price < reference * (1 - ratio)
    ):
        raise ExchangeError(
            RetCode.PRICE_OUT_OF_RANGE,
            f"Order price is out of permissible range: {side} {price} of {spec.symbol} is more than "
            f"{ratio:%} through the mark price {reference}",
        )


def market_protection(
    spec: Instrument,
    side: str,
    best_opposite: int | None,
    reference: Decimal | None,
    tolerance_type: str | None = None,
    tolerance: Decimal | None = None,
) -> tuple[int | None, Decimal]:
    """The bound of a Market order as ``(ticks, price)``; ``(None, 0)`` if there is nothing to bound by.

    ``best_opposite`` is the best ask (for a buy) or bid (for a sell) in ticks; it also stands in for
    ``reference`` when there is neither a mark price nor a mid. The bound is rounded towards the
    reference, so it is never looser than the rule allows.
    """
    buy = side == "Buy"
    sign = 1 if buy else -1
    if tolerance_type is not None or tolerance is not None:
        if (
            tolerance_type == "TickSize"
            and tolerance is not None
            and tolerance == tolerance.to_integral_value()
            and 1 <= tolerance <= 10000
        ):
            if best_opposite is None:
                return None, ZERO
            ticks = max(best_opposite + sign * int(tolerance), 1)
            return ticks, spec.ticks_to_price(ticks)
        if tolerance_type == "Percent" and tolerance is not None and _MIN_PERCENT <= tolerance <= 10:
            if best_opposite is None:
                return None, ZERO
            bound = spec.ticks_to_price(best_opposite) * (1 + sign * tolerance / 100)
        else:
            raise ExchangeError(
                RetCode.PARAMS_ERROR,
                f"params error: slippageToleranceType {tolerance_type!r} with slippageTolerance "
                f"{tolerance}: TickSize needs an integer in [1, 10000], Percent a value in [0.01, 10]",
            )
    else:
        if reference is None and best_opposite is not None:
            # No mark and a one-sided book (so no mid): bound the order around the best opposite price.
            reference = spec.ticks_to_price(best_opposite)
        if reference is None:
            return None, ZERO  # empty book and no mark: nothing to trade against
        bound = reference * (1 + sign * spec.price_limit_ratio)
    rounding = ROUND_FLOOR if buy else ROUND_CEILING
    ticks = max(int((bound / spec.tick_size).to_integral_value(rounding=rounding)), 1)
    return ticks, spec.ticks_to_price(ticks)
