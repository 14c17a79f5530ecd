"""Bad requests get what Bybit answers: a retCode (REST) or a ``success: false`` reply on an open socket.

Each case here was found by fuzzing (tests/exchange_sim/server/test_fuzz.py) and answered with an HTTP 500,
a silently closed WebSocket, or — for numbers Bybit refuses — an order placed anyway.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time

import pytest
from structlog.testing import capture_logs

from exchange_sim.server import rest_public
from exchange_sim.server.signing import sign, ws_auth_signature
from tests.exchange_sim.server.conftest import API_KEY, API_SECRET

ORDER = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.001"}


async def _post_raw(rest, path: str, body: bytes, **headers: str):
    """POST ``body`` exactly as given, signed over those bytes."""
    ts = str(int(time.time() * 1000) + rest.offset_ms)
    signed = {
        "X-BAPI-API-KEY": API_KEY,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": sign(API_SECRET, (ts + API_KEY + "5000").encode() + body),
        "Content-Type": "application/json",
        **headers,
    }
    async with rest.session.post(f"{rest.base_url}{path}", data=body, headers=signed) as resp:
        return resp.status, json.loads(await resp.text())


async def _open_orders(rest) -> list[dict]:
    result = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    return result["list"]


def _assert_refused(status: int, body: dict, code: int, *words: str) -> None:
    assert status == 200, body
    assert body["retCode"] == code and body["result"] == {}, body
    for word in words:
        assert word in body["retMsg"], body


# -- REST: what used to be HTTP 500 ------------------------------------------------------------------


@pytest.mark.parametrize("cursor", ["page_args%3D%C2%B2", "page_args%3D" + "9" * 5000, "page_args%3D-1%26"])
async def test_a_cursor_that_is_not_ascii_digits_is_a_params_error(rest, cursor: str) -> None:
    query = {"category": "linear", "cursor": cursor}
    _assert_refused(
        *(await rest.get("/v5/market/instruments-info", query, signed=False))[::2], 10001, "cursor"
    )
    _assert_refused(*(await rest.get("/v5/order/history", query))[::2], 10001, "cursor")


@pytest.mark.parametrize("signature", ["é" * 64, "０" * 64, "g" * 64, "ab"])
async def test_a_signature_that_is_not_hex_is_a_signature_error(rest, signature: str) -> None:
    headers = rest.headers("category=linear")
    headers["X-BAPI-SIGN"] = signature
    async with rest.session.get(
        f"{rest.base_url}/v5/order/realtime?category=linear", headers=headers
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["retCode"] == 10004, body


@pytest.mark.parametrize(
    "stamp", ["１７００００００００００００", "+1700000000000", "1_700_000_000_000", "9" * 5000]
)
async def test_a_timestamp_that_is_not_ascii_digits_is_a_timestamp_error(rest, stamp: str) -> None:
    headers = rest.headers("category=linear")
    headers["X-BAPI-TIMESTAMP"] = stamp
    async with rest.session.get(
        f"{rest.base_url}/v5/order/realtime?category=linear", headers=headers
    ) as resp:
        body = await resp.json()
    assert body["retCode"] == 10002 and "ASCII" in body["retMsg"], body


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400"])
async def test_non_json_number_literals_are_refused(rest, literal: str) -> None:
    body = json.dumps({**ORDER, "price": "60000", "positionIdx": 0}).replace(
        '"positionIdx": 0', f'"positionIdx": {literal}'
    )
    status, reply = await _post_raw(rest, "/v5/order/create", body.encode())
    _assert_refused(status, reply, 10001, "body is not valid JSON")
    assert await _open_orders(rest) == []


@pytest.mark.parametrize("depth", [33, 100_000])
async def test_a_deeply_nested_body_is_a_params_error(rest, depth: int) -> None:
    body = '{"category": "linear", "x": ' + "[" * depth + "]" * depth + "}"
    status, reply = await _post_raw(rest, "/v5/order/cancel-all", body.encode())
    _assert_refused(status, reply, 10001, "nested deeper than 32")


async def test_a_body_nested_within_the_limit_reaches_the_endpoint(rest) -> None:
    body = json.dumps({**ORDER, "x": json.loads("[" * 31 + "]" * 31)})
    status, reply = await _post_raw(rest, "/v5/order/create", body.encode())
    _assert_refused(status, reply, 10001, "price")  # a Limit order without price: the endpoint's own check


@pytest.mark.parametrize(
    ("encoding", "words"),
    [
        ("gzip", "not valid gzip"),
        ("deflate", "not valid deflate"),
        ("br", "not supported"),
        ("zstd", "not supported"),
    ],
)
async def test_a_body_that_cannot_be_decoded_is_a_params_error(rest, encoding: str, words: str) -> None:
    body = json.dumps({**ORDER, "price": "60000"}).encode()
    status, reply = await _post_raw(rest, "/v5/order/create", body, **{"Content-Encoding": encoding})
    _assert_refused(status, reply, 10001, words)
    assert await _open_orders(rest) == []


async def test_a_gzip_body_is_still_accepted(rest) -> None:
    body = json.dumps({**ORDER, "price": "60000"})
    headers = {**rest.headers(body), "Content-Encoding": "gzip"}
    async with rest.session.post(
        f"{rest.base_url}/v5/order/create", data=gzip.compress(body.encode()), headers=headers
    ) as resp:
        reply = await resp.json()
    assert reply["retCode"] == 0, reply


async def test_a_body_that_is_not_utf8_is_a_params_error(rest) -> None:
    status, reply = await _post_raw(rest, "/v5/order/cancel-all", b'{"category": "linear", "symbol": "\xff"}')
    _assert_refused(status, reply, 10001, "not UTF-8")


async def test_a_handler_bug_is_retcode_10016_and_logged(rest, monkeypatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(rest_public, "ticker_object", broken)
    with capture_logs() as logs:
        status, _, body = await rest.get("/v5/market/tickers", {"category": "linear"}, signed=False)
    _assert_refused(status, body, 10016, "RuntimeError")
    failures = [e for e in logs if e["event"] == "rest_handler_failed"]
    assert failures and failures[0]["log_level"] == "error" and failures[0]["exc_info"] is True
    assert failures[0]["path"] == "/v5/market/tickers"


# -- REST: leniencies Bybit does not have --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("qty", "１２"),
        ("qty", "０.００１"),
        ("qty", " 0.001"),
        ("qty", "0.001\n"),
        ("qty", "1e-3"),
        ("price", "60_000"),
        ("price", "٦٠٠٠٠"),
        ("price", "60000."),
        ("positionIdx", 0.5),
        ("positionIdx", "０"),
        ("positionIdx", " 0"),
        ("positionIdx", True),
    ],
)
async def test_numbers_are_accepted_in_ascii_form_only(rest, field: str, value: object) -> None:
    status, _, body = await rest.post("/v5/order/create", {**ORDER, "price": "60000", field: value})
    _assert_refused(status, body, 10001, field, "ASCII")
    assert await _open_orders(rest) == []


async def test_the_ascii_forms_are_accepted(rest) -> None:
    await rest.ok("POST", "/v5/order/create", {**ORDER, "qty": "0.002", "price": "60000.0", "positionIdx": 0})
    await rest.ok("POST", "/v5/order/create", {**ORDER, "qty": 1, "price": "60000", "positionIdx": "0"})
    assert len(await _open_orders(rest)) == 2


@pytest.mark.parametrize("limit", ["２", " 2", "2_0", "2.0", "0x2"])
async def test_integer_query_parameters_are_ascii_digits_only(rest, limit: str) -> None:
    query = {"category": "linear", "limit": limit}
    status, _, body = await rest.get("/v5/market/instruments-info", query, signed=False)
    _assert_refused(status, body, 10001, "limit")


# -- aiohttp's own 400s stay out of the error log --------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v5/market/time HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /v5/market/time HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /v5/market/time HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
        b"POST /v5/order/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}\r\nzz\r\n\r\n",
    ],
)
async def test_malformed_http_is_answered_400_without_an_error_log(sim, caplog, request_bytes: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection(sim.config.host, sim.port)
        writer.write(request_bytes)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(200), 3)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [e["log_level"] for e in logs if e["event"] == "malformed_http_request"] == ["info"]


# -- WebSocket: what used to close the socket without a reply ----------------------------------------------


async def _still_open(ws) -> None:
    await ws.send({"op": "ping", "req_id": "alive"})
    reply = await ws.recv_until(lambda m: m.get("req_id") == "alive")
    assert reply["op"] in ("ping", "pong")


async def test_public_unsubscribe_with_a_non_string_topic(public_ws) -> None:
    ws = await public_ws()
    await ws.send({"op": "unsubscribe", "req_id": "u", "args": [["x"]]})
    reply = await ws.recv()
    assert reply["success"] is False and reply["op"] == "unsubscribe" and reply["req_id"] == "u"
    assert reply["ret_msg"] == "error:not subscribed,topic:['x']"
    await ws.send({"op": "subscribe", "req_id": "s", "args": [{"topic": "x"}]})
    reply = await ws.recv()
    assert reply["success"] is False and reply["ret_msg"].startswith("error:handler not found,topic:")
    await _still_open(ws)


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"op": "subscribe", "args": ' + "[" * 40 + "]" * 40 + "}",
        '{"op": "ping", "req_id": NaN}',
    ],
)
async def test_undecodable_frames_get_a_reply_on_both_sockets(public_ws, private_ws, frame: str) -> None:
    for ws in (await public_ws(), await private_ws(authenticate=False)):
        await ws.conn.send(frame)
        reply = await ws.recv()
        assert reply["success"] is False and reply["ret_msg"].startswith("Failed to decode incoming data"), (
            reply
        )
        await _still_open(ws)


@pytest.mark.parametrize("signature", ["é" * 64, "٠" * 64, "\ud800"])
async def test_auth_with_a_non_ascii_signature_is_params_error(private_ws, signature: str) -> None:
    ws = await private_ws(authenticate=False)
    expires = int(time.time() * 1000) + 10_000
    await ws.conn.send(json.dumps({"req_id": "a", "op": "auth", "args": [API_KEY, expires, signature]}))
    reply = await ws.recv()
    assert reply["success"] is False and reply["ret_msg"] == "Params Error" and reply["req_id"] == "a"
    await ws.send(
        {"req_id": "b", "op": "auth", "args": [API_KEY, expires, ws_auth_signature(API_SECRET, expires)]}
    )
    assert (await ws.recv())["success"] is True


@pytest.mark.parametrize("expires", ["１" * 14, " 9999999999999", "9_999_999_999_999"])
async def test_auth_expires_must_be_ascii_digits(private_ws, expires: str) -> None:
    ws = await private_ws(authenticate=False)
    await ws.send({"op": "auth", "args": [API_KEY, expires, ws_auth_signature(API_SECRET, expires)]})
    assert (await ws.recv())["ret_msg"] == "Params Error"


async def test_a_ws_handler_bug_is_replied_and_logged(sim, public_ws, private_ws, monkeypatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sim.state.public, "_subscribe", broken)
    monkeypatch.setattr(sim.state.private, "_subscribe", broken)
    for ws in (await public_ws(), await private_ws(authenticate=False)):
        with capture_logs() as logs:
            await ws.send({"op": "subscribe", "req_id": "s", "args": ["order"]})
            reply = await ws.recv()
        assert reply["success"] is False and reply["op"] == "subscribe" and reply["req_id"] == "s"
        assert reply["ret_msg"] == "error:internal error (RuntimeError)"
        failures = [e for e in logs if e["event"] == "ws_request_failed"]
        assert failures and failures[0]["log_level"] == "error" and failures[0]["exc_info"] is True
        await _still_open(ws)
