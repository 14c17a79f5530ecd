"""The request side of the wire format: one strict JSON decoder and one number grammar."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_sim.errors import ExchangeError
from exchange_sim.wire import (
    MAX_JSON_DEPTH,
    JsonError,
    decimal_text,
    decode_json,
    integer_text,
    json_depth_exceeds,
    parse_decimal,
    parse_integer,
    shown,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.010", D("0.010")),
        ("64000", D("64000")),
        ("-1.5", D("-1.5")),
        ("007", D("7")),
        (5, D("5")),
        (-5, D("-5")),
    ],
)
def test_decimals_in_ascii_form(value: object, expected: D) -> None:
    assert decimal_text(value) == expected and parse_decimal("qty", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "１２", "０.００１", "٣", "²", "𝟙",  # Unicode digits: Decimal() takes them, Bybit does not
        " 1", "1 ", "\t1", "1\n",  # surrounding whitespace
        "1_000", "1_0.5",  # separators
        "1e3", "1E-3", "+1", ".5", "5.", "0x10", "", "-",
        "NaN", "nan", "Infinity", "-Infinity", "inf", "sNaN",
        "9" * 19, "0." + "0" * 18 + "1", 10**18, 1.5, 0.0, True, False, None, [], {},
    ],
)  # fmt: skip
def test_everything_else_is_not_a_decimal(value: object) -> None:
    assert decimal_text(value) is None
    with pytest.raises(ExchangeError, match=r"params error: qty must be a decimal string of ASCII digits"):
        parse_decimal("qty", value)


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("-12", -12), (7, 7), ("9" * 18, 10**18 - 1)])
def test_integers_in_ascii_form(value: object, expected: int) -> None:
    assert integer_text(value) == expected and parse_integer("limit", value) == expected


@pytest.mark.parametrize(
    "value", ["１２", " 1", "1_0", "1.0", "1e2", "+1", "", "9" * 19, 0.5, 1.0, True, None, "²", float("inf")]
)
def test_everything_else_is_not_an_integer(value: object) -> None:
    assert integer_text(value) is None
    with pytest.raises(ExchangeError, match="params error: positionIdx must be an integer of ASCII digits"):
        parse_integer("positionIdx", value)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12))
def test_every_plain_decimal_string_round_trips(value: D) -> None:
    text = format(value, "f")
    assert decimal_text(text) == value


def test_error_messages_quote_input_cut_short() -> None:
    assert shown("abc") == "'abc'"
    long = shown("x" * 10_000)
    assert len(long) < 80 and long.endswith("(10002 chars)")
    with pytest.raises(ExchangeError) as info:
        parse_decimal("price", "9" * 5000)
    assert len(info.value.ret_msg) < 200


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("NaN", "NaN is not a JSON value"),
        ('{"positionIdx": Infinity}', "Infinity is not a JSON value"),
        ("[-Infinity]", "-Infinity is not a JSON value"),
        ("1e400", "out of range"),
        ("1" * 5000, "too many digits"),
        ("[" * 33 + "]" * 33, "nested deeper than 32"),
        ("[" * 100_000, "nested deeper"),
        ("{", "Expecting property name"),
        ("", "Expecting value"),
        (b"\xff{}", "not UTF-8"),
        (b'{"a": "\xc3"}', "not UTF-8"),
    ],
)
def test_decode_json_refuses(text: str | bytes, why: str) -> None:
    with pytest.raises(JsonError, match=why):
        decode_json(text)


def test_decode_json_accepts_plain_json() -> None:
    assert decode_json(b'{"qty": "0.001", "n": 1, "f": 0.5, "l": [true, null]}') == {
        "qty": "0.001",
        "n": 1,
        "f": 0.5,
        "l": [True, None],
    }
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert decode_json(nested) == json.loads(nested)


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        ('{"a": "' + "[" * 100 + '"}', False),  # brackets inside a string do not nest
        ('{"a": "\\"' + "[" * 100 + '"}', False),  # nor after an escaped quote
        ('"' + "[" * 100, False),  # an unterminated string runs to the end
        ('["\\\\", ' + "[" * 40 + "]" * 40 + "]", True),  # an escaped backslash ends before the quote
        ("[]" * 100_000, False),
        ("[" * 32 + "]" * 32, False),
        ("[" * 33, True),
    ],
)
def test_depth_check(text: str, deeper: bool) -> None:
    assert json_depth_exceeds(text) is deeper


@given(
    st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_depth_check_agrees_with_the_structure(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    text = json.dumps(value)
    for limit in range(depth(value) + 1):
        assert json_depth_exceeds(text, limit) is (depth(value) > limit)
