"""`TradeIntent`, the record the decisions hand to execution: what it refuses, naming the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from schemas.enums import OrderType, Side, TimeInForce
from schemas.trading import TradeIntent

BASE: dict[str, Any] = {
    "intent_id": "sig-42",
    "symbol": "BTCUSDT",
    "side": Side.BUY,
    "order_type": OrderType.LIMIT,
    "ts": 1_767_225_600_000,
    "quantity": Decimal("0.010"),
    "price": Decimal("64000.0"),
}


def test_a_limit_entry_with_protection_round_trips_as_json() -> None:
    intent = TradeIntent(**BASE, take_profit=Decimal("64500"), stop_loss=Decimal("63800"))
    wire = msgspec.json.encode(intent)
    assert b'"price":"64000.0"' in wire  # money is a decimal string on the wire
    assert msgspec.json.decode(wire, type=TradeIntent) == intent


def test_a_market_order_by_notional() -> None:
    intent = TradeIntent(**{**BASE, "order_type": OrderType.MARKET, "price": None, "quantity": None},
                         notional=Decimal("250"))  # fmt: skip
    assert intent.notional == Decimal("250") and intent.quantity is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"intent_id": ""}, "intent_id is empty"),
        ({"notional": Decimal("10")}, "exactly one of quantity and notional"),
        ({"quantity": None}, "exactly one of quantity and notional"),
        ({"quantity": Decimal("-1")}, "quantity must be a positive finite decimal"),
        ({"quantity": Decimal("NaN")}, "quantity must be a positive finite decimal"),
        ({"price": None}, "a Limit order needs a price"),
        ({"order_type": OrderType.MARKET, "price": None, "time_in_force": TimeInForce.POST_ONLY}, "cannot be PostOnly"),
        ({"take_profit": Decimal("63000")}, "take_profit 63000 must be above the price"),
        ({"stop_loss": Decimal("65000")}, "stop_loss 65000 must be below the price"),
        ({"side": Side.SELL, "take_profit": Decimal("65000")}, "take_profit 65000 must be below the price"),
        ({"side": Side.SELL, "stop_loss": Decimal("63000")}, "stop_loss 63000 must be above the price"),
        ({"reduce_only": True, "stop_loss": Decimal("63000")}, "reduce-only exit carries no take-profit"),
    ],
)  # fmt: skip
def test_bad_intents_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TradeIntent(**{**BASE, **changes})
