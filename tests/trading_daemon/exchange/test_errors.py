"""retCodes and HTTP statuses become the documented exception types (§1.4, errors.py)."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from exchange_sim.config import RateLimitConfig
from exchange_sim.server.app import SimServer
from schemas.enums import OrderType, Side
from trading_daemon.exchange.errors import (
    BybitAuthError,
    BybitDuplicateOrderLinkId,
    BybitInsufficientBalance,
    BybitIpBannedError,
    BybitNetworkError,
    BybitOrderNotFound,
    BybitOrderRejected,
    BybitParamError,
    BybitRateLimitError,
    BybitServerError,
    BybitTimestampError,
    error_for,
    should_retry,
)
from trading_daemon.exchange.http import wall_clock_ms
from trading_daemon.exchange.rest import BybitRestClient, validate_order_link_id

from .conftest import make_config, make_http, start_sim


async def test_unknown_key(sim: SimServer) -> None:
    async with make_http(sim.base_url, api_key="NoSuchKey") as http:
        with pytest.raises(BybitAuthError) as info:
            await BybitRestClient(http).get_wallet_balance()
    assert info.value.ret_code == 10003
    assert info.value.endpoint == "/v5/account/wallet-balance"


async def test_bad_signature(sim: SimServer) -> None:
    async with make_http(sim.base_url, api_secret="WrongSecret") as http:
        with pytest.raises(BybitAuthError) as info:
            await BybitRestClient(http).get_open_orders("BTCUSDT")
    assert info.value.ret_code == 10004 and info.value.ret_msg


async def test_no_key_configured(sim: SimServer) -> None:
    async with make_http(sim.base_url, api_key=None, api_secret=None) as http:
        rest = BybitRestClient(http)
        assert await rest.get_tickers("BTCUSDT")  # public calls need no key
        with pytest.raises(BybitAuthError):
            await rest.get_positions()


async def test_clock_ahead_is_fixed_by_the_server_offset(sim: SimServer) -> None:
    """A clock 3 s fast breaks the `< server + 1000` rule; the client re-syncs and resends once."""
    async with make_http(sim.base_url, clock=lambda: wall_clock_ms() + 3_000) as http:
        balance = await BybitRestClient(http).get_wallet_balance()
        assert balance.coins["USDT"].wallet_balance == 100_000
        assert -3_500 < http.time_offset_ms < -2_500


async def test_clock_drift_without_retry_raises(sim: SimServer) -> None:
    async with make_http(sim.base_url, clock=lambda: wall_clock_ms() - 20_000, max_attempts=1) as http:
        with pytest.raises(BybitTimestampError) as info:
            await BybitRestClient(http).get_wallet_balance()
    assert info.value.ret_code == 10002 and "server_timestamp" in info.value.ret_msg


async def test_insufficient_balance(rest: BybitRestClient) -> None:
    with pytest.raises(BybitInsufficientBalance) as info:
        await rest.place_order(
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=Decimal("100"),
            price=Decimal("63000"),
            order_link_id="too-big",
        )
    assert info.value.ret_code == 110007
    assert await rest.get_open_orders("BTCUSDT") == []


async def test_duplicate_order_link_id_on_first_attempt(rest: BybitRestClient) -> None:
    async def place(price: str) -> None:
        await rest.place_order(
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=Decimal("0.01"),
            price=Decimal(price),
            order_link_id="dup-1",
        )

    await place("63000")
    with pytest.raises(BybitDuplicateOrderLinkId) as info:
        await place("63001")  # a first attempt: a genuine reuse of the id, not a retry
    assert info.value.ret_code == 110072


async def test_param_error_and_order_not_found(rest: BybitRestClient) -> None:
    with pytest.raises(BybitParamError) as info:
        await rest.place_order(
            symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal("0.0001")
        )
    assert info.value.ret_code == 10001
    with pytest.raises(BybitOrderNotFound):
        await rest.cancel_order("BTCUSDT", order_link_id="never-placed")
    with pytest.raises(BybitOrderNotFound):
        await rest.amend_order("BTCUSDT", order_link_id="never-placed", price=Decimal("63000"))


async def test_order_link_id_is_checked_locally() -> None:
    """A bad orderLinkId is refused by name before anything is sent: against a closed port the same call
    with a good id fails on the network instead."""
    longest = "Az09_-" + "x" * 30
    assert validate_order_link_id(longest) == longest  # 36 characters, every allowed kind
    for bad in ("a" * 37, "has space", "", "ümlaut", "a/b"):
        with pytest.raises(ValueError, match=r"orderLinkId .* must be 1-36 characters") as info:
            validate_order_link_id(bad)
        assert repr(bad) in str(info.value)
    async with make_http("http://127.0.0.1:1", max_attempts=1) as http:
        rest = BybitRestClient(http)
        order = {
            "symbol": "BTCUSDT",
            "side": Side.BUY,
            "order_type": OrderType.MARKET,
            "qty": Decimal("0.01"),
        }
        with pytest.raises(ValueError, match="orderLinkId 'has space'"):
            await rest.place_order(**order, order_link_id="has space")
        with pytest.raises(BybitNetworkError):
            await rest.place_order(**order, order_link_id="ok-1")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (10003, None, BybitAuthError),
        (10004, None, BybitAuthError),
        (33004, None, BybitAuthError),
        (10002, None, BybitTimestampError),
        (10006, None, BybitRateLimitError),
        (10016, None, BybitServerError),
        (110001, None, BybitOrderNotFound),
        (110010, None, BybitOrderNotFound),
        (110012, None, BybitInsufficientBalance),
        (110094, None, BybitOrderRejected),
        (None, 403, BybitIpBannedError),
        (None, 401, BybitAuthError),
        (None, 429, BybitRateLimitError),
        (None, 503, BybitServerError),
    ],
)
def test_error_mapping(code: int | None, status: int | None, kind: type[Exception]) -> None:
    exc = error_for(code, "text", endpoint="/v5/x", http_status=status)
    assert type(exc) is kind
    assert exc.ret_code == code and exc.endpoint == "/v5/x" and exc.http_status == status


def test_should_retry_only_safe_requests() -> None:
    unknown = error_for(10016, "busy")
    rejected = error_for(10002, "late")
    assert should_retry(unknown, retry_safe=True) and not should_retry(unknown, retry_safe=False)
    assert should_retry(rejected, retry_safe=False)
    assert not should_retry(error_for(None, "ban", http_status=403), retry_safe=True)
    assert not should_retry(error_for(110007, "poor"), retry_safe=True)


async def test_server_clock_jump_is_absorbed() -> None:
    """The exchange clock jumps a minute ahead: the first signed call gets 10002, the re-sync fixes it."""
    server = await start_sim(make_config())
    try:
        async with make_http(server.base_url) as http, aiohttp.ClientSession() as session:
            async with session.post(f"{server.base_url}/sim/clock/advance", json={"ms": 60_000}) as resp:
                assert resp.status == 200
            (position,) = await BybitRestClient(http).get_positions("BTCUSDT")
            assert position.symbol == "BTCUSDT"
            assert 59_000 < http.time_offset_ms < 61_000
    finally:
        await server.stop()


async def test_ip_ban_stops_all_rest_traffic() -> None:
    server = await start_sim(make_config(rate_limits=RateLimitConfig(ip_limit=3, ip_window_ms=5_000)))
    try:
        async with make_http(server.base_url) as http:
            rest = BybitRestClient(http)
            for _ in range(3):
                await rest.get_tickers("BTCUSDT")
            with pytest.raises(BybitIpBannedError) as info:
                await rest.get_tickers("BTCUSDT")
            assert info.value.http_status == 403
            # Further calls fail locally without reaching the server (and extending the ban).
            with pytest.raises(BybitIpBannedError, match="not sending"):
                await rest.get_server_time()
            assert http.banned_until_ms > http.now_ms() + 500_000
    finally:
        await server.stop()
