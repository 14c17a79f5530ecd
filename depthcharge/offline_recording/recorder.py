"""Fast offline recording of the paper exchange's synthetic market: no sockets, virtual exchange time.

Both sides run their real code; only the network is left out and the clock is virtual:

* the venue (`exchange_sim.venue.Venue`: engine, `SyntheticMarket`, klines with their start history)
  is stepped every `driver_interval_ms` (10 ms) of exchange time, as the exchange's driver task does;
* the exchange's own public hub (`exchange_sim.server.ws_public.PublicHub`) publishes `orderbook.50`
  (snapshot, then deltas every 20 ms of exchange time), `publicTrade` and `kline.1` (one `confirm` per
  candle) to an in-process connection (`in_process.py`), which encodes each message as the JSON a
  socket would carry;
* the daemon's message types decode it and the daemon's `MarketFeed` — its handlers,
  `RawSnapshotBuilder`s and `CandleStore`s, with the REST-style 200-candle load answered by the
  exchange's kline endpoint and `parse_klines` — builds the rows and candles; its grace timer is
  called every 50 ms of exchange time instead of running as a task.

`record_synthetic` returns the rows, trades and closed candles per symbol, plus ground truth (regime
and fair value at each row, manipulation episodes, the exchange's true top 50 at the last row).
A run is a pure function of its arguments.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from depthcharge.offline_recording.in_process import (
    InProcessCandleSource,
    InProcessPublicStream,
    VirtualClock,
)
from exchange_sim.config import FaultConfig, SimConfig
from exchange_sim.instruments import DEFAULT_INSTRUMENTS
from exchange_sim.market import MarketConfig, SyntheticMarket
from exchange_sim.server.faults import FaultInjector
from exchange_sim.server.ws_public import PublicHub
from exchange_sim.venue import Venue
from infra.settings import FeedConfig, code_defaults
from schemas.features import BOOK_TOPIC_DEPTH
from schemas.market import Candle, PublicTrade
from schemas.snapshot import BOOK_DEPTH, RawSnapshotRow
from trading_daemon.market.feed import TIMER_PERIOD_S, BookSink, MarketFeed, MarketSink

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC: runs do not depend on the wall clock
DRIVER_STEP_MS = SimConfig().driver_interval_ms
TIMER_STEP_MS = round(TIMER_PERIOD_S * 1000)

Level = tuple[float, float]


@dataclass(frozen=True)
class SimGroundTruth:
    """What the synthetic market knows and a recording cannot see.

    `regimes[symbol][i]` and `fair_values[symbol][i]` belong to `rows[symbol][i]` (the regime is shared
    by all symbols); `episodes` are the finished manipulation episodes (docs/exchange_sim_market.md §12);
    `final_books[symbol]` is the exchange's true top 50 (bids, asks; best first) at the last row's ts.
    """

    regimes: dict[str, list[str]]
    fair_values: dict[str, list[float]]
    episodes: list[dict[str, Any]]
    final_books: dict[str, tuple[list[Level], list[Level]]]
    shift_at_ms: int | None


@dataclass(frozen=True)
class SimRecording:
    """Rows, trades and closed candles (history included) per symbol, oldest first, and ground truth."""

    symbols: tuple[str, ...]
    seed: int
    start_ms: int
    end_ms: int  # ts of the last row
    interval_ms: int
    rows: dict[str, list[RawSnapshotRow]]
    trades: dict[str, list[PublicTrade]]
    candles: dict[str, list[Candle]]
    truth: SimGroundTruth
    messages: int  # public stream messages the daemon side handled


@dataclass
class _Collector:
    """The feed's sink: everything it hands over, per symbol."""

    rows: dict[str, list[RawSnapshotRow]] = field(default_factory=dict)
    trades: dict[str, list[PublicTrade]] = field(default_factory=dict)
    candles: dict[str, dict[int, Candle]] = field(default_factory=dict)

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        for row in rows:
            self.rows.setdefault(row.symbol, []).append(row)

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        for trade in trades:
            self.trades.setdefault(trade.symbol, []).append(trade)

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        for candle in candles:  # a re-sent confirm replaces the candle, as the database upsert would
            self.candles.setdefault(candle.symbol, {})[candle.start_ms] = candle


