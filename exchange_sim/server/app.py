"""The paper exchange's aiohttp application: REST, both WebSockets and the admin API on one port.

:func:`build_app` wires a :class:`~exchange_sim.venue.Venue` to the routes; :class:`SimServer` runs it
in-process (``async with SimServer(config) as server: server.base_url``) or from the CLI. Request flow
for ``/v5`` REST: IP limit (HTTP 403) → injected latency and errors → for private routes the signature
(§2.3 order: key, time, signature) and the per-UID limit (10006, with the ``X-Bapi-Limit*`` headers on
every private reply) → the endpoint → the reply, then the private stream messages it caused (§6.8: REST
reply first), unless a fault withholds or delays the reply. Around all of it, ``http.error_replies`` turns
any exception into an envelope (bad input 10001, a bug 10016, logged): never an HTTP 500.

Scripted request faults (``FaultConfig.request_faults``) act first: a lost request is never processed, a
late one runs the whole flow above after its delay (in a task that outlives a client who gave up: the
server's ``handler_cancellation`` would otherwise drop it with the connection), and a lost reply is
processed and then withheld in :func:`_send`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from exchange_sim.config import RequestFault, SimConfig
from exchange_sim.errors import ExchangeError
from exchange_sim.server import admin, rest_public
from exchange_sim.server.faults import FaultInjector
from exchange_sim.server.http import (
    PROTOCOL_LOG,
    STATE,
    WS_PATHS,
    Params,
    body_params,
    envelope,
    error_replies,
    json_body,
    raw_query,
    read_body,
    state_of,
)
from exchange_sim.server.metrics import SimMetrics
from exchange_sim.server.ratelimit import RateLimiter
from exchange_sim.server.rest_private import ROUTES, Endpoint
from exchange_sim.server.signing import AuthFailure, verify_rest
from exchange_sim.server.ws_private import PrivateHub
from exchange_sim.server.ws_public import PublicHub
from exchange_sim.venue import PrivateMessage, Venue

log = structlog.get_logger(__name__)

SERVICE_ERROR = 10016
RATE_LIMITED = 10006
FAULT_LIMIT_RESET_MS = 1000  # an injected 10006 says the window frees up one second later
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOST_REPLY: web.RequestKey[RequestFault] = web.RequestKey("exchange_sim_lost_reply", RequestFault)


@dataclass
class ServerState:
    """Everything the handlers share."""

    venue: Venue
    faults: FaultInjector
    limiter: RateLimiter
    public: PublicHub
    private: PrivateHub
    auth_now: Callable[[], int]  # the time request timestamps are checked against (SimConfig.auth_clock)
    metrics: SimMetrics
    late_requests: set[asyncio.Task[web.StreamResponse]] = field(default_factory=set)


def auth_clock(venue: Venue) -> Callable[[], int]:
    """The clock request timestamps are checked against: the exchange's, or the wall clock."""
    if venue.config.auth_clock == "wall":
        return lambda: int(time.time() * 1000)
    return venue.clock.now


