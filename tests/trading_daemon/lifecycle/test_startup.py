"""Which start-up failures are waited out and which are configuration errors, and what each one asks for.
(The runner itself is exercised against the paper exchange in tests/trading_daemon/test_service_resilience.py.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.http11 import Response

from trading_daemon.errors import classify
from trading_daemon.exchange.errors import error_for
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitSubscriptionError
from trading_daemon.lifecycle.startup import (
    StartupError,
    StartupRunner,
    StartupStopped,
    config_error_hint,
)
from trading_daemon.resilience.circuit_breaker import CircuitBreakerError, CircuitState


def _handshake(status: int) -> InvalidStatus:
    return InvalidStatus(Response(status, "", Headers()))


@pytest.mark.parametrize(
    "exc",
    [
        error_for(None, "unavailable", http_status=503),
        error_for(10016, "server error"),
        error_for(10006, "too many visits"),
        error_for(10002, "timestamp"),
        error_for(None, "access too frequent", http_status=403),  # an IP ban lifts
        CircuitBreakerError("bybit_market", 12.0, CircuitState.OPEN),
        ConnectionRefusedError("refused"),
        TimeoutError(),
        _handshake(502),
    ],
    ids=repr,
)
def test_transient_failures_are_waited_out(exc: BaseException) -> None:
    assert classify(exc).retry
    assert config_error_hint(exc) is None


@pytest.mark.parametrize(
    ("exc", "hint"),
    [
        (error_for(10003, "API key is invalid."), "BYBIT_API_KEY"),
        (error_for(10004, "error sign!"), "BYBIT_API_KEY"),
        (error_for(10001, "params error: symbol 'XRPUSDT' is not listed"), "TRADING_PAIRS"),
        (BybitSubscriptionError("error:handler not found,topic:kline.1.XRPUSDT"), "TRADING_PAIRS"),
        (error_for(None, "not found", http_status=404), "BYBIT_REST_URL"),
        (_handshake(404), "BYBIT_WS_PUBLIC_URL"),
        (InvalidURI("htp://x", "scheme isn't ws or wss"), "BYBIT_WS_PUBLIC_URL"),
    ],
    ids=repr,
)
def test_configuration_errors_are_not_retried(exc: BaseException, hint: str) -> None:
    assert not classify(exc).retry
    assert hint in (config_error_hint(exc) or "")


def test_an_open_breaker_is_waited_out_to_its_trial() -> None:
    after_s = classify(CircuitBreakerError("bybit_market", 12.0, CircuitState.OPEN)).after_s
    assert after_s is not None and after_s > 12.0
    assert classify(error_for(None, "unavailable", http_status=503)).after_s is None


async def test_runner_retries_transient_failures_and_stops_on_the_rest() -> None:
    stop = asyncio.Event()
    runner = StartupRunner(stop, initial_backoff_s=0.01, max_backoff_s=0.02)
    failures = [error_for(None, "unavailable", http_status=503), TimeoutError()]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "up"

    assert await runner.run("flaky", flaky) == "up" and runner.failures == 2

    async def refused() -> None:
        raise error_for(10003, "API key is invalid.")

    with pytest.raises(StartupError, match=r"'credentials' failed and retrying cannot help.*10003"):
        await runner.run("credentials", refused)

    async def bug() -> None:
        raise KeyError("a bug stays a bug")

    with pytest.raises(KeyError):
        await runner.run("buggy", bug)
    stop.set()
    with pytest.raises(StartupStopped, match="stopped while starting"):
        await runner.run("late", flaky)


def test_runner_checks_its_backoff() -> None:
    with pytest.raises(ValueError, match="0 < initial <= max"):
        StartupRunner(asyncio.Event(), initial_backoff_s=2.0, max_backoff_s=1.0)


MAINTENANCE_PAGE = b"<!DOCTYPE html><html><body><h1>We'll be back soon</h1></body></html>"


class FlakyVenue:
    """A tiny venue on an ephemeral port: `/v5/market/time` answers as Bybit does; `/v5/market/kline`
    answers `html_replies` times with an HTML page and HTTP 200 (a CDN or a maintenance proxy), then JSON.
    With `time_html` the clock request gets the page too: a URL that is no Bybit venue at all."""

    def __init__(self, html_replies: int, *, time_html: bool = False) -> None:
        self.html_left = html_replies
        self.time_html = time_html
        self.kline_requests = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> FlakyVenue:
        app = web.Application()
        app.router.add_get("/v5/market/time", self._time)
        app.router.add_get("/v5/market/kline", self._kline)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @staticmethod
    def _envelope(result: dict[str, Any]) -> web.Response:
        now_ms = time.time_ns() // 1_000_000
        body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms}
        return web.json_response(body)

    async def _time(self, request: web.Request) -> web.Response:
        if self.time_html:
            return web.Response(body=MAINTENANCE_PAGE, content_type="text/html")
        now_ns = time.time_ns()
        return self._envelope({"timeSecond": str(now_ns // 10**9), "timeNano": str(now_ns)})

    async def _kline(self, request: web.Request) -> web.Response:
        self.kline_requests += 1
        if self.html_left > 0:
            self.html_left -= 1
            return web.Response(body=MAINTENANCE_PAGE, content_type="text/html")
        minute = (time.time_ns() // 1_000_000 // 60_000 - 3) * 60_000
        rows = [[str(minute - i * 60_000), "100", "101", "99", "100.5", "3", "301.5"] for i in range(3)]
        return self._envelope({"symbol": request.query["symbol"], "category": "linear", "list": rows})


async def test_an_html_page_from_a_venue_that_answered_is_waited_out() -> None:
    """The clock request is answered correctly; the kline load then meets an HTML page with HTTP 200
    seven times. That is the venue's bad moment, not a wrong URL: start-up retries and succeeds instead
    of stopping with a configuration error (exit 2, never restarted by systemd)."""
    runner = StartupRunner(asyncio.Event(), initial_backoff_s=0.01, max_backoff_s=0.05)
    async with (
        FlakyVenue(html_replies=7) as venue,
        BybitHttpClient(venue.base_url, backoff_initial_s=0.01, backoff_max_s=0.02) as http,
    ):
        rest = BybitRestClient(http)
        await runner.run("exchange clock", rest.sync_time)
        candles = await runner.run("candles BTCUSDT", lambda: rest.get_klines("BTCUSDT", limit=4))
    assert [c.symbol for c in candles] == ["BTCUSDT"] * 3
    assert venue.kline_requests == 8
    assert runner.failures >= 1  # the client's own retries took some pages, the runner the rest


async def test_an_html_page_from_a_url_that_never_answered_is_a_configuration_error() -> None:
    runner = StartupRunner(asyncio.Event(), initial_backoff_s=0.01, max_backoff_s=0.05)
    async with (
        FlakyVenue(html_replies=0, time_html=True) as venue,
        BybitHttpClient(venue.base_url, backoff_initial_s=0.01, backoff_max_s=0.02) as http,
    ):
        with pytest.raises(
            StartupError, match=r"not a Bybit envelope.*check EXCHANGE and the BYBIT_REST_URL"
        ):
            await runner.run("exchange clock", BybitRestClient(http).sync_time)
