"""The requested speed is a ceiling: at a speed the process cannot hold, the exchange clock slows down and
every public topic keeps its cadence per exchange second (docs/exchange_sim.md, "Speed").

The server runs the synthetic market at a speed far beyond one core (5000x real time); a client reads
``orderbook.50``, ``publicTrade`` and ``kline.1`` over a real socket and samples the book it rebuilds once
per exchange second. An offline recording of the same seed and start (the same venue and market stepped
on virtual time, read by the daemon's own feed) is the reference: per exchange second, the book messages,
trades and the sampled book must be the ones the offline recording holds, and so must the statistics
a model would learn from (how often the mid moves, the spread, touch imbalance against the next move).
Before the fix book pushes were paced by the wall clock, so at speed 50 a client saw 10 deltas in 378
exchange seconds and a frozen book.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from depthcharge.offline_recording import DEFAULT_START_MS, record_synthetic_async
from exchange_sim.config import SimConfig
from exchange_sim.market.generator import build_market
from exchange_sim.server.app import SimServer
from schemas.snapshot import RawSnapshotRow

SEED = 13
SYMBOL = "BTCUSDT"
SPEED = 5000.0  # far beyond what one core simulates (about 100-300x for one symbol)
SECONDS = 300  # exchange seconds compared
TOPICS = [f"orderbook.50.{SYMBOL}", f"publicTrade.{SYMBOL}", f"kline.1.{SYMBOL}"]

pytestmark = pytest.mark.slow


def _server(speed: float) -> SimServer:
    config = SimConfig(port=0, seed=SEED, symbols=(SYMBOL,), speed=speed, start_ms=DEFAULT_START_MS)
    return SimServer(config, lambda venue: build_market(venue.engine, [SYMBOL], seed=SEED))


@dataclass
class Second:
    """What a client saw in one exchange second ``(end - 1000, end]`` and the book at its end."""

    book_msgs: int = 0
    trades: int = 0
    kline_msgs: int = 0
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)


class BookClient:
    """Rebuilds ``orderbook.50`` from the stream and samples it at each exchange-second boundary."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last_u = 0
        self.first_ts: int | None = None
        self.seconds: dict[int, Second] = {}
        self.closed_candles: dict[int, dict[str, Any]] = {}
        self.boundary: int | None = None  # end of the second being filled

    def _apply(self, side: dict[float, float], levels: list[list[str]]) -> None:
        for price, size in levels:
            if float(size) == 0:
                side.pop(float(price), None)
            else:
                side[float(price)] = float(size)

    def _close_seconds(self, ts: int) -> None:
        assert self.boundary is not None
        while ts > self.boundary:  # every message up to the boundary is in: sample the book
            second = self.seconds.setdefault(self.boundary, Second())
            second.bids = sorted(self.bids.items(), reverse=True)[:50]
            second.asks = sorted(self.asks.items())[:50]
            self.boundary += 1000

    def on_message(self, msg: dict[str, Any]) -> None:
        ts = int(msg["ts"])
        if self.boundary is None:
            self.first_ts = ts
            self.boundary = -(-ts // 1000) * 1000
        self._close_seconds(ts)
        second = self.seconds.setdefault(self.boundary, Second())
        topic = msg["topic"]
        if topic.startswith("orderbook"):
            data = msg["data"]
            if msg["type"] == "snapshot":
                self.bids, self.asks = {}, {}
            else:
                assert data["u"] == self.last_u + 1, f"u gap: {self.last_u} -> {data['u']}"
            self.last_u = data["u"]
            self._apply(self.bids, data["b"])
            self._apply(self.asks, data["a"])
            second.book_msgs += 1
        elif topic.startswith("publicTrade"):
            second.trades += len(msg["data"])
        else:
            second.kline_msgs += 1
            for candle in msg["data"]:
                if candle["confirm"]:
                    self.closed_candles[candle["start"]] = candle


def _levels(prices: list[float], sizes: list[float]) -> list[tuple[float, float]]:
    return list(zip(prices, sizes, strict=True))


def _offline_second(row: RawSnapshotRow) -> Second:
    return Second(
        book_msgs=row.n_book_msgs,
        trades=row.n_buy_trades + row.n_sell_trades,
        bids=_levels(row.bid_prices, row.bid_sizes),
        asks=_levels(row.ask_prices, row.ask_sizes),
    )


def _auc(scores: list[float], labels: list[bool]) -> float:
    """Mann-Whitney AUC of ``scores`` for the positive labels (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return math.nan
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def book_statistics(seconds: list[Second]) -> dict[str, Any]:
    """Statistics of a book sampled once per exchange second, as a model would see them."""
    mids = [(s.bids[0][0] + s.asks[0][0]) / 2 for s in seconds]
    spreads = Counter(round((s.asks[0][0] - s.bids[0][0]) * 10) for s in seconds)  # BTCUSDT tick 0.1
    windows = range(0, len(mids) - 10, 10)
    moved = [mids[i + 10] != mids[i] for i in windows]
    scores, labels = [], []
    for i in range(len(mids) - 10):
        move = mids[i + 10] - mids[i]
        if move:
            qb, qa = seconds[i].bids[0][1], seconds[i].asks[0][1]
            scores.append((qb - qa) / (qb + qa))
            labels.append(move > 0)
    return {
        "mid_moved_share_10s": sum(moved) / len(moved),
        "spread_ticks": dict(sorted(spreads.items())),
        "book_msgs_per_s": sum(s.book_msgs for s in seconds) / len(seconds),
        "trades_per_s": sum(s.trades for s in seconds) / len(seconds),
        "touch_imbalance_auc_10s": _auc(scores, labels),
    }


async def _stream(server: SimServer, client: BookClient, seconds: int) -> tuple[int, int]:
    """Read the topics until ``seconds`` whole exchange seconds after the subscription's have been seen;
    returns the first and last boundary of those seconds."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{server.ws_url}/v5/public/linear") as ws,
    ):
        await ws.send_json({"op": "subscribe", "req_id": "s", "args": TOPICS})
        reply = json.loads((await ws.receive(timeout=30)).data)
        assert reply["success"], reply
        msg = json.loads((await ws.receive(timeout=30)).data)
        client.on_message(msg)
        first = int(msg["ts"]) // 1000 * 1000 + 2000  # the second after the one the client subscribed in
        last = first + seconds * 1000
        while int(msg["ts"]) <= last:
            msg = json.loads((await ws.receive(timeout=30)).data)
            client.on_message(msg)
        return first, last


