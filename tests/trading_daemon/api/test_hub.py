"""The live hub on a real uvicorn server, with real `websockets` clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.trading_daemon.api.conftest import serving
from trading_daemon.api.hub import CLOSE_TOO_SLOW, STATE_TOPICS, TOPICS, Hub
from trading_daemon.api.principal import Principal, Role
from trading_daemon.observability.metrics import DaemonMetrics, render_metrics

ALICE = Principal(7, "alice", Role.TRADER)


def hub_app(hub: Hub) -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        await hub.serve(websocket, ALICE)

    return app


async def recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5.0))
    return message


async def send(ws: ClientConnection, message: Any) -> None:
    await ws.send(message if isinstance(message, str | bytes) else json.dumps(message))


async def until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Everything the hub queued for this client before it read our ping (its queue is first in, first out)."""
    await send(ws, {"op": "ping"})
    seen = []
    while (message := await recv(ws))["topic"] != "pong":
        seen.append(message)
    return seen


async def subscribed(ws: ClientConnection, *topics: str) -> None:
    await send(ws, {"op": "subscribe", "topics": list(topics)})
    ack = await recv(ws)
    assert ack["topic"] == "subscribed" and set(topics) <= set(ack["data"]["topics"])


@pytest.fixture
async def hub_url() -> AsyncIterator[tuple[Hub, str]]:
    hub = Hub(256)
    async with serving(hub_app(hub)) as url:
        yield hub, url


async def test_hello_then_every_message_of_a_topic_in_seq_order(hub_url: tuple[Hub, str]) -> None:
    hub, url = hub_url
    hub.publish("fill", {"before": True})  # not subscribed yet: not sent
    async with connect(url) as ws:
        hello = await recv(ws)
        assert hello["topic"] == "hello"
        assert hello["data"] | {"topics": None} == {
            "username": "alice", "role": "trader", "topics": None, "state_topics": list(STATE_TOPICS),
            "subscribed": list(STATE_TOPICS), "seq": 1, "client_queue": 256,
        }  # fmt: skip
        assert hello["data"]["topics"] == list(TOPICS)
        await subscribed(ws, "order")
        for i in range(2000):
            hub.publish("order", {"n": i, "price": Decimal("64000.10")})
            if i % 200 == 0:
                await asyncio.sleep(0)  # let the writer run, as the daemon's loop would
        got = [await recv(ws) for _ in range(2000)]
    assert [m["data"]["n"] for m in got] == list(range(2000))
    assert [m["seq"] for m in got] == list(range(2, 2002))  # the hub's sequence: no gap, no reorder
    assert all(m["topic"] == "order" and isinstance(m["ts"], int) for m in got)
    assert got[0]["data"]["price"] == "64000.10"  # money stays a decimal string
    assert hub.stats()["by_topic"]["order"] == 2000 and hub.stats()["published"] == 2001


async def test_state_topics_snapshot_on_connect_and_on_subscribe(hub_url: tuple[Hub, str]) -> None:
    hub, url = hub_url
    hub.publish("bot", {"state": "starting"})
    hub.publish("bot", {"state": "running"})
    hub.publish("model", {"production": None})
    async with connect(url) as ws:
        assert (await recv(ws))["topic"] == "hello"
        snapshots = [await recv(ws), await recv(ws)]
        assert [(m["topic"], m["seq"], m["snapshot"]) for m in snapshots] == [
            ("bot", 2, True),
            ("model", 3, True),
        ]
        assert snapshots[0]["data"] == {"state": "running"}  # the latest only
        hub.publish("bot", {"state": "paused"})
        live = await recv(ws)
        assert live["seq"] == 4 and "snapshot" not in live
        await send(ws, {"op": "unsubscribe", "topics": ["model"]})
        assert (await recv(ws))["data"]["topics"] == ["metrics", "bot"]
        hub.publish("model", {"production": {"version": "v2"}})
        await send(ws, {"op": "subscribe", "topics": ["model"]})
        assert (await recv(ws))["data"]["topics"] == ["metrics", "model", "bot"]
        again = await recv(ws)
        assert (again["topic"], again["seq"], again["snapshot"]) == ("model", 5, True)
        assert await until_pong(ws) == []


async def test_subscribe_and_unsubscribe_filter_topics(hub_url: tuple[Hub, str]) -> None:
    hub, url = hub_url
    async with connect(url) as ws:
        await recv(ws)  # hello
        await subscribed(ws, "book", "fill")
        await send(ws, {"op": "unsubscribe", "topics": ["bot", "fill"]})
        assert (await recv(ws))["data"]["topics"] == ["book", "metrics", "model"]
        for topic in ("book", "fill", "bot", "signal", "metrics"):
            hub.publish(topic, {"t": topic})
        assert [m["topic"] for m in await until_pong(ws)] == ["book", "metrics"]
        await subscribed(ws, "signal", "signal")  # twice in one message: once
        hub.publish("signal", {"t": "signal"})
        hub.publish("fill", {"t": "fill"})
        assert [m["topic"] for m in await until_pong(ws)] == ["signal"]
    assert hub.stats()["clients"] == 0 and hub.stats()["subscribers"]["signal"] == 0


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("hello?", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"topics": ["book"]}, "unknown op None"),
        ({"op": "shout"}, "unknown op 'shout': expected subscribe, unsubscribe or ping"),
        ({"op": "subscribe"}, 'subscribe: "topics" must be a list of topic names'),
        ({"op": "subscribe", "topics": "book"}, '"topics" must be a list'),
        (
            {"op": "unsubscribe", "topics": ["book", "news"]},
            "unknown topics ['news']: the hub publishes book",
        ),
        ({"op": "auth", "token": "x"}, "already authenticated"),
        (b"\x00\x01", "send JSON text frames, not binary ones"),
    ],
)
async def test_a_bad_message_gets_an_error_not_a_disconnect(
    hub_url: tuple[Hub, str], message: Any, error: str
) -> None:
    hub, url = hub_url
    async with connect(url) as ws:
        await recv(ws)  # hello
        await send(ws, message)
        reply = await recv(ws)
        assert reply["topic"] == "error" and error in reply["data"]["error"], reply
        hub.publish("bot", {"still": "here"})
        assert [m["data"] for m in await until_pong(ws)] == [{"still": "here"}]


