"""Request signing: docs/exchange_protocol.md §2.4 test vectors and every authentication rejection path."""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import pytest

from exchange_sim.config import AccountConfig, SimConfig
from exchange_sim.server.app import SimServer
from exchange_sim.server.signing import rest_prehash, sign, verify_rest, verify_ws_auth, ws_auth_signature

KEY = "XkTestApiKey0001"
SECRET = "TestSecretNotReal0123456789abcdefABCDEF"
TS = "1700000000000"
COMPACT = (
    '{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001","price":"30000",'
    '"timeInForce":"GTC","orderLinkId":"demo-0001"}'
)
SPACED = (
    '{"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.001", '
    '"price": "30000", "timeInForce": "GTC", "orderLinkId": "demo-0001"}'
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
        (SPACED, "5d7dbf3bee9c253618cd549ffc050e1e4a6d15e9c626ccb25ad3d8717130be95"),
    ],
)
def test_rest_vectors(payload: str, expected: str) -> None:
    assert sign(SECRET, rest_prehash(TS, KEY, "5000", payload)) == expected
    headers = {
        "X-BAPI-API-KEY": KEY,
        "X-BAPI-TIMESTAMP": TS,
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": expected,
    }
    assert verify_rest(headers, payload.encode(), {KEY: SECRET}, int(TS) + 10) == KEY


def test_ws_auth_vector_accepts_int_and_string_expires() -> None:
    expected = "cf3ad06b33d1bb93263db01d81082c29c56dbac823cdbda178be1e610f0c979a"
    assert ws_auth_signature(SECRET, 1700000001000) == expected
    now = 1700000000000
    assert verify_ws_auth([KEY, 1700000001000, expected], {KEY: SECRET}, now) == KEY
    assert verify_ws_auth([KEY, "1700000001000", expected], {KEY: SECRET}, now) == KEY
    assert verify_ws_auth([KEY, 1700000001000, expected], {KEY: SECRET}, 1700000001000) is None  # expired
    assert verify_ws_auth([KEY, 1700000001000, "0" * 64], {KEY: SECRET}, now) is None
    assert verify_ws_auth(["nope", 1700000001000, expected], {KEY: SECRET}, now) is None
    assert verify_ws_auth([KEY, 1700000001000], {KEY: SECRET}, now) is None


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict:
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 200
        return await resp.json()


def _headers(
    query: str, ts: int | None = None, key: str = KEY, secret: str = SECRET, window: str = "5000"
) -> dict:
    stamp = str(ts if ts is not None else int(time.time() * 1000))
    return {
        "X-BAPI-API-KEY": key,
        "X-BAPI-TIMESTAMP": stamp,
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": sign(secret, stamp + key + window + query),
    }


async def test_rejections_in_documented_order(sim, session) -> None:
    url = f"{sim.base_url}/v5/order/realtime?category=linear&symbol=BTCUSDT"
    query = "category=linear&symbol=BTCUSDT"
    assert (await _get(session, url, {}))["retCode"] == 10003
    assert (await _get(session, url, _headers(query, key="unknown")))["retCode"] == 10003
    stale = int(time.time() * 1000) - 6000
    body = await _get(session, url, _headers(query, ts=stale))
    assert body["retCode"] == 10002 and body["result"] == {}
    assert re.search(rf"req_timestamp\[{stale}\],server_timestamp\[\d+\],recv_window\[5000\]", body["retMsg"])
    ahead = int(time.time() * 1000) + 1500
    assert (await _get(session, url, _headers(query, ts=ahead)))["retCode"] == 10002
    # A wider recv window admits the stale request: the window is the client's to choose.
    assert (await _get(session, url, _headers(query, ts=stale, window="10000")))["retCode"] == 0
    wrong = _headers(query, secret="not-the-secret")
    assert (await _get(session, url, wrong))["retCode"] == 10004
    # Bad key + bad time + bad signature: the key check wins; bad time + bad signature: time wins.
    assert (await _get(session, url, _headers(query, ts=stale, key="unknown")))["retCode"] == 10003
    assert (await _get(session, url, _headers(query, ts=stale, secret="x")))["retCode"] == 10002
    assert (await _get(session, url, _headers(query)))["retCode"] == 0


async def test_query_is_verified_as_sent_not_reordered(sim, session) -> None:
    url = f"{sim.base_url}/v5/order/realtime?symbol=BTCUSDT&category=linear"
    assert (await _get(session, url, _headers("symbol=BTCUSDT&category=linear")))["retCode"] == 0
    assert (await _get(session, url, _headers("category=linear&symbol=BTCUSDT")))["retCode"] == 10004


@pytest.mark.parametrize("body", [COMPACT.replace("30000", "63000"), SPACED.replace("30000", "63000")])
async def test_post_body_is_verified_byte_for_byte(sim, session, body: str) -> None:
    headers = {**_headers(body), "Content-Type": "application/json"}
    async with session.post(f"{sim.base_url}/v5/order/create", data=body, headers=headers) as resp:
        reply = await resp.json()
    assert reply["retCode"] == 0, reply
    assert reply["result"]["orderLinkId"] == "demo-0001"
    # The same JSON re-serialised differently no longer matches the signature.
    other = json.dumps(json.loads(body), indent=1)
    async with session.post(f"{sim.base_url}/v5/order/create", data=other, headers=headers) as resp:
        assert (await resp.json())["retCode"] == 10004


async def test_get_with_body_is_http_403(sim, session) -> None:
    query = "category=linear&symbol=BTCUSDT"
    async with session.get(
        f"{sim.base_url}/v5/order/realtime?{query}", headers=_headers(query), data=b"{}"
    ) as resp:
        assert resp.status == 403


async def test_invalid_json_body_is_10001(sim, session) -> None:
    body = "{not json"
    headers = {**_headers(body), "Content-Type": "application/json"}
    async with session.post(f"{sim.base_url}/v5/order/create", data=body, headers=headers) as resp:
        reply = await resp.json()
    assert reply["retCode"] == 10001 and "JSON" in reply["retMsg"]


async def test_percent_encoded_query_signed_raw_or_decoded(sim, session) -> None:
    """pybit signs what it sends; ccxt signs the decoded form of an encoded query: both are accepted."""
    raw = "category=linear&cursor=page_args%3D0%26&symbol=BTCUSDT"
    decoded = "category=linear&cursor=page_args=0&&symbol=BTCUSDT"
    url = f"{sim.base_url}/v5/order/history?{raw}"
    assert (await _get(session, url, _headers(raw)))["retCode"] == 0
    assert (await _get(session, url, _headers(decoded)))["retCode"] == 0
    assert (await _get(session, url, _headers("symbol=BTCUSDT&category=linear&cursor=page_args=0&")))[
        "retCode"
    ] == 10004


async def test_accelerated_clock_checks_requests_against_the_chosen_clock(session) -> None:
    query = "accountType=UNIFIED"
    for auth_clock, expected in (("exchange", 10002), ("wall", 0)):
        config = SimConfig(port=0, speed=1000, auth_clock=auth_clock, accounts=(AccountConfig(KEY, SECRET),))
        async with SimServer(config) as server:
            await asyncio.sleep(0.05)  # the exchange clock is now ~50 s ahead of the wall clock
            url = f"{server.base_url}/v5/account/wallet-balance?{query}"
            assert (await _get(session, url, _headers(query)))["retCode"] == expected
    with pytest.raises(ValueError, match="auth_clock"):
        SimConfig(auth_clock="local")
