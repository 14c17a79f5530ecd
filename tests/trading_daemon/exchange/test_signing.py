"""Signing against the docs/exchange_protocol.md §2.4 test vectors, and the exact bytes the client sends."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from schemas.enums import OrderType, Side, TimeInForce
from trading_daemon.exchange.http import encode_body, encode_query, rest_signature, ws_auth_signature

KEY = "XkTestApiKey0001"
SECRET = "TestSecretNotReal0123456789abcdefABCDEF"
TS = "1700000000000"
COMPACT = (
    '{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001",'
    '"price":"30000","timeInForce":"GTC","orderLinkId":"demo-0001"}'
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            "category=linear&symbol=BTCUSDT",
            "537e442540b02cf192b1b4e3f6f63297824188876e7e736d3c2d7c937c1cd90a",
        ),
        (
            "symbol=BTCUSDT&category=linear",
            "130e8661d75a76c7f913eb0bf7e90e32175704146689edcff85f0394ceef5080",
        ),
        ("accountType=UNIFIED", "a26a248aeb77a5fb7cfa9928bb38126929af718df5074a56b63b1f76c8aeac03"),
        (COMPACT, "350ab64058a8adfe04e2673a28bb6047a61c7f14e5785255cb43eb1cd8296faf"),
        (
            json.dumps(json.loads(COMPACT)),
            "5d7dbf3bee9c253618cd549ffc050e1e4a6d15e9c626ccb25ad3d8717130be95",
        ),
    ],
)
def test_rest_signature_vectors(payload: str, expected: str) -> None:
    assert rest_signature(SECRET, TS, KEY, "5000", payload) == expected


def test_ws_auth_vector() -> None:
    assert (
        ws_auth_signature(SECRET, 1700000001000)
        == "cf3ad06b33d1bb93263db01d81082c29c56dbac823cdbda178be1e610f0c979a"
    )


def test_body_is_the_compact_vector_body() -> None:
    body = encode_body(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": Side.BUY,
            "orderType": OrderType.LIMIT,
            "qty": Decimal("0.001"),
            "price": Decimal("30000"),
            "timeInForce": TimeInForce.GTC,
            "orderLinkId": "demo-0001",
            "takeProfit": None,
        }
    )
    assert body.decode() == COMPACT


def test_body_types_follow_the_value_encoding() -> None:
    body = json.loads(encode_body({"positionIdx": 0, "reduceOnly": True, "qty": Decimal("1E+1")}))
    assert body == {"positionIdx": 0, "reduceOnly": True, "qty": "10"}


def test_query_keeps_order_and_drops_none() -> None:
    query = encode_query({"symbol": "BTCUSDT", "category": "linear", "cursor": None, "openOnly": True})
    assert query == "symbol=BTCUSDT&category=linear&openOnly=true"
    # A cursor is already percent-encoded and must go out (and be signed) verbatim (§1.6).
    assert encode_query({"cursor": "page_args%3Dfd43%26"}) == "cursor=page_args%3Dfd43%26"
