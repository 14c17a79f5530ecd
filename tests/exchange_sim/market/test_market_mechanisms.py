"""Unit tests per mechanism: sweep, in-spread quote, seeding, holes, window, regimes, latent value."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal as D

import numpy as np
from numpy.random import PCG64, Generator

from exchange_sim.book import BUY, SELL
from exchange_sim.market import (
    BackgroundParams,
    ManipulationParams,
    MarketConfig,
    SyntheticMarket,
    TouchParams,
)
from exchange_sim.market.background import ASK, BID
from exchange_sim.market.latent import Latent, MarketFactor, RegimeChain
from exchange_sim.market.params import REGIMES
from exchange_sim.matching import OrderRequest

from .conftest import T0  # type: ignore[import-not-found]


def btc(make_market: Callable[..., SyntheticMarket], **fields: object) -> SyntheticMarket:
    return make_market(["BTCUSDT"], seed=21, manipulation=ManipulationParams(enabled=False), **fields)


def test_initial_book_is_one_tick_wide_and_deep(make_market: Callable[..., SyntheticMarket]) -> None:
    market = btc(make_market)
    book, mk = market.engine.books["BTCUSDT"], market.market("BTCUSDT")
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None and ask - bid == 1
    assert abs((bid + ask) / 2 - mk.v) <= 1
    for side, touch in ((BID, bid), (ASK, ask)):
        assert mk.depth.occupied(side, touch) >= 1000  # S6: orderbook.1000 has a full book
    assert len(book.bids) >= 1000 and len(book.asks) >= 1000
    mk.depth.check()


def test_sweep_pulls_psi_and_trades_the_rest_up_to_v_including_user_orders(
    make_market: Callable[..., SyntheticMarket],
) -> None:
    market = btc(make_market)
    engine, book, mk = market.engine, market.engine.books["BTCUSDT"], market.market("BTCUSDT")
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None
    user = engine.submit("alice", OrderRequest("BTCUSDT", SELL, "Limit", D("0.010"), D(ask + 5) / 10)).order
    assert user is not None
    mk.v = ask + 40.5
    anon = sum(mk.depth.anon(ASK, t) for t in range(ask, ask + 41))
    pulled = sum(math.floor(mk.depth.anon(ASK, t) * mk.tp.sweep_pull) for t in range(ask, ask + 41))
    out: list = []
    mk._sweep(1.0, bid, ask, float(T0), out)
    traded = sum(engine.instruments["BTCUSDT"].qty_to_lots(t.qty) for r in out for t in r.trades)
    assert traded == anon - pulled + 10  # the rest of the anonymous volume plus alice's order
    assert all(t.taker_side == BUY for r in out for t in r.trades)
    assert book.best_ask() is not None and book.best_ask() > ask + 40
    fills = [e for r in out for e in r.executions if e.order_id == user.order_id]
    assert len(fills) == 1 and fills[0].is_maker  # adverse selection of a resting user order
    mk.depth.check()
    book.check_invariants()


def test_in_spread_quotes_restore_a_one_tick_spread_around_v(
    make_market: Callable[..., SyntheticMarket],
) -> None:
    market = btc(make_market)
    book, mk = market.engine.books["BTCUSDT"], market.market("BTCUSDT")
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None
    mk.v = ask + 60.3
    mk._sweep(1.0, bid, ask, float(T0), [])
    assert book.best_ask() - book.best_bid() > 1  # type: ignore[operator]
    mk._quote(book.best_bid(), book.best_ask())  # type: ignore[arg-type]
    assert book.best_bid() == math.floor(mk.v)
    mk._quote(book.best_bid(), book.best_ask())  # type: ignore[arg-type]
    if book.best_ask() != math.floor(mk.v) + 1:  # the sweep may have left the next ask right there
        assert book.best_ask() == math.floor(mk.v) + 1
    assert book.best_ask() - book.best_bid() == 1  # type: ignore[operator]
    mk.depth.check()


def test_frontier_seeds_new_levels_and_trims_far_ones(make_market: Callable[..., SyntheticMarket]) -> None:
    market = btc(make_market)
    book, mk = market.engine.books["BTCUSDT"], market.market("BTCUSDT")
    depth = mk.depth
    bid = book.best_bid()
    assert bid is not None
    far = depth.far[BID]
    lowered = bid - 400  # as if the touch had moved 400 ticks down
    depth.frontier(BID, lowered)
    assert depth.far[BID] == lowered - depth.D < far
    assert len(depth.nonzero(BID, lowered - depth.D, far - 1)) > 200  # the new range got its profile
    raised = bid + 2000  # far above: the bottom is trimmed beyond D + margin / 2
    depth.frontier(BID, raised)
    assert depth.far[BID] == raised - depth.D - depth.bg.trim_margin // 2
    assert depth.nonzero(BID, 0, depth.far[BID] - 1) == []
    depth.check()


def test_holes_are_seeded_when_a_side_gets_thin(make_market: Callable[..., SyntheticMarket]) -> None:
    market = btc(make_market)
    book, mk = market.engine.books["BTCUSDT"], market.market("BTCUSDT")
    ask = book.best_ask()
    assert ask is not None
    for tick in mk.depth.nonzero(ASK, ask + 1, ask + mk.depth.D):
        mk.depth.cancel(ASK, tick, mk.depth.anon(ASK, tick))
    assert mk.depth.occupied(ASK, ask) == 0
    mk.depth.holes(ASK, ask)
    assert mk.depth.occupied(ASK, ask) >= 900
    assert mk.depth.nonzero(ASK, ask + 1, ask + mk.depth.bg.hole_from) == []  # only beyond hole_from
    mk.depth.check()


def test_window_recentre_keeps_the_mirror_exact(make_market: Callable[..., SyntheticMarket]) -> None:
    market = btc(make_market, background=BackgroundParams(window=5600))  # the smallest window allowed
    mk, book = market.market("BTCUSDT"), market.engine.books["BTCUSDT"]
    base = mk.depth.base
    mid = (book.best_bid() + book.best_ask()) // 2  # type: ignore[operator]
    mk.depth.recentre(mid)
    assert mk.depth.base == base  # nothing to do while the range is well inside
    mk.depth.recentre(mid + 700)  # as if the mid had moved 700 ticks up: the window follows
    assert mk.depth.base == mid + 700 - 2800
    mk.depth.check()


def test_regime_time_shares_match_the_stationary_law() -> None:
    """R1 (loose): over many simulated days the chain spends the stationary share in each regime."""
    config = MarketConfig()
    chain = RegimeChain(config, Generator(PCG64(3)), 0)
    horizon = 400 * 24 * 3_600_000
    path = [*chain.path(horizon), (horizon, "end")]
    shares = dict.fromkeys(REGIMES, 0.0)
    for (start, name), (end, _) in itertools.pairwise(path):
        shares[name] += (end - start) / horizon
    p = np.array([[config.regimes[a].next.get(b, 0.0) for b in REGIMES] for a in REGIMES])
    vals, vecs = np.linalg.eig(p.T)
    nu = np.real(vecs[:, np.argmin(abs(vals - 1))])
    weights = nu / nu.sum() * np.array([config.regimes[k].mean_minutes for k in REGIMES])
    expected = weights / weights.sum()
    for k, name in enumerate(REGIMES):
        assert abs(shares[name] - expected[k]) < 0.3 * expected[k]


def test_latent_value_has_fat_tails_and_sensible_volatility() -> None:
    config = MarketConfig(fixed_regime="calm")
    chain = RegimeChain(config, Generator(PCG64(1)), 0)
    latent = Latent(
        config, config.symbol("BTCUSDT"), Generator(PCG64(2)), chain, MarketFactor(Generator(PCG64(4))), 0
    )
    xs = []
    for i in range(4 * 3600 * 20):
        latent.step()
        if i % 1200 == 1199:
            xs.append(latent.x)
    r = np.diff(np.array(xs))
    assert 0.0002 < r.std() < 0.003  # 1 min std, calm: the design's 0.10% sits well inside
    assert abs(r.mean()) < 5 * r.std() / math.sqrt(len(r))


def test_metaorders_add_order_sign_memory(make_market: Callable[..., SyntheticMarket], engine, run) -> None:
    signs: list[int] = []
    original = engine.market_anonymous

    def recording(symbol: str, side: str, lots: int, limit: int, ts: int):  # type: ignore[no-untyped-def]
        if lots < 1 << 60:  # market orders, not sweeps
            signs.append(1 if side == BUY else -1)
        return original(symbol, side, lots, limit, ts)

    engine.market_anonymous = recording
    market = make_market(
        ["BTCUSDT"],
        fixed_regime="calm",
        touch=TouchParams(metaorders=True),
        manipulation=ManipulationParams(enabled=False),
    )
    run(market, 300, step_ms=1000)
    x = np.array(signs, dtype=float)
    x -= x.mean()
    acf = [float(np.dot(x[:-k], x[k:]) / np.dot(x, x)) for k in (1, 5, 20)]
    assert acf[0] > 0.3 and acf[1] > 0.1 and acf[2] > 0.02  # long memory; without it about 0.1 at lag 1
