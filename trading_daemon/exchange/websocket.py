"""Bybit v5 WebSocket clients: the public linear stream and the private stream (§5, §6).

One connection per client, kept alive by a supervisor task:

* JSON `{"op":"ping"}` every 20 s; no pong within 10 s, or no frame at all for `silence_timeout_s`,
  means the socket is dead (§8.2) and it is dropped.
* After a drop: call `on_disconnect` at once (the owner marks its state stale, before anything of a
  new connection can arrive), then wait (the daemon's `Backoff`, longer if the failure says so:
  `trading_daemon.errors`), reconnect, re-authenticate (private), resubscribe every tracked topic, then
  call `on_reconnect` so the owner can reconcile over REST (the private stream does not replay what was
  missed, §6.3). The backoff restarts after a successful reconnect.
* Data frames are decoded with msgspec into the `messages.BybitWs*` struct for their topic and handed
  to that topic's handler, in arrival order, on the reader task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import msgspec
import structlog
import websockets
from websockets.asyncio.client import ClientConnection

from trading_daemon.errors import Backoff, classify
from trading_daemon.exchange.constants import (
    WS_AUTH_EXPIRES_MS,
    WS_BACKOFF_FACTOR,
    WS_BACKOFF_INITIAL_S,
    WS_BACKOFF_MAX_S,
    WS_MAX_ARGS_CHARS,
    WS_PING_INTERVAL_S,
    WS_PONG_TIMEOUT_S,
    WS_SILENCE_TIMEOUT_S,
    WS_SUBSCRIBE_BATCH,
)
from trading_daemon.exchange.errors import BybitAuthError, BybitSubscriptionError
from trading_daemon.exchange.http import wall_clock_ms, ws_auth_signature
from trading_daemon.exchange.messages import (
    BybitWsExecutions,
    BybitWsFrame,
    BybitWsKlines,
    BybitWsOrderbook,
    BybitWsOrders,
    BybitWsPositions,
    BybitWsTicker,
    BybitWsTrades,
    BybitWsWallet,
)
from trading_daemon.exchange.parsing import (
    parse_ws_executions,
    parse_ws_orders,
    parse_ws_positions,
    parse_ws_wallet,
)
from trading_daemon.exchange.records import (
    BybitExecutionReport,
    BybitOrderReport,
    BybitPositionReport,
    BybitWalletBalance,
)

log = structlog.get_logger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]
Hook = Callable[[], Awaitable[None] | None]

# First segment of the topic → wire struct (`order.linear` and `order` share one).
_TOPIC_KINDS: dict[str, type[msgspec.Struct]] = {
    "orderbook": BybitWsOrderbook,
    "publicTrade": BybitWsTrades,
    "kline": BybitWsKlines,
    "tickers": BybitWsTicker,
    "order": BybitWsOrders,
    "execution": BybitWsExecutions,
    "position": BybitWsPositions,
    "wallet": BybitWsWallet,
}
_DECODERS = {prefix: msgspec.json.Decoder(kind) for prefix, kind in _TOPIC_KINDS.items()}
_frame_decoder = msgspec.json.Decoder(BybitWsFrame)
_DROP_LOG_INTERVAL_S = 60.0  # dropped frames: one log line per (reason, topic) and interval
_DROP_LOG_MAX_KEYS = 256


__all__ = [
    "BybitPrivateWebSocket",
    "BybitPublicWebSocket",
    "BybitSubscriptionError",  # defined in exchange.errors; imported from here too
    "BybitWebSocket",
    "batches",
]


def batches(topics: Sequence[str], size: int, max_chars: int = WS_MAX_ARGS_CHARS) -> list[list[str]]:
    """Split topics into subscribe requests of at most `size` topics and `max_chars` characters."""
    out: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for topic in topics:
        if current and (len(current) >= size or chars + len(topic) > max_chars):
            out.append(current)
            current, chars = [], 0
        current.append(topic)
        chars += len(topic)
    if current:
        out.append(current)
    return out


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if inspect.isawaitable(value):
        await value


class BybitWebSocket:
    """A reconnecting Bybit WebSocket connection with tracked topic subscriptions."""

    def __init__(
        self,
        url: str,
        *,
        on_reconnect: Hook | None = None,
        on_disconnect: Hook | None = None,
        ping_interval_s: float = WS_PING_INTERVAL_S,
        pong_timeout_s: float = WS_PONG_TIMEOUT_S,
        silence_timeout_s: float = WS_SILENCE_TIMEOUT_S,
        backoff_initial_s: float = WS_BACKOFF_INITIAL_S,
        backoff_max_s: float = WS_BACKOFF_MAX_S,
        subscribe_batch: int = WS_SUBSCRIBE_BATCH,
        ack_timeout_s: float = 10.0,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.on_reconnect = on_reconnect
        self.on_disconnect = on_disconnect
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.silence_timeout_s = silence_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.backoff = Backoff(backoff_initial_s, backoff_max_s, factor=WS_BACKOFF_FACTOR)
        self.subscribe_batch = subscribe_batch
        self.ack_timeout_s = ack_timeout_s
        self.open_timeout_s = open_timeout_s
        self.reconnects = 0
        self._handlers: dict[str, Handler] = {}
        self._pending: dict[str, asyncio.Future[BybitWsFrame]] = {}
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._last_rx = 0.0
        self._ping_sent: float | None = None
        # Told of every frame `_dispatch` drops unrouted, as (reason, topic): the daemon counts them.
        self.on_frame_dropped: Callable[[str, str], None] | None = None
        self._drops_logged: dict[tuple[str, str], list[float]] = {}  # (reason, topic) → [last log, since]

    # --- public API -------------------------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        """Every tracked topic (resubscribed after each reconnect)."""
        return list(self._handlers)

    @property
    def connected(self) -> bool:
        """Whether the socket is up, authenticated and subscribed."""
        return self._connected.is_set()

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until the connection is (again) up."""
        await asyncio.wait_for(self._connected.wait(), within)

    async def start(self) -> None:
        """Connect, authenticate, subscribe tracked topics, and supervise the connection.

        Raises if the first connection fails; later drops are repaired in the background.
        """
        if self._supervisor is not None:
            raise RuntimeError("already started")
        self._closing = False
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"bybit-ws {self.url}")

    async def close(self) -> None:
        """Stop reconnecting and close the socket."""
        self._closing = True
        self._connected.clear()
        if self._ws is not None:
            await self._ws.close()
        for task in (self._supervisor, self._reader):
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._supervisor = self._reader = self._ws = None

    async def __aenter__(self) -> BybitWebSocket:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def subscribe(self, topics: Iterable[str], handler: Handler) -> None:
        """Track `topics` with `handler` and, if connected, subscribe now and wait for the acks.

        Raises `BybitSubscriptionError` naming a refused topic; refused topics are not tracked. If the
        connection drops meanwhile, the error propagates but the topics stay tracked and are
        subscribed on the reconnect.
        """
        new = [t for t in topics if t not in self._handlers]
        for topic in new:
            self._handlers[topic] = handler
        if self._ws is not None and self._connected.is_set() and new:
            failures = await self._subscribe(self._ws, new)
            if failures:
                raise BybitSubscriptionError("; ".join(failures), endpoint=self.url)

    async def unsubscribe(self, topics: Iterable[str]) -> None:
        """Stop tracking `topics` and unsubscribe them on the live connection."""
        gone = [t for t in topics if self._handlers.pop(t, None) is not None]
        if self._ws is not None and self._connected.is_set() and gone:
            await self._request(self._ws, "unsubscribe", gone)

    async def resync(self, topic: str) -> None:
        """Unsubscribe and subscribe again so the server sends a fresh snapshot (§5.3 gap recovery)."""
        handler = self._handlers.get(topic)
        if handler is None:
            raise KeyError(f"{topic!r} is not subscribed")
        await self.unsubscribe([topic])
        await self.subscribe([topic], handler)

    # --- connection lifecycle ---------------------------------------------------------------------

    async def _on_open(self, ws: ClientConnection) -> None:
        """Hook for subclasses: runs after connecting, before resubscribing (private: auth)."""

    async def _open(self) -> None:
        ws = await websockets.connect(
            self.url, ping_interval=None, open_timeout=self.open_timeout_s, close_timeout=2, max_size=None
        )
        self._ws = ws
        self._last_rx = time.monotonic()
        self._ping_sent = None
        reader = self._reader = asyncio.create_task(self._read(ws))
        try:
            await self._on_open(ws)
            # Loop: a topic tracked while this runs (subscribe() only tracks when not connected) must
            # not be left out until the next reconnect.
            done: set[str] = set()
            while pending := [t for t in self._handlers if t not in done]:
                done.update(pending)
                for failure in await self._subscribe(ws, pending):
                    log.error("bybit ws resubscribe refused", url=self.url, reason=failure)
        except BaseException:
            await ws.close()
            # Let this connection's reader finish now, so that it cannot fail the pending requests of
            # the next connection when it winds down.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            raise
        self._connected.set()

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            assert self._reader is not None and self._ws is not None
            heartbeat = asyncio.create_task(self._heartbeat(self._ws))
            try:
                await asyncio.shield(self._reader)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            self._connected.clear()
            if self._closing:
                return
            log.warning("bybit ws disconnected, reconnecting", url=self.url)
            # Before any reconnect: the snapshots that follow the resubscription must find the owner's
            # state already marked stale, or marking it afterwards would discard them.
            await self._run_hook(self.on_disconnect, "on_disconnect")
            wait_s = self.backoff.delay(0)
            while not self._closing:
                await asyncio.sleep(wait_s)
                try:
                    await self._open()
                except Exception as exc:
                    # Whatever went wrong, the supervisor keeps trying: a socket that was up once is not
                    # given up (even a refused auth may be a venue's bad minute); the policy sets the wait.
                    attempt += 1
                    decision = classify(exc)
                    wait_s = decision.wait_s(self.backoff.delay(attempt))
                    log.warning(
                        "bybit ws reconnect failed", url=self.url, attempt=attempt, error=str(exc),
                        kind=decision.kind.value, retry_in_s=round(wait_s, 2),
                    )  # fmt: skip
                    continue
                attempt = 0  # success resets the backoff
                self.reconnects += 1
                log.info("bybit ws reconnected", url=self.url, topics=len(self._handlers))
                await self._run_hook(self.on_reconnect, "on_reconnect")
                break

    async def _run_hook(self, hook: Hook | None, name: str) -> None:
        if hook is None:
            return
        try:
            await _maybe_await(hook())
        except Exception:  # the owner's bug must not stop the reconnecting
            log.exception("bybit ws hook failed", hook=name, url=self.url)

    async def _heartbeat(self, ws: ClientConnection) -> None:
        """Ping on schedule; drop the socket when a pong is late or nothing arrives at all."""
        tick = min(1.0, self.ping_interval_s / 2, self.pong_timeout_s / 2, self.silence_timeout_s / 2)
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            reason = None
            if self._ping_sent is not None and now - self._ping_sent > self.pong_timeout_s:
                reason = f"no pong within {self.pong_timeout_s}s"
            elif now - self._last_rx > self.silence_timeout_s:
                reason = f"silent for {self.silence_timeout_s}s"
            if reason is not None:
                log.warning("bybit ws connection is dead", url=self.url, reason=reason)
                # Abort rather than close: a dead peer would never answer the closing handshake.
                ws.transport.abort()
                return
            if now - last_ping >= self.ping_interval_s:
                last_ping = now
                if self._ping_sent is None:
                    self._ping_sent = now
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(
                        msgspec.json.encode({"op": "ping", "req_id": f"ping-{next(self._ids)}"}).decode()
                    )

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._last_rx = time.monotonic()
                await self._dispatch(raw)
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("websocket closed"))
            self._pending.clear()

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            frame = _frame_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            self._drop("not_understood", "", raw, str(exc))
            return
        if frame.topic:
            handler = self._handlers.get(frame.topic)
            decoder = _DECODERS.get(frame.topic.split(".", 1)[0])
            if handler is None or decoder is None:
                # Never subscribed, or a late message of one just unsubscribed (a resync).
                self._drop("unsubscribed_topic", frame.topic, raw)
                return
            try:
                message = decoder.decode(raw)
            except msgspec.DecodeError as exc:
                self._drop("malformed_message", frame.topic, raw, str(exc))
                return
            try:
                await _maybe_await(handler(message))
            except Exception:
                log.exception("bybit ws handler failed", topic=frame.topic)
            return
        if frame.op == "pong" or frame.ret_msg == "pong":
            self._ping_sent = None
            return
        if not frame.op:
            self._drop("no_topic_no_op", "", raw)
            return
        future = self._pending.pop(frame.req_id, None) or self._pending.pop(f"op:{frame.op}", None)
        if future is not None and not future.done():
            future.set_result(frame)

    def _drop(self, reason: str, topic: str, raw: str | bytes, error: str = "") -> None:
        """Count a frame that reaches no handler (`on_frame_dropped`) and log it, rate-limited.

        The first drop of each (reason, topic) is logged, later ones at most every
        `_DROP_LOG_INTERVAL_S` with how many were dropped meanwhile; past `_DROP_LOG_MAX_KEYS` pairs
        (a venue inventing topics) new ones are only counted.
        """
        if self.on_frame_dropped is not None:
            try:
                self.on_frame_dropped(reason, topic)
            except Exception:
                log.exception("bybit ws frame-drop listener failed", reason=reason)
        key = (reason, topic[:100])
        now = time.monotonic()
        seen = self._drops_logged.get(key)
        if seen is None:
            if len(self._drops_logged) >= _DROP_LOG_MAX_KEYS:
                return
            self._drops_logged[key] = seen = [now, 0]
        elif now - seen[0] < _DROP_LOG_INTERVAL_S:
            seen[1] += 1
            return
        log.warning(
            "bybit ws frame dropped", url=self.url, reason=reason, topic=key[1], error=error,
            frame=str(raw)[:200], dropped_since_last_log=int(seen[1]),
        )  # fmt: skip
        seen[0], seen[1] = now, 0

    async def _request(self, ws: ClientConnection, op: str, args: list[Any]) -> BybitWsFrame:
        """Send one op and wait for its reply (matched by `req_id`, or by `op` if not echoed)."""
        req_id = f"{op}-{next(self._ids)}"
        future: asyncio.Future[BybitWsFrame] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        self._pending.setdefault(f"op:{op}", future)
        try:
            await ws.send(msgspec.json.encode({"req_id": req_id, "op": op, "args": args}).decode())
            return await asyncio.wait_for(future, self.ack_timeout_s)
        finally:
            self._pending.pop(req_id, None)
            if self._pending.get(f"op:{op}") is future:
                del self._pending[f"op:{op}"]

    async def _subscribe(self, ws: ClientConnection, topics: list[str]) -> list[str]:
        """Subscribe in batches; returns the failure texts (the refused topics are untracked)."""
        replies = await asyncio.gather(
            *(self._request(ws, "subscribe", batch) for batch in batches(topics, self.subscribe_batch))
        )
        failures: list[str] = []
        for batch, reply in zip(batches(topics, self.subscribe_batch), replies, strict=True):
            if reply.success is False:
                failures.append(reply.ret_msg)
                named = [t for t in batch if reply.ret_msg.endswith(f"topic:{t}")]
                for topic in named or batch:
                    self._handlers.pop(topic, None)
        return failures


