"""Order-book delta application and raw-row build, against a naive baseline in the same run.

Delta apply. Baseline: a price→size dict per side whose sorted view is rebuilt after every delta (what
clients that need the best levels after each message commonly do). Ours: dict plus an incrementally kept
sorted key list (trading_daemon.market.orderbook).

Raw snapshot row build. Ours: `RawSnapshotBuilder` cutting one row (top 50 levels of each side, the
interval's aggregates). Baseline: the same row's book part built the naive way from the dict book above
(sort each side, take 50, pad, build the row struct) — the work a builder without a sorted book would do.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from bench.report import Figure, Section
from infra.settings import code_defaults
from schemas.snapshot import BOOK_DEPTH, RawSnapshotRow
from trading_daemon.market.orderbook import LevelEvents, LocalOrderBook
from trading_daemon.market.snapshot_builder import RawSnapshotBuilder

N_DELTAS = 20_000
REPEATS = 3
N_ROWS = 2_000
Level = tuple[float, float]


def _stream(
    n_deltas: int, seed: int = 11
) -> tuple[list[Level], list[Level], list[tuple[list[Level], list[Level]]]]:
    """A 50-level book around 64000 and deltas that update, delete and insert near the touch."""
    rng = random.Random(seed)
    tick = 0.1
    bids = {round(64000.0 - i * tick, 1): rng.randint(1, 5000) / 1000 for i in range(50)}
    asks = {round(64000.1 + i * tick, 1): rng.randint(1, 5000) / 1000 for i in range(50)}
    snap_b, snap_a = sorted(bids.items(), reverse=True), sorted(asks.items())
    deltas = []
    for _ in range(n_deltas):
        db: list[Level] = []
        da: list[Level] = []
        for _ in range(rng.randint(1, 4)):
            is_bid = rng.random() < 0.5
            side, out = (bids, db) if is_bid else (asks, da)
            dist = min(int(rng.expovariate(0.15)), 59)
            best_other = min(asks) if is_bid else max(bids)
            price = (
                round(best_other - (1 + dist) * tick, 1)
                if is_bid
                else round(best_other + (1 + dist) * tick, 1)
            )
            if price in side and rng.random() < 0.4:
                del side[price]
                out.append((price, 0.0))
            else:
                side[price] = rng.randint(1, 5000) / 1000
                out.append((price, side[price]))
        deltas.append((db, da))
    return snap_b, snap_a, deltas


def _naive(snap_b: list[Level], snap_a: list[Level], deltas: list[tuple[list[Level], list[Level]]]) -> float:
    bids, asks = dict(snap_b), dict(snap_a)
    start = time.perf_counter()
    for db, da in deltas:
        for side, levels in ((bids, db), (asks, da)):
            for p, s in levels:
                if s == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = s
        best_bids = sorted(bids.items(), reverse=True)[:50]
        best_asks = sorted(asks.items())[:50]
        if best_bids and best_asks and best_bids[0][0] >= best_asks[0][0]:
            raise AssertionError("crossed")
    return time.perf_counter() - start


def _ours(snap_b: list[Level], snap_a: list[Level], deltas: list[tuple[list[Level], list[Level]]]) -> float:
    book = LocalOrderBook("BTCUSDT")
    book.load_snapshot(snap_b, snap_a, u=0, ts=0)
    events = LevelEvents()
    start = time.perf_counter()
    for u, (db, da) in enumerate(deltas, start=1):
        book.apply_delta(db, da, u, u, events)
    return time.perf_counter() - start


def _builder(snap_b: list[Level], snap_a: list[Level]) -> RawSnapshotBuilder:
    feed = code_defaults().feed
    builder = RawSnapshotBuilder("BTCUSDT", interval_ms=feed.snapshot_interval_ms, grace_ms=feed.row_grace_ms)
    builder.on_book_snapshot(snap_b, snap_a, u=1, ts=1)
    return builder


def _row_build_us(snap_b: list[Level], snap_a: list[Level], n: int) -> float:
    builder = _builder(snap_b, snap_a)
    start = time.perf_counter()
    for i in range(1, n + 1):
        builder.on_other_message(i * 1000 + 1)  # each call emits exactly one row
    return (time.perf_counter() - start) / n * 1e6


def _naive_row_build_us(snap_b: list[Level], snap_a: list[Level], n: int) -> float:
    [template] = _builder(snap_b, snap_a).on_other_message(1001)
    bids, asks = dict(snap_b), dict(snap_a)

    def pad(values: list[float]) -> list[float]:
        return values + [0.0] * (BOOK_DEPTH - len(values))

    start = time.perf_counter()
    for i in range(1, n + 1):
        top_b = sorted(bids.items(), reverse=True)[:BOOK_DEPTH]
        top_a = sorted(asks.items())[:BOOK_DEPTH]
        row: RawSnapshotRow = msgspec.structs.replace(
            template, ts=i * 1000, n_bid_levels=len(top_b), n_ask_levels=len(top_a),
            bid_prices=pad([p for p, _ in top_b]), bid_sizes=pad([q for _, q in top_b]),
            ask_prices=pad([p for p, _ in top_a]), ask_sizes=pad([q for _, q in top_a]),
        )  # fmt: skip
    assert row.n_bid_levels == template.n_bid_levels
    return (time.perf_counter() - start) / n * 1e6


def run(quick: bool = False) -> dict[str, Any]:
    n_deltas, repeats, n_rows = (2_000, 1, 200) if quick else (N_DELTAS, REPEATS, N_ROWS)
    snap_b, snap_a, deltas = _stream(n_deltas)
    naive, ours = [], []
    for _ in range(repeats):
        naive.append(_naive(snap_b, snap_a, deltas))
        ours.append(_ours(snap_b, snap_a, deltas))
    naive_us = statistics.median(naive) / n_deltas * 1e6
    ours_us = statistics.median(ours) / n_deltas * 1e6
    row_us = _row_build_us(snap_b, snap_a, n_rows)
    naive_row_us = _naive_row_build_us(snap_b, snap_a, n_rows)
    print(f"order-book delta apply, {n_deltas} deltas x {repeats} (median):")
    print(f"  naive re-sort  {naive_us:8.2f} us/message  (baseline)")
    print(f"  local book     {ours_us:8.2f} us/message  {naive_us / ours_us:.1f}x faster")
    print(f"  raw snapshot row build {row_us:.1f} us/row (naive {naive_row_us:.1f})")
    return {
        "deltas": n_deltas,
        "repeats": repeats,
        "us_per_delta": {"naive_resort": round(naive_us, 3), "local_book": round(ours_us, 3)},
        "speedup_vs_naive": round(naive_us / ours_us, 2),
        "rows": n_rows,
        "row_build_us": round(row_us, 2),
        "naive_row_build_us": round(naive_row_us, 2),
    }


def section(result: Mapping[str, Any]) -> Section:
    per = result["us_per_delta"]
    return Section(
        title="Order book",
        summary=(
            f"Applying {result['deltas']:,} synthetic deltas near the touch to the local book, and cutting a "
            "raw snapshot row from it (levels and the interval's aggregates), against a dict book re-sorted "
            "after every message and a row whose levels alone are built from it"
        ),
        figures=[
            Figure("delta apply, local book", per["local_book"], "µs/message",
                   "dict re-sorted after each delta", per["naive_resort"]),
            Figure("raw snapshot row build", result["row_build_us"], "µs/row",
                   "the row's levels alone, sorted from a dict book", result["naive_row_build_us"]),
        ],
        details=result,
    )  # fmt: skip
