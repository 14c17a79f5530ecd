"""Instrument specs and the price/qty filters of the paper exchange."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.errors import ExchangeError, InstrumentRuleError, RetCode
from exchange_sim.instruments import (
    BTCUSDT,
    DEFAULT_INSTRUMENTS,
    ETHUSDT,
    SOLUSDT,
    Instrument,
    get_instrument,
)


def test_btcusdt_matches_the_instruments_info_example() -> None:
    assert BTCUSDT.tick_size == D("0.10") and BTCUSDT.price_scale == 2
    assert (BTCUSDT.min_price, BTCUSDT.max_price) == (D("0.10"), D("1999999.80"))
    assert BTCUSDT.qty_step == BTCUSDT.min_order_qty == D("0.001")
    assert (BTCUSDT.max_order_qty, BTCUSDT.max_mkt_order_qty) == (D("1190"), D("500"))
    assert BTCUSDT.min_notional_value == D("5")
    assert BTCUSDT.funding_interval_minutes == 480
    assert (BTCUSDT.upper_funding_rate, BTCUSDT.lower_funding_rate) == (D("0.00375"), D("-0.00375"))


def test_eth_and_sol_grid() -> None:
    assert (ETHUSDT.tick_size, ETHUSDT.qty_step) == (D("0.01"), D("0.01"))
    # SOL's tick is 0.010 with three price decimals, not 0.001.
    assert (SOLUSDT.tick_size, SOLUSDT.price_scale, SOLUSDT.qty_step) == (D("0.010"), 3, D("0.1"))
    assert set(DEFAULT_INSTRUMENTS) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


def test_conversions_are_exact_and_padded() -> None:
    assert BTCUSDT.price_to_ticks(D("64000.1")) == 640001
    assert str(BTCUSDT.ticks_to_price(640000)) == "64000.00"
    assert str(SOLUSDT.ticks_to_price(15000)) == "150.000"
    assert str(BTCUSDT.lots_to_qty(10)) == "0.010"
    assert BTCUSDT.qty_to_lots(D("0.010")) == 10
    assert BTCUSDT.qty_decimals == 3 and SOLUSDT.qty_decimals == 1


def test_off_grid_price_names_field_and_rule() -> None:
    with pytest.raises(InstrumentRuleError) as info:
        BTCUSDT.validate_price(D("64000.05"))
    err = info.value
    assert err.ret_code == RetCode.PARAMS_ERROR
    assert (err.field, err.rule, err.symbol) == ("price", "tickSize", "BTCUSDT")
    assert "price 64000.05 of BTCUSDT violates tickSize" in err.ret_msg


@pytest.mark.parametrize("price", [D("0.05"), D("2000000"), D("0"), D("-1")])
def test_price_outside_filter_range(price: D) -> None:
    with pytest.raises(InstrumentRuleError, match="price"):
        BTCUSDT.validate_price(price)


def test_qty_minimum_uses_bybit_live_text() -> None:
    with pytest.raises(InstrumentRuleError) as info:
        BTCUSDT.validate_qty(D("0.0005"), "Limit")
    assert info.value.ret_msg.startswith("The number of contracts exceeds minimum limit allowed")
    assert info.value.rule == "minOrderQty"


def test_qty_maximum_depends_on_order_type() -> None:
    assert BTCUSDT.validate_qty(D("1000"), "Limit") == 1_000_000
    with pytest.raises(InstrumentRuleError) as info:
        BTCUSDT.validate_qty(D("1000"), "Market")
    assert info.value.rule == "maxMktOrderQty"
    with pytest.raises(InstrumentRuleError, match="maxOrderQty"):
        BTCUSDT.validate_qty(D("1190.001"), "Limit")


def test_qty_step() -> None:
    with pytest.raises(InstrumentRuleError, match="qtyStep"):
        SOLUSDT.validate_qty(D("1.25"), "Limit")
    with pytest.raises(ValueError, match="order_type"):
        SOLUSDT.validate_qty(D("1"), "Stop")


def test_min_notional_is_110094() -> None:
    BTCUSDT.validate_notional(D("0.001"), D("5000"))
    with pytest.raises(InstrumentRuleError) as info:
        BTCUSDT.validate_notional(D("0.001"), D("4999.9"))
    assert info.value.ret_code == RetCode.NOTIONAL_BELOW_MIN
    assert info.value.rule == "minNotionalValue"


def test_rounding_helpers() -> None:
    assert BTCUSDT.round_price(D("64000.06")) == D("64000.10")
    assert BTCUSDT.round_price(D("64000.06"), "down") == D("64000.00")
    assert BTCUSDT.round_price(D("64000.01"), "up") == D("64000.10")
    assert BTCUSDT.round_qty(D("0.0109")) == D("0.010")
    with pytest.raises(ValueError, match="direction"):
        BTCUSDT.round_price(D("1"), "sideways")


def test_leverage_filter() -> None:
    assert BTCUSDT.validate_leverage(D("12.5")) == D("12.5")
    with pytest.raises(InstrumentRuleError, match="leverageFilter"):
        BTCUSDT.validate_leverage(D("101"))
    with pytest.raises(InstrumentRuleError, match="leverageStep"):
        BTCUSDT.validate_leverage(D("2.005"))


def test_get_instrument() -> None:
    assert get_instrument("ETHUSDT") is ETHUSDT
    with pytest.raises(ExchangeError, match="'btcusdt'"):
        get_instrument("btcusdt")


def test_spec_self_checks() -> None:
    with pytest.raises(ValueError, match="qtyStep"):
        dataclasses.replace(BTCUSDT, min_order_qty=D("0.0015"))
    with pytest.raises(ValueError, match="tick_size"):
        dataclasses.replace(BTCUSDT, tick_size=D("0"))


@settings(max_examples=200, deadline=None)
@given(spec=st.sampled_from([BTCUSDT, ETHUSDT, SOLUSDT]), ticks=st.integers(1, 10**8))
def test_tick_round_trip(spec: Instrument, ticks: int) -> None:
    price = spec.ticks_to_price(ticks)
    assert spec.price_to_ticks(price) == ticks
    assert -price.as_tuple().exponent == spec.price_scale


@settings(max_examples=200, deadline=None)
@given(
    spec=st.sampled_from([BTCUSDT, ETHUSDT, SOLUSDT]),
    price=st.decimals(min_value=D("0.5"), max_value=D("100000"), places=6),
)
def test_round_price_lands_on_grid_within_a_tick(spec: Instrument, price: D) -> None:
    for direction in ("nearest", "down", "up"):
        rounded = spec.round_price(price, direction)
        spec.price_to_ticks(rounded)
        assert abs(rounded - price) <= spec.tick_size
    assert spec.round_price(price, "down") <= price <= spec.round_price(price, "up")