class BybitPublicWebSocket(BybitWebSocket):
    """The public linear stream: order books, trades, klines, tickers."""

    async def subscribe_orderbook(self, symbol: str, handler: Handler, depth: int = 50) -> str:
        """`orderbook.{depth}.{symbol}`; messages are `BybitWsOrderbook` (snapshot, then deltas)."""
        topic = f"orderbook.{depth}.{symbol}"
        await self.subscribe([topic], handler)
        return topic

    async def subscribe_trades(self, symbol: str, handler: Handler) -> str:
        """`publicTrade.{symbol}`; messages are `BybitWsTrades`."""
        topic = f"publicTrade.{symbol}"
        await self.subscribe([topic], handler)
        return topic

    async def subscribe_klines(self, symbol: str, handler: Handler, interval: str = "1") -> str:
        """`kline.{interval}.{symbol}`; messages are `BybitWsKlines`."""
        topic = f"kline.{interval}.{symbol}"
        await self.subscribe([topic], handler)
        return topic

    async def subscribe_tickers(self, symbol: str, handler: Handler) -> str:
        """`tickers.{symbol}`; messages are `BybitWsTicker` (snapshot, then changed fields only)."""
        topic = f"tickers.{symbol}"
        await self.subscribe([topic], handler)
        return topic


