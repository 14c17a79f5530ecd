"""Bybit v5 request authentication (docs/exchange_protocol.md §2): HMAC-SHA256 over the exact bytes received.

REST: ``hex(HMAC_SHA256(secret, timestamp + api_key + recv_window + payload))`` where ``payload`` is the
raw query string (GET, as on the request line: not decoded, not re-ordered) or the raw body (POST).
Private WebSocket: ``hex(HMAC_SHA256(secret, "GET/realtime" + expires))``.

One allowance: ccxt signs the URL-decoded form of a query it sends percent-encoded
(docs/exchange_protocol.md §11), and the paper exchange must accept ccxt unchanged. So a GET whose raw query fails is
checked once more against its percent-decoded text; parameter order still has to match what was sent,
and a query without escapes has only one form, so this widens nothing for pybit-style requests. Checks run in the order of
§2.3 so that each failure maps to one retCode: key (10003), time window (10002), signature (10004).

Header values are client input like any other: timestamps and windows must be ASCII integers (the number
grammar of :mod:`exchange_sim.wire`), and a signature that is not 64 hex digits fails as a wrong one does.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from exchange_sim.wire import integer_text, shown

DEFAULT_RECV_WINDOW = 5000
MAX_CLOCK_LEAD_MS = 1000  # a request may be stamped at most this far ahead of the server (§2.3)

API_KEY_INVALID = 10003
TIMESTAMP_INVALID = 10002
SIGNATURE_INVALID = 10004
_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


def sign(secret: str, message: str | bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``message`` under ``secret`` (both UTF-8)."""
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def rest_prehash(timestamp: str, api_key: str, recv_window: str, payload: str | bytes) -> bytes:
    """The signed string of a REST request (§2.2), as bytes."""
    head = f"{timestamp}{api_key}{recv_window}".encode()
    return head + (payload.encode() if isinstance(payload, str) else payload)


def ws_auth_signature(secret: str, expires: int | str) -> str:
    """The private WebSocket ``auth`` signature over ``"GET/realtime" + expires`` (§6.2)."""
    return sign(secret, f"GET/realtime{expires}")


def signature_matches(given: object, expected: str) -> bool:
    """Constant-time check of a client's signature (64 hex digits, any case) against ``expected``."""
    if not isinstance(given, str) or not _HEX_SIGNATURE.fullmatch(given):
        return False
    return hmac.compare_digest(given.lower().encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class AuthFailure(Exception):
    """A rejected signature check: the retCode and the message for the envelope."""

    ret_code: int
    ret_msg: str


def verify_rest(
    headers: Mapping[str, str],
    payload: bytes,
    secrets: Mapping[str, str],
    now_ms: int,
    *,
    is_query: bool = False,
) -> str:
    """Check a private REST request; returns its API key or raises :class:`AuthFailure`.

    ``payload`` is the raw body, or the raw query string with ``is_query=True``.
    """
    api_key = headers.get("X-BAPI-API-KEY", "")
    if not api_key:
        raise AuthFailure(API_KEY_INVALID, "API key is invalid. (X-BAPI-API-KEY header missing)")
    secret = secrets.get(api_key)
    if secret is None:
        raise AuthFailure(API_KEY_INVALID, "API key is invalid.")
    timestamp = headers.get("X-BAPI-TIMESTAMP", "")
    recv_header = headers.get("X-BAPI-RECV-WINDOW")
    recv_text = recv_header if recv_header is not None else ""
    ts = integer_text(timestamp)
    window = integer_text(recv_text) if recv_text else DEFAULT_RECV_WINDOW
    if ts is None or window is None:
        raise AuthFailure(
            TIMESTAMP_INVALID,
            f"invalid request, X-BAPI-TIMESTAMP {shown(timestamp)} and X-BAPI-RECV-WINDOW {shown(recv_text)} "
            "must be integers in ms (ASCII digits)",
        )
    if window <= 0:
        raise AuthFailure(TIMESTAMP_INVALID, f"invalid request, recv_window[{window}] must be positive")
    if not now_ms - window <= ts < now_ms + MAX_CLOCK_LEAD_MS:
        raise AuthFailure(
            TIMESTAMP_INVALID,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{ts}],server_timestamp[{now_ms}],recv_window[{window}]",
        )
    given = headers.get("X-BAPI-SIGN", "")
    candidates = [payload]
    if is_query and b"%" in payload:
        candidates.append(unquote_to_bytes(payload))
    if not any(
        signature_matches(given, sign(secret, rest_prehash(timestamp, api_key, recv_text, c)))
        for c in candidates
    ):
        raise AuthFailure(
            SIGNATURE_INVALID,
            "error sign! origin_string["
            + rest_prehash(timestamp, api_key, recv_text, payload).decode(errors="replace")
            + "]",
        )
    return api_key


def verify_ws_auth(args: object, secrets: Mapping[str, str], now_ms: int) -> str | None:
    """Check private WebSocket ``auth`` args ``[api_key, expires, signature]``; the key, or ``None``.

    ``expires`` may be an integer or a decimal string (pybit sends one, ccxt the other) and must lie in
    the future; the reply to a failure does not say which check failed, as on Bybit.
    """
    if not isinstance(args, list) or len(args) != 3:
        return None
    api_key, expires, signature = args
    if not isinstance(api_key, str) or not isinstance(signature, str):
        return None
    secret = secrets.get(api_key)
    if secret is None:
        return None
    expires_ms = integer_text(expires)
    if expires_ms is None or expires_ms <= now_ms:
        return None
    if not signature_matches(signature, ws_auth_signature(secret, str(expires))):
        return None
    return api_key
