"""The live WebSocket hub: what the daemon publishes, fanned out to every subscribed browser.

`publish(topic, data)` is synchronous and never waits: it stamps the message with a hub-wide `seq` and `ts`,
encodes it once and puts the same text on the bounded queue of every client subscribed to the topic. A
client whose queue is full is dropped at once (closed with 1013 "too slow") rather than waited for, so one
stalled browser can slow neither the daemon nor the other clients. A client therefore never misses a
message of a topic it is subscribed to: it receives all of them, in `seq` order, or it is disconnected.

The wire (JSON text frames), server → client:

    {"topic": "<topic>", "seq": 41, "ts": 1700000000000, "data": {...}}     a published message
    {"topic": "<state topic>", "seq": 17, "ts": ..., "data": {...}, "snapshot": true}
        the latest message of a state topic (bot, model, metrics), sent on connecting and on subscribing
        to it; its older `seq` is not part of the live order
    {"topic": "hello", "ts": ..., "data": {"username", "role", "topics", "state_topics", "subscribed",
        "seq", "client_queue"}}                                             first, once
    {"topic": "subscribed", "ts": ..., "data": {"topics": [...]}}          after (un)subscribe: what now is
    {"topic": "pong", "ts": ..., "data": {"seq": <last published>}}
    {"topic": "error", "ts": ..., "data": {"error": "<what was wrong>"}}   a bad message; the socket stays

client → server: `{"op": "subscribe", "topics": [...]}`, `{"op": "unsubscribe", "topics": [...]}`,
`{"op": "ping"}`. A new client is subscribed to the state topics; it subscribes to the others it shows.

What a socket can hold in its kernel and transport buffers after a client stops reading is bounded by
uvicorn (its transport stops taking writes past its high-water mark); the hub stops writing to a dropped
client at once, and uvicorn closes the connection once the client reads again or the network gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.websockets import WebSocket

from schemas.times import now_ms
from trading_daemon.api.principal import Principal
from trading_daemon.observability.metrics import DaemonMetrics

log = structlog.get_logger(__name__)

TOPICS = ("book", "metrics", "signal", "order", "fill", "position", "model", "bot", "drift", "health")
STATE_TOPICS = ("bot", "model", "metrics")  # a new client gets their latest message at once
MIN_CLIENT_QUEUE = 8  # the hello and the state snapshots fit, with room (WS_CLIENT_QUEUE's own minimum)
CLOSE_TOO_SLOW = 1013  # "try again later" (RFC 6455 registry)
DROP_CLOSE_TIMEOUT_S = 2.0  # a stalled client's close frame waits at most this long for the socket

_encoder = msgspec.json.Encoder(decimal_format="string")


def control_message(topic: str, data: Any, *, ts: int | None = None) -> str:
    """A message to one client (hello, subscribed, pong, error), outside the published sequence."""
    return _encoder.encode({"topic": topic, "ts": now_ms() if ts is None else ts, "data": data}).decode()


class _Client:
    __slots__ = ("dropped", "id", "principal", "queue", "topics")

    def __init__(self, client_id: int, principal: Principal, queue_size: int) -> None:
        self.id = client_id
        self.principal = principal
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.topics: set[str] = set()
        self.dropped = asyncio.Event()


class Hub:
    """Topics fanned out to WebSocket clients (module docstring); one per daemon, on `DaemonContext.hub`."""

    def __init__(
        self,
        client_queue: int,
        *,
        metrics: DaemonMetrics | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if client_queue < MIN_CLIENT_QUEUE:
            raise ValueError(
                f"client_queue must be >= {MIN_CLIENT_QUEUE} messages (WS_CLIENT_QUEUE), got {client_queue}"
            )
        self.client_queue = client_queue
        self.clock = clock
        self._seq = 0
        self._ids = itertools.count(1)
        self._clients: dict[int, _Client] = {}
        self._subscribers: dict[str, dict[int, _Client]] = {t: {} for t in TOPICS}
        self._latest: dict[str, str] = {}  # state topic → its latest message, encoded as a snapshot
        self._published: dict[str, int] = dict.fromkeys(TOPICS, 0)
        self._dropped = 0
        if metrics is not None:
            metrics.registry.register(_HubCollector(self))

    # -- publishing ---------------------------------------------------------------------------------------

    def publish(self, topic: str, data: Any) -> None:
        """Send `data` to every client subscribed to `topic`; drops (never waits for) a client that is full.

        Raises ValueError for an unknown topic and TypeError for data that JSON cannot carry (msgspec's
        types: dicts, lists, str, numbers, bool, None, Decimal as a string, enums, structs, dataclasses)."""
        subscribers = self._subscribers.get(topic)
        if subscribers is None:
            raise ValueError(f"unknown topic {topic!r}: the hub publishes {', '.join(TOPICS)}")
        seq, ts = self._seq + 1, self.clock()
        if not subscribers and topic not in STATE_TOPICS:  # nobody to send it to, nothing to remember
            self._seq = seq
            self._published[topic] += 1
            return
        message = {"topic": topic, "seq": seq, "ts": ts, "data": data}
        try:
            text = _encoder.encode(message).decode()
            if topic in STATE_TOPICS:
                message["snapshot"] = True
                self._latest[topic] = _encoder.encode(message).decode()
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(f"topic {topic!r}: the message data is not JSON-able: {exc}") from exc
        self._seq = seq
        self._published[topic] += 1
        full: list[_Client] = []
        for client in subscribers.values():
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                full.append(client)
        for client in full:
            self._drop(client)

    def wanted(self, topic: str) -> bool:
        """Whether a message of `topic` would reach anyone (a publisher may skip building it otherwise)."""
        return bool(self._subscribers.get(topic)) or topic in STATE_TOPICS

    def stats(self) -> dict[str, Any]:
        """Clients, messages published (in all and per topic), clients dropped as too slow, subscribers."""
        return {
            "clients": len(self._clients),
            "published": self._seq,
            "dropped_clients": self._dropped,
            "by_topic": dict(self._published),
            "subscribers": {t: len(s) for t, s in self._subscribers.items()},
            "client_queue": self.client_queue,
        }

    # -- one client -----------------------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket, principal: Principal) -> None:
        """Run one accepted, authenticated client until it leaves or is dropped."""
        client = _Client(next(self._ids), principal, self.client_queue)
        # The hello and the snapshots are queued before the client is registered: no published message can
        # come before them.
        self._send(
            client,
            control_message(
                "hello",
                {
                    "username": principal.username,
                    "role": str(principal.role),
                    "topics": list(TOPICS),
                    "state_topics": list(STATE_TOPICS),
                    "subscribed": list(STATE_TOPICS),
                    "seq": self._seq,
                    "client_queue": self.client_queue,
                },
                ts=self.clock(),
            ),
        )
        self._clients[client.id] = client
        self._subscribe(client, STATE_TOPICS, announce=False)  # the hello says so
        log.info("ws client connected", client=client.id, user=principal.username, clients=len(self._clients))
        writer = asyncio.create_task(self._write(websocket, client), name=f"ws-{client.id}-writer")
        reader = asyncio.create_task(self._read(websocket, client), name=f"ws-{client.id}-reader")
        dropped = asyncio.create_task(client.dropped.wait(), name=f"ws-{client.id}-dropped")
        tasks = (writer, reader, dropped)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._forget(client)
            for task in tasks:
                task.cancel()
            ended = await asyncio.gather(*tasks, return_exceptions=True)
        if client.dropped.is_set():
            # The socket is stalled: the close frame may never get out, and this task must not hang on it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(CLOSE_TOO_SLOW, "too slow"), DROP_CLOSE_TIMEOUT_S)
        failure = next((e for e in ended[:2] if isinstance(e, Exception)), None)
        log.info(
            "ws client left",
            client=client.id,
            user=principal.username,
            dropped=client.dropped.is_set(),
            error=None if failure is None else repr(failure),
        )

    async def _write(self, websocket: WebSocket, client: _Client) -> None:
        while True:
            await websocket.send_text(await client.queue.get())

    async def _read(self, websocket: WebSocket, client: _Client) -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self._error(client, "send JSON text frames, not binary ones")
                continue
            self._handle(client, text)

    def _handle(self, client: _Client, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError as exc:
            self._error(client, f'not JSON ({exc}): send e.g. {{"op": "ping"}}')
            return
        if not isinstance(request, dict):
            self._error(client, f'a message must be a JSON object with an "op", got {type(request).__name__}')
            return
        op = request.get("op")
        if op == "ping":
            self._send(client, control_message("pong", {"seq": self._seq}, ts=self.clock()))
        elif op in ("subscribe", "unsubscribe"):
            topics = request.get("topics")
            problem = _topics_problem(topics)
            if problem is not None:
                self._error(client, f"{op}: {problem}")
                return
            assert isinstance(topics, list)
            if op == "subscribe":
                self._subscribe(client, topics)
            else:
                self._unsubscribe(client, topics)
        elif op == "auth":
            self._error(client, "already authenticated")
        else:
            self._error(client, f"unknown op {op!r}: expected subscribe, unsubscribe or ping")

    def _subscribe(self, client: _Client, topics: Iterable[str], *, announce: bool = True) -> None:
        new = [t for t in dict.fromkeys(topics) if t not in client.topics]
        for topic in new:
            client.topics.add(topic)
            self._subscribers[topic][client.id] = client
        if announce:
            self._send(
                client, control_message("subscribed", {"topics": _ordered(client.topics)}, ts=self.clock())
            )
        for topic in new:
            snapshot = self._latest.get(topic)
            if snapshot is not None:
                self._send(client, snapshot)

    def _unsubscribe(self, client: _Client, topics: Iterable[str]) -> None:
        for topic in topics:
            client.topics.discard(topic)
            self._subscribers[topic].pop(client.id, None)
        self._send(
            client, control_message("subscribed", {"topics": _ordered(client.topics)}, ts=self.clock())
        )

    def _error(self, client: _Client, error: str) -> None:
        self._send(client, control_message("error", {"error": error}, ts=self.clock()))

    def _send(self, client: _Client, text: str) -> None:
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if client.dropped.is_set():
            return
        client.dropped.set()
        self._forget(client)
        self._dropped += 1
        log.warning(
            "ws client dropped: too slow",
            client=client.id,
            user=client.principal.username,
            queue=self.client_queue,
        )

    def _forget(self, client: _Client) -> None:
        self._clients.pop(client.id, None)
        for topic in client.topics:
            self._subscribers[topic].pop(client.id, None)


def _topics_problem(topics: Any) -> str | None:
    """What is wrong with a message's `topics`, or None."""
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        return '"topics" must be a list of topic names'
    unknown = [t for t in topics if t not in TOPICS]
    if unknown:
        return f"unknown topics {unknown}: the hub publishes {', '.join(TOPICS)}"
    return None


def _ordered(topics: set[str]) -> list[str]:
    return [t for t in TOPICS if t in topics]


class _HubCollector(Collector):
    """The hub's counts at scrape time (nothing is counted on the publishing path)."""

    def __init__(self, hub: Hub, namespace: str = "depthcharge") -> None:
        self.hub = hub
        self.prefix = namespace

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.hub.stats()
        yield GaugeMetricFamily(
            f"{self.prefix}_ws_clients", "Connected WebSocket clients.", value=stats["clients"]
        )
        published = CounterMetricFamily(
            f"{self.prefix}_ws_messages_published", "Messages published to the WebSocket hub, by topic.",
            labels=["topic"],
        )  # fmt: skip
        for topic, n in stats["by_topic"].items():
            published.add_metric([topic], float(n))
        yield published
        yield CounterMetricFamily(
            f"{self.prefix}_ws_clients_dropped",
            "WebSocket clients dropped because they fell WS_CLIENT_QUEUE messages behind.",
            value=stats["dropped_clients"],
        )