async def test_topics_keep_exchange_time_cadence_at_a_speed_the_process_cannot_hold() -> None:
    server = _server(SPEED)
    client = BookClient()
    async with server:
        first, last = await _stream(server, client, SECONDS)
        async with aiohttp.ClientSession() as session, session.get(f"{server.base_url}/sim") as resp:
            status = await resp.json()
    assert status["requested_speed"] == SPEED
    assert status["achieved_speed"] is not None and status["achieved_speed"] < SPEED
    assert status["slipped_ms"] > 0  # the clock slowed down rather than any topic being thinned

    recording = await record_synthetic_async([SYMBOL], seconds=(last - DEFAULT_START_MS) // 1000, seed=SEED)
    rows = {row.ts: row for row in recording.rows[SYMBOL]}
    boundaries = range(first, last + 1, 1000)
    live = [client.seconds[b] for b in boundaries]
    offline = [_offline_second(rows[b]) for b in boundaries]

    # Cadence per exchange second: every book push (one conflated delta per 20 ms with a change), every
    # trade, and one open-candle kline push a second; the sampled book is the offline one.
    for b, seen, ref in zip(boundaries, live, offline, strict=True):
        assert (b, seen.book_msgs, seen.trades) == (b, ref.book_msgs, ref.trades)
        assert (b, seen.bids, seen.asks) == (b, ref.bids, ref.asks)
        assert seen.kline_msgs >= 1
    assert min(s.book_msgs for s in live) >= 10  # Bybit's orderbook.50 pushes up to 50 per second
    closed = {c.start_ms: c for c in recording.candles[SYMBOL]}
    assert client.closed_candles and all(
        float(candle["close"]) == closed[start].close and float(candle["volume"]) == closed[start].volume
        for start, candle in client.closed_candles.items()
    )

    live_stats, offline_stats = book_statistics(live), book_statistics(offline)
    assert live_stats == offline_stats
    assert live_stats["mid_moved_share_10s"] > 0.5  # a frozen book moved in 7.5% of windows
    assert 0.4 < live_stats["touch_imbalance_auc_10s"] < 0.75  # a frozen book "predicted" at 0.82


async def test_achieved_speed_reported_and_warned_below_the_request() -> None:
    server = _server(SPEED)
    with capture_logs() as logs:
        async with server:
            await asyncio.sleep(2.5)  # the speed is measured over the last seconds, checked every second
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{server.base_url}/sim") as resp:
                    status = await resp.json()
                async with session.get(f"{server.base_url}/sim/metrics") as resp:
                    metrics = await resp.text()
    assert status["market"] == "SyntheticMarket" and status["paced"] is True
    achieved = status["achieved_speed"]
    assert achieved is not None and 0 < achieved < SPEED
    assert status["exchange_ms"] > DEFAULT_START_MS and status["slipped_ms"] > 0
    gauges = {
        line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if not line.startswith("#")
    }
    assert gauges["exchange_sim_speed_requested"] == SPEED
    assert 0 < gauges["exchange_sim_speed_achieved"] < SPEED
    assert gauges["exchange_sim_clock_slipped_ms"] > 0
    slow = [e for e in logs if e["event"].startswith("exchange clock slower than requested")]
    assert len(slow) == 1  # rate-limited: one warning per 30 s
    assert slow[0]["log_level"] == "warning" and slow[0]["requested_speed"] == SPEED
    assert 0 < slow[0]["achieved_speed"] < SPEED


async def test_speed_one_keeps_up_and_reports_it() -> None:
    server = _server(1.0)
    with capture_logs() as logs:
        async with server:
            await asyncio.sleep(1.5)
            async with aiohttp.ClientSession() as session, session.get(f"{server.base_url}/sim") as resp:
                status = await resp.json()
    assert status["requested_speed"] == 1.0
    assert status["achieved_speed"] is not None and 0.8 < status["achieved_speed"] < 1.2
    assert status["lag_ms"] < 250
    assert not [e for e in logs if e["event"].startswith("exchange clock slower")]