class BybitPrivateWebSocket(BybitWebSocket):
    """The private stream: `order`, `execution`, `position`, `wallet`, authenticated per connection."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        api_secret: str,
        clock: Callable[[], int] = wall_clock_ms,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, **kwargs)
        self.api_key = api_key
        self._secret = api_secret
        self.clock = clock  # pass `BybitHttpClient.now_ms` to sign with the server's clock

    async def _on_open(self, ws: ClientConnection) -> None:
        expires = self.clock() + WS_AUTH_EXPIRES_MS
        signature = ws_auth_signature(self._secret, expires)
        reply = await self._request(ws, "auth", [self.api_key, expires, signature])
        # Decide on `success` only: auth acks carry no retCode (§8.2).
        if reply.success is not True:
            raise BybitAuthError(f"websocket auth refused: {reply.ret_msg!r}", endpoint=self.url)

    async def subscribe_private(
        self,
        *,
        on_order: Handler | None = None,
        on_execution: Handler | None = None,
        on_position: Handler | None = None,
        on_wallet: Handler | None = None,
    ) -> None:
        """Subscribe the all-in-one topics that have a handler (messages: `BybitWsOrders`, …)."""
        for topic, handler in (
            ("order", on_order),
            ("execution", on_execution),
            ("position", on_position),
            ("wallet", on_wallet),
        ):
            if handler is not None:
                await self.subscribe([topic], handler)

    async def subscribe_private_reports(
        self,
        *,
        on_orders: Callable[[list[BybitOrderReport]], Awaitable[None] | None] | None = None,
        on_executions: Callable[[list[BybitExecutionReport]], Awaitable[None] | None] | None = None,
        on_positions: Callable[[list[BybitPositionReport]], Awaitable[None] | None] | None = None,
        on_wallet: Callable[[list[BybitWalletBalance]], Awaitable[None] | None] | None = None,
        on_unreadable: Callable[[str, str], Awaitable[None] | None] | None = None,
    ) -> None:
        """Like `subscribe_private`, with each message parsed into records (`parse_ws_*`): orders with their
        conditional/TP-SL fields, executions of every `execType`, positions with their TP/SL, balances.

        A message whose data cannot be parsed is dropped like any unreadable frame (counted, logged) and
        `on_unreadable(topic, error)` is told: the private stream is not replayed, so the owner should
        reconcile over REST.
        """

        def parsed(topic: str, parse: Callable[[Any], list[Any]], handler: Callable[[Any], Any]) -> Handler:
            async def handle(message: Any) -> None:
                try:
                    records = parse(message)
                except (ValueError, ArithmeticError) as exc:
                    self._drop("unparseable_data", topic, "", str(exc))
                    if on_unreadable is not None:
                        await _maybe_await(on_unreadable(topic, str(exc)))
                    return
                await _maybe_await(handler(records))

            return handle

        for topic, parse, handler in (
            ("order", parse_ws_orders, on_orders),
            ("execution", parse_ws_executions, on_executions),
            ("position", parse_ws_positions, on_positions),
            ("wallet", parse_ws_wallet, on_wallet),
        ):
            if handler is not None:
                await self.subscribe([topic], parsed(topic, parse, handler))
