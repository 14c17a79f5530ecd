"""Private WebSocket ``/v5/private`` (docs/exchange_protocol.md §6): auth, ping, and the order, execution, position
and wallet topics.

Nothing is sent on subscribe (§6.3): messages are pushed as the venue produces them, in the §6.8 order,
to the connections of the account that have subscribed to the topic (all-in-one ``order`` or its
``order.linear`` twin alike). Messages produced while a connection is not authenticated or not
subscribed are not kept for it: the private streams are never replayed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from exchange_sim.server.faults import FaultInjector
from exchange_sim.server.signing import verify_ws_auth
from exchange_sim.server.ws_socket import QueuedSocket, shown_topic
from exchange_sim.venue import PrivateMessage, Venue

TOPICS = {
    "order": "order",
    "order.linear": "order",
    "execution": "execution",
    "execution.linear": "execution",
    "position": "position",
    "position.linear": "position",
    "wallet": "wallet",
}


class PrivateConnection(QueuedSocket):
    """One private connection: its account once authenticated, and the topics it wants."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        super().__init__(ws)
        self.api_key: str | None = None
        self.topics: dict[str, str] = {}  # base topic → topic name as subscribed (sent back as `topic`)
        self.feed: asyncio.Queue[PrivateMessage] | None = None


class PrivateHub:
    """All private connections."""

    def __init__(
        self, venue: Venue, faults: FaultInjector, auth_now: Callable[[], int] | None = None
    ) -> None:
        self.venue = venue
        self.faults = faults
        self.auth_now = auth_now if auth_now is not None else venue.clock.now
        self.connections: set[PrivateConnection] = set()
        venue.tick_hooks.append(self.tick)

    def tick(self, now: int) -> None:
        """Driver hook: disconnect faults."""
        wall = time.monotonic()
        for conn in list(self.connections):
            elapsed = wall - conn.last_fault_roll
            if elapsed >= 1.0:
                conn.last_fault_roll = wall
                if self.faults.ws_disconnect(elapsed):
                    conn.close()

    def disconnect_all(self) -> int:
        """Close every private connection (admin fault); returns how many."""
        for conn in self.connections:
            conn.close()
        return len(self.connections)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The ``/v5/private`` WebSocket endpoint."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = PrivateConnection(ws)
        self.connections.add(conn)
        writer = asyncio.create_task(conn.writer())
        pump: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.ERROR:
                        break
                    continue
                conn.dispatch(
                    msg.data, lambda request, op, req_id: self._on_request(conn, request, op, req_id)
                )
                if conn.api_key is not None and pump is None:
                    pump = asyncio.create_task(self._pump(conn))
        finally:
            self.connections.discard(conn)
            if conn.api_key is not None and conn.feed is not None:
                self.venue.private.unsubscribe(conn.api_key, conn.feed)
            if pump is not None:
                pump.cancel()
            conn.close()
            await writer
        return ws

    async def _pump(self, conn: PrivateConnection) -> None:
        """Move the account's messages to the socket, for the topics this connection subscribed."""
        assert conn.feed is not None
        while True:
            message = await conn.feed.get()
            topic = conn.topics.get(message.topic)
            if topic is None:
                continue
            now = self.venue.clock.now()
            conn.send(
                {"id": f"{uuid.uuid4().hex}", "topic": topic, "creationTime": now, "data": message.data}
            )

    def _on_request(
        self, conn: PrivateConnection, request: dict[str, Any], op: str, req_id: str | None
    ) -> None:
        """Handle one decoded request (see :meth:`QueuedSocket.dispatch`)."""
        if op == "ping":
            conn.send(
                {
                    **({"req_id": req_id} if req_id is not None else {}),
                    "op": "pong",
                    "args": [str(self.venue.clock.now())],
                    "conn_id": conn.conn_id,
                }
            )
        elif op == "auth":
            self._auth(conn, request.get("args"), req_id)
        elif op in ("subscribe", "unsubscribe"):
            self._subscribe(conn, op, request.get("args"), req_id)
        else:
            conn.send(conn.reply(op, req_id, False, "error:invalid op"))

    def _auth(self, conn: PrivateConnection, args: Any, req_id: str | None) -> None:
        if conn.api_key is not None:
            conn.send(conn.reply("auth", req_id, False, "Repeat auth"))
            return
        api_key = verify_ws_auth(args, self.venue.secrets, self.auth_now())
        if api_key is None:
            # Bybit's reply does not say which check failed; the socket stays open for a retry (§6.2).
            conn.send(conn.reply("auth", req_id, False, "Params Error"))
            return
        conn.api_key = api_key
        conn.feed = self.venue.private.subscribe(api_key)
        conn.send(conn.reply("auth", req_id, True, ""))

    def _subscribe(self, conn: PrivateConnection, op: str, args: Any, req_id: str | None) -> None:
        if conn.api_key is None:
            conn.send(conn.reply(op, req_id, False, "Request not authorized"))
            return
        if not isinstance(args, list) or not args:
            conn.send(conn.reply(op, req_id, False, "error:args must be a non-empty list of topics"))
            return
        bases = [TOPICS.get(t) if isinstance(t, str) else None for t in args]
        failure = ""
        for topic, topic_base in zip(args, bases, strict=True):
            if topic_base is None:
                failure = failure or f"error:handler not found,topic:{shown_topic(topic)}"
        if not failure and len(set(bases)) != len(bases):
            failure = "error:an all-in-one topic and its categorised twin must not be in one request"
        if not failure:
            for topic, topic_base in zip(args, bases, strict=True):
                assert topic_base is not None
                if op == "subscribe":
                    if topic_base in conn.topics:
                        failure = failure or f"error:already subscribed,topic:{topic}"
                    else:
                        conn.topics[topic_base] = topic
                elif conn.topics.pop(topic_base, None) is None:
                    failure = failure or f"error:not subscribed,topic:{topic}"
        conn.send(conn.reply(op, req_id, not failure, failure))
