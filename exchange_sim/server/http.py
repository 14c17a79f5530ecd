"""REST plumbing shared by the public, private and admin routes: envelope, parameter parsing, state key.

Business errors (:class:`~exchange_sim.errors.ExchangeError`) become HTTP 200 envelopes with their retCode
and ``result: {}`` (docs/exchange_protocol.md §1.3); parameter problems are retCode 10001 with
a text naming the parameter, in the ``params error: …`` style of Bybit's live messages. Bad input never
gets an HTTP 5xx:

* :func:`read_body` and :func:`body_params` read a POST body (its ``Content-Encoding`` decoded here, since
  the server runs with aiohttp's ``auto_decompress`` off) and decode it with :func:`exchange_sim.wire.decode_json`;
  :class:`Params` reads every number through the grammar of :mod:`exchange_sim.wire`.
* :func:`error_replies`, the outermost middleware, is the one place a ``/v5`` REST handler's exception
  becomes a reply: an :class:`ExchangeError` its retCode, anything else retCode 10016, logged with its
  traceback (a bug of the paper exchange, never the client's fault) — so a new handler cannot bring 500s back.
* :data:`PROTOCOL_LOG` is the logger given to aiohttp's protocol handler: requests aiohttp itself rejects as
  malformed HTTP (answered 400) are logged there as one INFO line instead of an ERROR with a traceback.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.wire import JsonError, decode_json, integer_text, parse_decimal, parse_integer, shown

if TYPE_CHECKING:
    from exchange_sim.server.app import ServerState

STATE: web.AppKey[ServerState] = web.AppKey("exchange_sim_state")
_CATEGORIES = ("linear", "inverse", "spot", "option")
INTERNAL_ERROR = 10016  # Bybit's "server error": the client may retry, the paper exchange logged a bug
MAX_BODY_BYTES = 1024**2  # aiohttp's client_max_size: a decompressed body may not be larger either
WS_PATHS = ("/v5/public/linear", "/v5/private")

log = structlog.get_logger(__name__)


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
            raise params_error(f"{name} must be a string, got {shown(value)}")
        if choices is not None and value not in choices:
            raise params_error(f"{name} invalid: {shown(value)} (one of {', '.join(choices)})")
        return value

    def integer(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        """An integer parameter (JSON integer or ASCII digit string) within ``[low, high]``."""
        value = self.data.get(name)
        if value is None or value == "":
            return default
        number = parse_integer(name, value)
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
        raise params_error(f"{name} must be a boolean, got {shown(value)}")

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
        number = text[10:-1] if text.endswith("&") else text[10:]
        parsed = integer_text(number) if text.startswith("page_args=") else None
        if parsed is None or parsed < 0:
            raise params_error(f"cursor {shown(cursor)} is not a cursor this exchange returned")
        offset = parsed
    page = items[offset : offset + limit]
    nxt = offset + limit
    return page, (f"page_args%3D{nxt}%26" if nxt < len(items) else "")


# -- reading requests --------------------------------------------------------------------------------


def _inflate(raw: bytes, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(raw, MAX_BODY_BYTES)
    if inflater.unconsumed_tail:
        raise params_error(f"body inflates to more than {MAX_BODY_BYTES} bytes")
    if not inflater.eof:
        raise zlib.error("incomplete compressed data")
    return data


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded from its ``Content-Encoding`` (none, gzip or deflate); 10001 otherwise."""
    try:
        raw = await request.read()
    except web.RequestPayloadError as exc:  # e.g. broken chunked framing
        raise params_error(f"request body could not be read: {exc}") from None
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(raw, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":  # RFC 9110 means zlib-wrapped; some clients send raw deflate
            try:
                return _inflate(raw, zlib.MAX_WBITS)
            except zlib.error:
                return _inflate(raw, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise params_error(f"body is not valid {encoding} data: {exc}") from None
    raise params_error(f"Content-Encoding {shown(encoding)} is not supported (send gzip, deflate or none)")


def body_params(raw: bytes) -> dict[str, Any]:
    """The JSON object of a POST body (empty body: no parameters); 10001 naming what is wrong."""
    if not raw:
        return {}
    try:
        data = decode_json(raw)
    except JsonError as exc:
        raise params_error(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise params_error("body must be a JSON object")
    return data


def raw_query(request: web.Request) -> bytes:
    """The query string exactly as it came on the request line (what a GET signature covers)."""
    return request.raw_path.partition("?")[2].encode("utf-8", "surrogateescape")


# -- failures become replies -------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_replies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn a ``/v5`` REST handler's exception into a Bybit envelope (HTTP 200), never an HTTP 500.

    :class:`ExchangeError` → its retCode and message; any other exception is a bug of the paper exchange:
    retCode 10016 and an ERROR log with the traceback. WebSocket and admin paths are left alone (a socket
    cannot take an HTTP reply once open; the admin API has its own error shape).
    """
    path = request.path
    if not path.startswith("/v5/") or path in WS_PATHS:
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except ExchangeError as exc:
        return json_body(envelope(None, state_of(request).venue.clock.now(), exc.ret_code, exc.ret_msg))
    except Exception as exc:
        log.exception("rest_handler_failed", method=request.method, path=path, error=type(exc).__name__)
        body = envelope(
            None,
            state_of(request).venue.clock.now(),
            INTERNAL_ERROR,
            f"Internal server error ({type(exc).__name__}); the paper exchange logged it",
        )
        return json_body(body)


# -- aiohttp's own log -------------------------------------------------------------------------------


def _client_fault(exc: BaseException | None) -> HttpProcessingError | web.RequestPayloadError | None:
    """The malformed-HTTP exception in ``exc``'s chain (what aiohttp answers 400 itself), if any."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


class _MalformedRequestFilter(logging.Filter):
    """Drops aiohttp's ERROR record for a request it rejected as malformed HTTP; logs one INFO line.

    aiohttp answers such a request 400 and closes the connection, which is right; but it logs each one
    at ERROR with a traceback (``RequestHandler.handle_error``), burying real errors. A failure inside a
    handler still reaches the log unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fault = _client_fault(record.exc_info[1] if record.exc_info else None)
        if fault is None:
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        log.info(
            "malformed_http_request",
            remote=remote,
            error=type(fault).__name__,
            reason=" ".join(str(fault).split())[:200],
        )
        return False


PROTOCOL_LOG = logging.getLogger("exchange_sim.server.protocol")
PROTOCOL_LOG.addFilter(_MalformedRequestFilter())
