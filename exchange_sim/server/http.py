"""REST plumbing shared by the public, private and admin routes: envelope, parameter parsing, state key.

Business errors (:class:`~exchange_sim.errors.ExchangeError`) become HTTP 200 envelopes with their retCode
and ``result: {}`` (BYBIT_V5.md §1.3); parameter problems are retCode 10001 with a text naming the
parameter, in the ``params error: …`` style of Bybit's live messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.instruments import parse_decimal

if TYPE_CHECKING:
    from exchange_sim.server.app import ServerState

STATE: web.AppKey[ServerState] = web.AppKey("exchange_sim_state")
_CATEGORIES = ("linear", "inverse", "spot", "option")


def state_of(request: web.Request) -> ServerState:
    """The server state of the app serving ``request``."""
    return request.app[STATE]


def envelope(
    result: Mapping[str, Any] | None, now_ms: int, ret_code: int = 0, ret_msg: str = "OK"
) -> dict[str, Any]:
    """Bybit's response envelope; ``result`` is ``{}`` on errors."""
    return {
        "retCode": int(ret_code),
        "retMsg": ret_msg,
        "result": dict(result) if result is not None and not ret_code else {},
        "retExtInfo": {},
        "time": now_ms,
    }


def json_body(payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> web.Response:
    """An HTTP 200 JSON response (compact, like Bybit's)."""
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")),
        content_type="application/json",
        headers=dict(headers or {}),
    )


def params_error(text: str) -> ExchangeError:
    """A 10001 error with Bybit's ``params error:`` prefix."""
    return ExchangeError(RetCode.PARAMS_ERROR, f"params error: {text}")


class Params:
    """Typed access to request parameters (query string values or JSON body fields)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def text(
        self, name: str, *, required: bool = False, choices: tuple[str, ...] | None = None
    ) -> str | None:
        """A string parameter; empty counts as absent."""
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise params_error(f"{name} is required")
            return None
        if not isinstance(value, str):
            raise params_error(f"{name} must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise params_error(f"{name} invalid: {value!r} (one of {', '.join(choices)})")
        return value

    def integer(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        """An integer parameter (JSON integer or decimal string) within ``[low, high]``."""
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise params_error(f"{name} must be an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise params_error(f"{name} must be an integer, got {value!r}") from None
        if (low is not None and number < low) or (high is not None and number > high):
            raise params_error(f"{name} {number} out of range [{low}, {high}]")
        return number

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        """A decimal-string parameter."""
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise params_error(f"{name} is required")
            return None
        return parse_decimal(name, value)

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean (JSON boolean; ``"true"``/``"false"`` strings are accepted too)."""
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return bool(value == "true")
        raise params_error(f"{name} must be a boolean, got {value!r}")

    def linear(self, *, required: bool = True) -> None:
        """Check ``category``: this exchange serves ``linear`` only."""
        category = self.text("category", required=required, choices=_CATEGORIES)
        if category is not None and category != "linear":
            raise params_error(f"category {category!r} is not served by the paper exchange (linear only)")

    def category_or_empty(self) -> bool:
        """``True`` for linear (or absent), ``False`` for another valid category (empty list answers)."""
        category = self.text("category", choices=_CATEGORIES)
        return category in (None, "linear")


def paginate(items: list[Any], limit: int, cursor: str | None) -> tuple[list[Any], str]:
    """One page of ``items`` and the next cursor (percent-encoded, ``""`` when there are no more)."""
    offset = 0
    if cursor:
        text = cursor.replace("%3D", "=").replace("%26", "&")
        if not text.startswith("page_args=") or not text[10:].rstrip("&").isdigit():
            raise params_error(f"cursor {cursor!r} is not a cursor this exchange returned")
        offset = int(text[10:].rstrip("&"))
    page = items[offset : offset + limit]
    nxt = offset + limit
    return page, (f"page_args%3D{nxt}%26" if nxt < len(items) else "")