@web.middleware
async def rest_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Scripted request faults, IP rate limit, injected latency and errors for ``/v5`` REST requests."""
    path = request.path
    if not path.startswith("/v5/") or path in WS_PATHS:
        return await handler(request)
    state = state_of(request)
    fault = state.faults.request_fault(path)
    if fault is not None:
        if fault.mode == "lost_request":
            # Never processed: the client waits, then loses the connection (outcome unknown to it).
            return await _drop_connection(request, fault.hold_ms)
        if fault.mode == "late_request":
            return await _arrive_late(request, handler, fault.delay_ms)
        request[LOST_REPLY] = fault
    return await _guarded(request, handler)


async def _drop_connection(request: web.Request, after_ms: int) -> web.StreamResponse:
    """Withhold the reply ``after_ms``, then close the connection: the client never hears back."""
    await asyncio.sleep(after_ms / 1000)
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)  # never delivered: the transport is gone


async def _arrive_late(request: web.Request, handler: Handler, delay_ms: int) -> web.StreamResponse:
    """Process ``request`` as if it arrived ``delay_ms`` late, even if its client has given up meanwhile."""
    await request.read()  # keep the body: the connection may be gone when the request "arrives"
    state = state_of(request)

    async def later() -> web.StreamResponse:
        await asyncio.sleep(delay_ms / 1000)
        try:
            return await _guarded(request, handler)
        except (ConnectionError, RuntimeError) as exc:
            # Executed; only the answer had nowhere to go (the client timed out and closed).
            log.info("late request answered to a closed connection", path=request.path, error=str(exc))
            return web.Response(status=204)

    task = asyncio.create_task(later(), name=f"late-request {request.path}")
    state.late_requests.add(task)
    task.add_done_callback(state.late_requests.discard)
    return await asyncio.shield(task)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = state_of(request)
    path = request.path
    now = state.venue.clock.now()
    if not state.limiter.check_ip(request.remote or "", now):
        # The IP limit answers 403 with no envelope and no rate-limit headers (§1.5).
        return web.Response(status=403, text="access too frequent")
    if request.method == "GET" and request.body_exists:
        return web.Response(status=403, text="a GET request must not carry a body")
    faults = state.faults
    if faults.applies(path):
        if faults.config.latency_ms:
            await asyncio.sleep(faults.config.latency_ms / 1000)
        kind = faults.error()
        if kind == "http":
            return web.Response(status=503, text="Service Unavailable (injected fault)")
        if kind == "retcode":
            body = envelope(
                None, state.venue.clock.now(), SERVICE_ERROR, "Server error, please retry (injected fault)"
            )
            return json_body(body)
        if kind == "ratelimit":
            # Refused before processing, with the headers Bybit sends: none left until the reset.
            limit = state.limiter.endpoint_limits.get(path, 10)
            now = state.venue.clock.now()
            headers = {
                "X-Bapi-Limit": str(limit),
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(now + FAULT_LIMIT_RESET_MS),
            }
            body = envelope(None, now, RATE_LIMITED, "Too many visits! (injected fault)")
            return json_body(body, headers)
    return await handler(request)


async def _send(
    request: web.Request, response: web.Response, messages: list[PrivateMessage], write: bool
) -> web.StreamResponse:
    """Send ``response`` and publish ``messages`` in the order the faults ask for."""
    state = state_of(request)
    faults = state.faults
    publish = state.venue.private.publish
    lost = request.get(LOST_REPLY)
    if lost is not None:
        publish(messages)  # executed: its stream messages go out, only the reply is lost
        return await _drop_connection(request, lost.hold_ms)
    if faults.applies(request.path) and faults.timeout():
        # The request was processed; the client never hears back (outcome unknown, §8.5).
        publish(messages)
        await asyncio.sleep(faults.config.timeout_ms / 1000)
        if request.transport is not None:
            request.transport.close()
        return response
    if write and faults.config.order_ack_delay_ms:
        publish(messages)
        await asyncio.sleep(faults.config.order_ack_delay_ms / 1000)
        return response
    try:
        await response.prepare(request)
        await response.write_eof()
    finally:
        # Published even if the client went away mid-write: the state change has happened.
        publish(messages)
    return response


def public_handler(fn: Callable[[Venue, Params], dict[str, Any]]) -> Handler:
    """Wrap a public endpoint ``fn(venue, params) -> result``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        venue = state_of(request).venue
        try:
            result = fn(venue, Params(request.query))
            body = envelope(result, venue.clock.now())
        except ExchangeError as exc:
            body = envelope(None, venue.clock.now(), exc.ret_code, exc.ret_msg)
        return await _send(request, json_body(body), [], False)

    return handle


