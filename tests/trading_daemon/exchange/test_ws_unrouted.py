"""Frames that reach no handler (hostile input from the venue): no topic and no op, a topic never subscribed,
a frame that is not JSON, a message that does not decode as its topic's. Each is counted, the first of each
kind and topic is logged, repeats are not (rate-limited), and the stream carries on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from exchange_sim.server.app import SimServer
from trading_daemon.exchange.messages import BybitWsTrades
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.observability.metrics import DaemonMetrics

from .conftest import Collector, wait_for

Factory = Callable[..., BybitPublicWebSocket]


def _inject(sim: SimServer, frame: dict[str, Any] | str) -> None:
    for conn in sim.state.public.connections:
        if isinstance(frame, str):
            conn.queue.put_nowait(frame)
        else:
            conn.send(frame)


def _trades(topic: str, trade_id: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "topic": topic,
        "type": "snapshot",
        "ts": now,
        "data": [{"T": now, "s": topic.split(".")[1], "S": "Buy", "v": "0.1", "p": "64000", "i": trade_id}],
    }


async def test_unrouted_frames_are_counted_and_logged_once_per_topic(
    public_ws: Factory, sim: SimServer
) -> None:
    metrics = DaemonMetrics()
    client = public_ws()
    client.on_frame_dropped = metrics.ws_frame_dropped
    trades = Collector()
    await client.start()
    await client.subscribe_trades("BTCUSDT", trades)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            _inject(sim, {"hello": "venue"})  # no topic, no op
        for _ in range(2):
            _inject(sim, _trades("publicTrade.ETHUSDT", "never-subscribed"))
        _inject(sim, _trades("publicTrade.SOLUSDT", "never-subscribed-either"))
        _inject(sim, "<html>maintenance</html>")
        _inject(sim, {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1, "data": "not a list"})
        _inject(sim, _trades("publicTrade.BTCUSDT", "after"))  # the stream carries on
        message: BybitWsTrades = await trades.wait(lambda m: m.data[0].i == "after")
        assert message.data[0].s == "BTCUSDT"

    def dropped(reason: str) -> float:
        return (
            metrics.registry.get_sample_value("depthcharge_ws_frames_dropped_total", {"reason": reason})
            or 0.0
        )

    await wait_for(lambda: dropped("malformed_message") == 1)
    assert dropped("no_topic_no_op") == 3
    assert dropped("unsubscribed_topic") == 3
    assert dropped("not_understood") == 1
    logged = [(e["reason"], e["topic"]) for e in logs if e["event"] == "bybit ws frame dropped"]
    assert sorted(logged) == [
        ("malformed_message", "publicTrade.BTCUSDT"),
        ("no_topic_no_op", ""),
        ("not_understood", ""),
        ("unsubscribed_topic", "publicTrade.ETHUSDT"),
        ("unsubscribed_topic", "publicTrade.SOLUSDT"),
    ]
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "bybit ws frame dropped")
    assert [m.data[0].i for m in trades.messages] == ["after"]  # nothing else reached the handler