def _validate(
    symbols: Sequence[str], seconds: int, seed: int, start_ms: int, shift_at_ms: int | None, interval_ms: int
) -> tuple[str, ...]:
    if isinstance(symbols, str):
        raise ValueError(f"symbols must be a sequence of symbols, got the string {symbols!r}")
    chosen = tuple(symbols)
    if not chosen:
        raise ValueError("symbols must name at least one symbol")
    unknown = [s for s in chosen if s not in DEFAULT_INSTRUMENTS]
    if unknown:
        raise ValueError(f"unknown symbols {unknown}; the paper exchange lists {sorted(DEFAULT_INSTRUMENTS)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"symbols repeat: {list(chosen)}")
    for name, value in (
        ("seconds", seconds),
        ("seed", seed),
        ("start_ms", start_ms),
        ("interval_ms", interval_ms),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if seconds < 1:
        raise ValueError(f"seconds must be at least 1, got {seconds}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if interval_ms <= 0 or interval_ms % DRIVER_STEP_MS:
        raise ValueError(f"interval_ms must be a positive multiple of {DRIVER_STEP_MS}, got {interval_ms}")
    if start_ms <= 0 or start_ms % interval_ms:
        raise ValueError(
            f"start_ms must be a positive multiple of interval_ms ({interval_ms}), got {start_ms}"
        )
    if seconds * 1000 % interval_ms:
        raise ValueError(f"seconds ({seconds}) must cover whole intervals of {interval_ms} ms")
    if shift_at_ms is not None and (isinstance(shift_at_ms, bool) or not isinstance(shift_at_ms, int)):
        raise ValueError(f"shift_at_ms must be an int of exchange ms or None, got {shift_at_ms!r}")
    return chosen


async def record_synthetic_async(
    symbols: Sequence[str] = ("BTCUSDT",),
    *,
    seconds: int,
    seed: int = 42,
    start_ms: int = DEFAULT_START_MS,
    shift_at_ms: int | None = None,
    manipulation: bool = True,
    market_config: MarketConfig | None = None,
    feed: FeedConfig | None = None,
    sinks: Sequence[MarketSink] = (),
    book_sinks: Sequence[BookSink] = (),
) -> SimRecording:
    """As `record_synthetic`, for callers already inside an event loop."""
    feed_base = feed if feed is not None else code_defaults().feed
    if not isinstance(feed_base, FeedConfig):
        raise ValueError(f"feed must be a FeedConfig, got {type(feed_base).__name__}")
    interval_ms = feed_base.snapshot_interval_ms
    chosen = _validate(symbols, seconds, seed, start_ms, shift_at_ms, interval_ms)
    base = market_config if market_config is not None else MarketConfig()
    if not isinstance(base, MarketConfig):
        raise ValueError(f"market_config must be a MarketConfig, got {type(base).__name__}")
    config = dataclasses.replace(
        base,
        shift=dataclasses.replace(base.shift, at_ms=shift_at_ms),
        manipulation=dataclasses.replace(base.manipulation, enabled=manipulation),
    )
    clock = VirtualClock(start_ms)
    venue = Venue(SimConfig(seed=seed, symbols=chosen, start_ms=start_ms), clock)
    market = SyntheticMarket(venue.engine, chosen, seed=seed, config=config)
    venue.attach_market(market)
    faults = FaultInjector(FaultConfig(), seed=seed)  # all off
    hub = PublicHub(venue, faults, depths=(BOOK_TOPIC_DEPTH,), clock_ms=clock.now)
    stream = InProcessPublicStream(hub)
    sink = _Collector()
    market_feed = MarketFeed(
        dataclasses.replace(feed_base, symbols=chosen),
        stream,
        InProcessCandleSource(venue),
        [sink, *sinks],
        exchange_now_ms=clock.now,
        book_sinks=book_sinks,
    )
    end_ms = start_ms + seconds * 1000
    regimes: dict[str, list[str]] = {s: [] for s in chosen}
    fair: dict[str, list[float]] = {s: [] for s in chosen}
    final_books: dict[str, tuple[list[Level], list[Level]]] = {}

    venue.step(start_ms)  # the market seeds its books, the klines get their history
    now = start_ms + DRIVER_STEP_MS  # the daemon connects at the next driver step
    clock.ms = now
    venue.step(now)
    await market_feed.start(timer=False)
    next_timer = now + TIMER_STEP_MS
    builders = list(market_feed.builders.values())
    while not all(b.last_emitted is not None and b.last_emitted >= end_ms for b in builders):
        now += DRIVER_STEP_MS
        clock.ms = now
        venue.step(now)
        await stream.deliver()
        if now >= next_timer:
            market_feed.on_timer(now)
            next_timer += TIMER_STEP_MS
        if now % interval_ms == 0:
            if now <= end_ms:
                _observe(market, venue, chosen, now == end_ms, regimes, fair, final_books)
            await asyncio.sleep(0)  # let a resync task run, if the feed started one (a crossed book)
    await market_feed.stop()
    return SimRecording(
        symbols=chosen,
        seed=seed,
        start_ms=start_ms,
        end_ms=end_ms,
        interval_ms=interval_ms,
        rows={s: [r for r in sink.rows.get(s, []) if r.ts <= end_ms] for s in chosen},
        trades={s: [t for t in sink.trades.get(s, []) if t.ts <= end_ms] for s in chosen},
        candles={s: sorted(sink.candles.get(s, {}).values(), key=lambda c: c.start_ms) for s in chosen},
        truth=SimGroundTruth(regimes, fair, market.ground_truth(), final_books, shift_at_ms),
        messages=stream.messages,
    )


def _observe(
    market: SyntheticMarket,
    venue: Venue,
    symbols: tuple[str, ...],
    last: bool,
    regimes: dict[str, list[str]],
    fair: dict[str, list[float]],
    final_books: dict[str, tuple[list[Level], list[Level]]],
) -> None:
    """Ground truth at a row boundary (the venue has just been stepped to it)."""
    regime = market.regime()
    for symbol in symbols:
        regimes[symbol].append(regime)
        fair[symbol].append(market.fair_value(symbol))
        if last:
            snap = venue.engine.books[symbol].snapshot(BOOK_DEPTH)
            final_books[symbol] = (
                [(float(p), float(q)) for p, q in snap.bids],
                [(float(p), float(q)) for p, q in snap.asks],
            )


def record_synthetic(
    symbols: Sequence[str] = ("BTCUSDT",),
    *,
    seconds: int,
    seed: int = 42,
    start_ms: int = DEFAULT_START_MS,
    shift_at_ms: int | None = None,
    manipulation: bool = True,
    market_config: MarketConfig | None = None,
    feed: FeedConfig | None = None,
    sinks: Sequence[MarketSink] = (),
    book_sinks: Sequence[BookSink] = (),
) -> SimRecording:
    """Record `seconds` of the paper exchange's synthetic market for `symbols`, on virtual time.

    `feed` is the daemon side's `FeedConfig` (row cadence SNAPSHOT_INTERVAL_MS = `interval_ms`, ROW_GRACE_MS,
    the back-fill throttle; its symbols are replaced by `symbols`); by default the settings' code defaults,
    not the environment, so that a recording depends on its arguments only.
    Rows are at `start_ms + k·interval_ms`, k = 1…seconds·1000/interval_ms (the daemon connects one
    driver step after the market starts at `start_ms`, so the first row is a `book_reset` row covering
    990 ms); `shift_at_ms` schedules the market's regime shift (docs/exchange_sim_market.md §7, exchange ms);
    `manipulation` turns spoofing/layering episodes on; `market_config` replaces the generator's
    defaults (e.g. `MarketConfig(fixed_regime="calm")` for drift tests; its shift time and manipulation
    switch are overridden by the two arguments). `sinks` and `book_sinks` get what the daemon's feed
    hands its own (rows, trades, candles; every applied book message) as the recording runs, e.g. the
    manipulation detectors measured against the ground truth. Deterministic for its arguments.
    Synchronous: inside an event loop, await `record_synthetic_async` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(
            record_synthetic_async(
                symbols,
                seconds=seconds,
                seed=seed,
                start_ms=start_ms,
                shift_at_ms=shift_at_ms,
                manipulation=manipulation,
                market_config=market_config,
                feed=feed,
                sinks=sinks,
                book_sinks=book_sinks,
            )
        )
    raise RuntimeError("record_synthetic called inside an event loop: await record_synthetic_async instead")