async def test_a_client_that_falls_a_queue_behind_is_closed_too_slow() -> None:
    hub = Hub(8)
    async with serving(hub_app(hub)) as url, connect(url) as ws:
        await recv(ws)  # hello: the writer runs
        for i in range(9):  # in one go: the writer cannot take any of them off the queue meanwhile
            hub.publish("bot", {"n": i})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv(ws)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (CLOSE_TOO_SLOW, "too slow")
        assert hub.stats()["dropped_clients"] == 1 and hub.stats()["clients"] == 0
        hub.publish("bot", {"n": 9})  # nobody left to send to


class Reader:
    """A client that reads everything, in a task of its own, and can be awaited up to a `seq`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seqs: list[int] = []
        self._target = 0
        self._reached = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message["topic"] == "book":
                self.seqs.append(message["seq"])
                if message["seq"] >= self._target:
                    self._reached.set()

    async def until(self, seq: int) -> None:
        self._target = seq
        self._reached.clear()
        if not self.seqs or self.seqs[-1] < seq:
            await asyncio.wait_for(self._reached.wait(), 30)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _publish_paced(hub: Hub, reader: Reader, n: int, payload: str) -> float:
    """Publish `n` book messages in batches smaller than a client's queue, each once the reading client has
    the one before (as a daemon publishes over time, not all at once); returns the time spent in `publish`."""
    spent = 0.0
    for _ in range(n // 200):
        began = time.perf_counter()
        for _ in range(200):
            hub.publish("book", {"pad": payload})
        spent += time.perf_counter() - began
        await reader.until(hub.stats()["published"])
    return spent


async def test_a_stalled_client_is_dropped_without_slowing_publish_or_the_others() -> None:
    hub = Hub(256)
    payload = "x" * 256
    n = 50_000
    async with serving(hub_app(hub)) as url, connect(url) as good:
        await recv(good)  # hello
        await subscribed(good, "book")
        reader = Reader(good)
        try:
            alone = await _publish_paced(hub, reader, n, payload)
            # A client whose socket stops being read: a small receive buffer, a library queue that stops taking
            # frames after 16, and no compression (which would shrink these repetitive messages to nothing).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
            sock.setblocking(False)
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            async with connect(url, sock=sock, max_queue=16, compression=None) as stalled:
                await recv(stalled)  # hello
                await subscribed(stalled, "book")
                with_stalled = await _publish_paced(hub, reader, n, payload)
                assert hub.stats()["dropped_clients"] == 1
                assert hub.stats()["clients"] == 1 and hub.stats()["subscribers"]["book"] == 1
                # Reading again, the stalled client finds its connection closed after what it was sent before.
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(30):
                        while True:
                            await stalled.recv()
        finally:
            await reader.stop()
    assert reader.seqs == list(range(1, 2 * n + 1))  # the reading client: every message, in order
    # Publishing never waited for anyone: both runs take about as long (a generous bound; ~0.3 s here).
    print(f"publish time for {n} messages: {alone:.3f} s alone, {with_stalled:.3f} s with a stalled client")
    assert alone < 5.0 and with_stalled < 5.0


def test_publish_refuses_unknown_topics_and_data_json_cannot_carry() -> None:
    hub = Hub(16)
    with pytest.raises(ValueError, match="unknown topic 'news': the hub publishes book, metrics"):
        hub.publish("news", {})
    with pytest.raises(TypeError, match="topic 'bot': the message data is not JSON-able"):
        hub.publish("bot", {"when": object()})
    assert hub.stats()["published"] == 0  # a refused message takes no seq
    with pytest.raises(ValueError, match=r"client_queue must be >= 8 messages \(WS_CLIENT_QUEUE\), got 4"):
        Hub(4)


async def test_the_hub_counts_in_the_daemon_metrics() -> None:
    metrics = DaemonMetrics()
    hub = Hub(64, metrics=metrics)
    async with serving(hub_app(hub)) as url, connect(url) as ws:
        await recv(ws)
        hub.publish("book", {})
        hub.publish("bot", {})
        text = render_metrics(metrics.registry)
    assert "depthcharge_ws_clients 1.0" in text
    assert 'depthcharge_ws_messages_published_total{topic="book"} 1.0' in text
    assert "depthcharge_ws_clients_dropped_total 0.0" in text
