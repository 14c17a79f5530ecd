"""Manipulation episodes against their ground truth (M1, M2, M3 in part) and the benign look-alikes."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path

import pytest

from exchange_sim.market import ManipulationParams, MarketConfig, SyntheticMarket
from exchange_sim.market.manipulator import MANIP_OWNER

from .conftest import Clock, make_engine  # type: ignore[import-not-found]

BUSY = ManipulationParams(spoof_per_hour=90, layering_per_hour=60, benign_per_hour=60)


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], set[str], SyntheticMarket, Path]:
    path = tmp_path_factory.mktemp("gt") / "ground_truth.jsonl"
    clock = Clock()
    engine = make_engine(clock)
    market = SyntheticMarket(
        engine,
        ["BTCUSDT", "ETHUSDT"],
        seed=9,
        config=MarketConfig(manipulation=BUSY, ground_truth_path=str(path)),
    )
    market.advance(clock.now)
    placed: set[str] = set()
    for _ in range(900 * 4):
        clock.now += 250
        for result in market.advance(clock.now):
            for order in result.order_updates:
                if order.owner == MANIP_OWNER and order.order_type == "Limit":
                    placed.add(order.order_id)
    return market.ground_truth(), placed, market, path


@pytest.mark.slow
def test_m1_spoofs_are_large_short_lived_and_rarely_filled(episodes: tuple) -> None:
    records, _, _, _ = episodes
    spoofs = [r for r in records if r["kind"] == "spoofing"]
    assert len(spoofs) >= 10
    orders = [o for r in spoofs for o in r["orders"]]
    unfilled = 0
    for record in spoofs:
        assert record["manipulative"] and record["side"] in ("Buy", "Sell")
        assert all(m >= 5 for m in record["params"]["multiple"])
        for order in record["orders"]:
            assert D(order["price"]) * D(order["qty"]) > 50_000
            if order["cancelled_ms"] is not None:
                assert order["cancelled_ms"] - order["placed_ms"] < 10_000
            unfilled += order["cancelled_ms"] is not None and D(order["filled_qty"]) == 0
    assert unfilled >= 0.9 * len(orders)


@pytest.mark.slow
def test_m2_layering_shape(episodes: tuple) -> None:
    records, _, _, _ = episodes
    layers = [r for r in records if r["kind"] == "layering"]
    complete = [r for r in layers if r["end_reason"] == "scheduled"]
    assert len(layers) >= 5 and complete
    for record in layers:
        ticks = sorted(
            round(D(o["price"]) / D("0.1"))
            if record["symbol"] == "BTCUSDT"
            else round(D(o["price"]) / D("0.01"))
            for o in record["orders"]
        )
        assert all(b - a == 1 for a, b in itertools.pairwise(ticks))  # adjacent levels
        cancels = [o["cancelled_ms"] for o in record["orders"] if o["cancelled_ms"] is not None]
        if cancels:
            assert max(cancels) - min(cancels) <= 300
    for record in complete:
        assert len(record["orders"]) >= 3
        base, step = (
            D(record["params"]["base_qty"]),
            D("0.001") if record["symbol"] == "BTCUSDT" else D("0.01"),
        )
        assert all(abs(D(o["qty"]) - base) <= D("0.1") * base + step for o in record["orders"])  # within ±10%
        placed = [o["placed_ms"] for o in record["orders"]]
        assert max(placed) - min(placed) <= 3000


@pytest.mark.slow
def test_benign_look_alikes_rest_long_and_are_not_pulled(episodes: tuple) -> None:
    records, _, _, _ = episodes
    benign = [r for r in records if not r["manipulative"]]
    assert {r["kind"] for r in benign} <= {"benign_wall", "benign_stack"} and benign
    for record in benign:
        assert record["end_reason"] == "scheduled"
        for order in record["orders"]:
            if order["cancelled_ms"] is not None:
                assert order["cancelled_ms"] - order["placed_ms"] >= 59_000


@pytest.mark.slow
def test_m3_ground_truth_lists_exactly_the_orders_placed(episodes: tuple) -> None:
    records, placed, market, path = episodes
    logged = {o["order_id"] for r in records for o in r["orders"]}
    in_progress = {
        o["order_id"] for m in market.markets.values() if m.manip for e in m.manip.active for o in e.orders
    }
    assert logged | in_progress == placed
    assert not logged & in_progress
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["episode_id"] for r in lines) == sorted(r["episode_id"] for r in records)
    json.dumps(records)  # JSON-able


def test_no_manipulation_means_no_episodes(make_market: Callable[..., SyntheticMarket], run) -> None:
    market = make_market(["BTCUSDT"], manipulation=ManipulationParams(enabled=False))
    run(market, 5)
    assert market.ground_truth() == []
    assert all(m.manip is None for m in market.markets.values())