def private_handler(method: str, fn: Endpoint, write: bool) -> Handler:
    """Wrap a private endpoint: signature over the raw query/body, rate limit, errors → envelope."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state = state_of(request)
        venue = state.venue
        raw = await read_body(request) if method == "POST" else raw_query(request)
        try:
            api_key = verify_rest(
                request.headers, raw, venue.secrets, state.auth_now(), is_query=method == "GET"
            )
        except AuthFailure as exc:
            return json_body(envelope(None, venue.clock.now(), exc.ret_code, exc.ret_msg))
        status = state.limiter.check_uid(api_key, request.path, venue.clock.now())
        headers = status.headers() if status is not None else {}
        if status is not None and not status.allowed:
            body = envelope(None, venue.clock.now(), RATE_LIMITED, "Too many visits!")
            return json_body(body, headers)
        messages: list[PrivateMessage] = []
        try:
            data = body_params(raw) if method == "POST" else dict(request.query)
            result, messages = fn(venue, api_key, Params(data))
            body = envelope(result, venue.clock.now())
        except ExchangeError as exc:
            body = envelope(None, venue.clock.now(), exc.ret_code, exc.ret_msg)
        return await _send(request, json_body(body, headers), messages, write)

    return handle


def build_app(venue: Venue, faults: FaultInjector | None = None) -> web.Application:
    """The aiohttp application serving ``venue``."""
    faults = faults if faults is not None else FaultInjector(venue.config.faults, seed=venue.config.seed)
    app = web.Application(middlewares=[error_replies, rest_guard])
    public = PublicHub(venue, faults)
    auth_now = auth_clock(venue)
    private = PrivateHub(venue, faults, auth_now)
    limiter = RateLimiter(venue.config.rate_limits)
    state = ServerState(venue, faults, limiter, public, private, auth_now, SimMetrics(venue))
    app[STATE] = state
    rest_public.register(app, public_handler)

    def orderbook(v: Venue, p: Params) -> dict[str, Any]:
        return rest_public.orderbook(v, p, public.feed)

    app.router.add_get("/v5/market/orderbook", public_handler(orderbook))
    for path, (method, fn, write) in ROUTES.items():
        app.router.add_route(method, path, private_handler(method, fn, write))
    app.router.add_get("/v5/public/linear", public.handle)
    app.router.add_get("/v5/private", private.handle)
    admin.register(app)

    async def lifecycle(app: web.Application) -> Any:
        await venue.start()
        yield
        await venue.stop()

    async def close_websockets(app: web.Application) -> None:
        # Shutdown waits for open connections; WebSockets would otherwise hold it for the full timeout.
        public.disconnect_all()
        private.disconnect_all()
        for task in list(state.late_requests):
            task.cancel()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(close_websockets)
    return app


class SimServer:
    """A running paper exchange: ``await start()``/``await stop()`` or ``async with``.

    ``port=0`` in the config picks a free port; :attr:`base_url` and :attr:`ws_url` then say where it
    listens. ``market_factory`` builds the market source from the venue (e.g. ``LadderMarket``).
    """

    def __init__(
        self,
        config: SimConfig,
        market_factory: Callable[[Venue], Any] | None = None,
    ) -> None:
        self.config = config
        self.venue = Venue(config)
        if market_factory is not None:
            self.venue.attach_market(market_factory(self.venue))
        self.app = build_app(self.venue)
        self.runner: web.AppRunner | None = None
        self.port = config.port

    @property
    def state(self) -> ServerState:
        """The shared server state (faults, limiter, hubs)."""
        return self.app[STATE]

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port``."""
        return f"ws://{self.config.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve."""
        # handler_cancellation: a client that gives up (timeout fault) frees its handler at once.
        # auto_decompress off: http.read_body decodes Content-Encoding, answering what it cannot with 10001.
        self.runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, logger=PROTOCOL_LOG, auto_decompress=False
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.config.host, self.config.port)
        await site.start()
        if self.config.port == 0:
            self.port = self.runner.addresses[0][1]
        log.info("paper exchange listening", url=self.base_url)

    async def stop(self) -> None:
        """Stop serving and release the port."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
